"""Budgets under concurrency: how much of a shared budget 200 concurrent requests spend, and
that they never spend more.

The models are *unpriced* (neither the pool nor LiteLLM knows their price); the executor
bounds their cost with ``max_price`` (USD per 1M tokens). They are served by an in-process
LiteLLM custom provider that reports each call's cost (0.6 x ``max_price`` per token unless
``--cost-per-call`` fixes it), takes ``--delay`` seconds, and injects faults on the top-ranked
models: 429 and 500 (retried), 401 and 400 (fall back to the next model). LiteLLM is otherwise
real (``completion`` / ``acompletion``, plain and streaming).

Printed per scenario: the limit, USD spent, share of the limit spent, requests answered /
refused (``BudgetExceededError``) / failed (``AllModelsFailedError``: a model failed by an
injected fault and no fallback fits the budget left; each attempt listed) / lost (anything
else), the largest settlement above its reservation (overrun), and which driver ran them.

1. Reservations bound concurrent spending: ``Budget(0.10)``, 200 concurrent calls costing
   $0.05 each (without reservations: $0.55 spent). Each call reserves its bound (>= $0.05):
   at most two can be answered.
2. Admission under a small budget: ``Budget(0.5)``, calls of about $0.0048: sequential,
   concurrent with admission waiting (the default), and concurrent refusing at once
   (``admission_timeout=0``).
3. The guarantee: 200 concurrent requests with faults, through each of ``complete`` (200
   threads), ``acomplete``, ``stream`` (200 threads) and ``astream``, demand over the limit.

Usage:
    python benchmarks/bench_budget.py [--requests 200] [--delay 0.005]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

PROVIDER = "benchbudget"
MODELS = ("alpha", "beta", "gamma")
MAX_TOKENS = 16
ANSWER = "The answer is 4."


class Provider:
    """The in-process provider's settings and its fault queue (shared by every call)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: dict[str, list[int]] = {}
        self.delay = 0.0
        self.price = 1.0  # USD per 1M tokens actually charged
        self.cost_per_call: float | None = None

    def set_faults(self, rounds: int) -> None:
        with self.lock:
            self.faults = {
                "alpha": [429, 0, 401, 0, 500, 0, 400, 0] * rounds,
                "beta": [429, 0] * 10,
            }

    def next_fault(self, model: str) -> int:
        with self.lock:
            queue = self.faults.get(model) or []
            return queue.pop(0) if queue else 0

    def usage(self, messages: list[Any]) -> dict[str, int]:
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        prompt = math.ceil(chars / 4) + 4 * len(messages)
        completion = math.ceil(len(ANSWER) / 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def cost(self, usage: dict[str, int]) -> float:
        if self.cost_per_call is not None:
            return self.cost_per_call
        return self.price * usage["total_tokens"] / 1e6


def register(litellm: Any) -> Provider:
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    state = Provider()

    def fail_or_answer(model: str, messages: list[Any]) -> Any:
        status = state.next_fault(model)
        if status:
            raise CustomLLMError(status_code=status, message=f"injected {status}")
        usage = state.usage(messages)
        response = litellm.ModelResponse(
            model=model,
            choices=[{"message": {"role": "assistant", "content": ANSWER}}],
            usage=usage,
        )
        response._hidden_params["response_cost"] = state.cost(usage)
        return response

    def pieces(messages: list[Any]) -> list[dict[str, Any]]:
        half = len(ANSWER) // 2
        return [
            {
                "text": text,
                "is_finished": last,
                "finish_reason": "stop" if last else "",
                "index": 0,
                "tool_use": None,
                "usage": state.usage(messages) if last else None,
            }
            for text, last in ((ANSWER[:half], False), (ANSWER[half:], True))
        ]

    class Bench(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            threading.Event().wait(state.delay)
            return fail_or_answer(model, messages)

        async def acompletion(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            await asyncio.sleep(state.delay)
            return fail_or_answer(model, messages)

        def streaming(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            threading.Event().wait(state.delay)
            status = state.next_fault(model)
            if status:
                raise CustomLLMError(status_code=status, message=f"injected {status}")
            yield from pieces(messages)

        async def astreaming(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            await asyncio.sleep(state.delay)
            status = state.next_fault(model)
            if status:
                raise CustomLLMError(status_code=status, message=f"injected {status}")
            for piece in pieces(messages):
                yield piece

    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p["provider"] != PROVIDER],
        {"provider": PROVIDER, "custom_handler": Bench()},
    ]
    return state


def executor(budget: Any, max_price: float, **kwargs: Any) -> Any:
    from llmrouter_core.execution import Executor, PoolOrderRouter
    from llmrouter_core.pool import ModelSpec, Pool

    pool = Pool(ModelSpec(m, litellm_model=f"{PROVIDER}/{m}") for m in MODELS)
    return Executor(
        PoolOrderRouter(pool),
        keys="",
        budget=budget,
        max_price=max_price,
        limit_max_tokens=MAX_TOKENS,
        backoff=0.001,
        max_backoff=0.002,
        **kwargs,
    )


def one_sync(ex: Any, driver: str, prompt: str) -> Any:
    try:
        if driver == "complete":
            return ex.complete(prompt)
        return list(ex.stream(prompt))[-1]
    except Exception as exc:  # classified by the caller
        return exc


async def one_async(ex: Any, driver: str, prompt: str) -> Any:
    try:
        if driver == "acomplete":
            return await ex.acomplete(prompt)
        return [item async for item in ex.astream(prompt)][-1]
    except Exception as exc:
        return exc


def run(ex: Any, driver: str, prompts: list[str], *, sequential: bool = False) -> list[Any]:
    if sequential:
        return [one_sync(ex, driver, p) for p in prompts]
    if driver in ("complete", "stream"):
        with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
            return list(pool.map(lambda p: one_sync(ex, driver, p), prompts))

    async def everything() -> list[Any]:
        return await asyncio.gather(*(one_async(ex, driver, p) for p in prompts))

    return asyncio.run(everything())


def report(name: str, driver: str, budget: Any, outcomes: list[Any]) -> None:
    from llmrouter_core.execution import AllModelsFailedError, BudgetExceededError, ExecutionResult

    answered = sum(isinstance(o, ExecutionResult) for o in outcomes)
    refused = sum(isinstance(o, BudgetExceededError) for o in outcomes)
    failed = sum(isinstance(o, AllModelsFailedError) for o in outcomes)
    lost = len(outcomes) - answered - refused - failed
    print(
        f"{name:<38} {driver:<10} limit ${budget.limit:<8.4g} spent ${budget.spent:<9.6f} "
        f"({100 * budget.spent / budget.limit:5.1f}%)  answered {answered:3d}  refused "
        f"{refused:3d}  failed {failed}  lost {lost}  overrun ${budget.overrun:.3g}  "
        f"{'OVER THE LIMIT' if budget.spent > budget.limit * (1 + 1e-12) else 'within'}"
    )
    kinds = Counter(
        f"{type(o).__name__}: {str(o)[:200]}"
        for o in outcomes
        if not isinstance(o, ExecutionResult | BudgetExceededError | AllModelsFailedError)
    )
    for kind, count in kinds.items():
        print(f"    lost x{count}: {kind}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.005, help="seconds per model call")
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    logging.getLogger("llmrouter_core").setLevel(logging.ERROR)
    from llmrouter_core._lazy import import_litellm
    from llmrouter_core.execution import Budget

    litellm = import_litellm()
    litellm.suppress_debug_info = True
    state = register(litellm)
    state.delay = args.delay
    n = args.requests
    prompts = [f"Question {i}: what is {i} plus {i}? Reply with one number." for i in range(n)]
    # The smallest bound among the prompts, so that the ceiling bounds every call.
    bound_tokens = min(math.ceil(len(p) / 2) + 4 for p in prompts) + MAX_TOKENS

    # 1. $0.05 per call under Budget(0.10): the ceiling must bound it, and then it holds.
    state.cost_per_call = 0.05
    max_price = 0.05 / bound_tokens * 1e6 * 1.01
    budget = Budget(0.10)
    report(
        "1. $0.05 calls, Budget(0.10)",
        "acomplete",
        budget,
        run(executor(budget, max_price), "acomplete", prompts),
    )

    # 2. About $0.0048 per call under Budget(0.5): concurrency spends what sequence does.
    state.cost_per_call = None
    mean_tokens = sum(state.usage([{"content": p}])["total_tokens"] for p in prompts) / n
    state.price = 0.0048 / mean_tokens * 1e6
    max_price = state.price / 0.6
    for name, kwargs, sequential in (
        ("2. Budget(0.5), sequential", {}, True),
        ("2. Budget(0.5), concurrent, waiting", {}, False),
        ("2. Budget(0.5), concurrent, refusing", {"admission_timeout": 0.0}, False),
    ):
        budget = Budget(0.5)
        outcomes = run(
            executor(budget, max_price, **kwargs),
            "complete" if sequential else "acomplete",
            prompts,
            sequential=sequential,
        )
        report(name, "complete" if sequential else "acomplete", budget, outcomes)

    # 3. The guarantee, with faults, through every driver; demand over 1.5x the limit (streams
    # report no cost, so the ceiling prices them: more still).
    state.price = 1.2  # USD per 1M tokens; the ceiling is 2.0
    demand = state.price * mean_tokens * n / 1e6
    for driver in ("complete", "acomplete", "stream", "astream"):
        state.set_faults(rounds=n // 10)
        budget = Budget(demand / 1.5)
        outcomes = run(executor(budget, 2.0, max_retries=2), driver, prompts)
        report("3. faults, unpriced, demand >1.5x", driver, budget, outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
