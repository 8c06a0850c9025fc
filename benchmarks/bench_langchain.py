"""LangChain adapter overhead: ``RoutedChatModel.invoke`` vs the core's ``Executor.complete``.

Both sides route with the same trained router and call the same LiteLLM mock model
(``mock_response``: LiteLLM's full request path, no network) on real RouterBench prompts, so
the difference is what the adapter adds: LangChain's input conversion and callback manager,
the message translation, and building the ``AIMessage`` with its metadata.

Calls alternate in random order with a short pause between them (LiteLLM finishes logging a
call in a background thread, which would otherwise slow whichever call comes next). Reported
per configuration: p50 of each side, the difference of the p50s, the median of per-pair
differences, and p90s:

* ``plain``: no callbacks (the usual production call);
* ``traced``: a callback handler attached, so the adapter also opens the child run that
  names the routed model (it routes first, then executes that decision);
* ``stream``: ``stream()`` consumed to the end vs ``Executor.stream``;
* ``isolated``: as ``plain``, but LiteLLM's ``completion`` is swapped for a function that
  returns a prebuilt response, so the LiteLLM call's own (noisy) time leaves both sides and
  the difference is the adapter's work alone.

For scale, ``langchain_floor_ms`` is the p50 of ``invoke`` on a chat model that does nothing
(its ``_generate`` returns a prebuilt message): what LangChain's own call path costs any chat
model.

Target: ``plain`` overhead <= 1 ms at p50.

Usage:
    python benchmarks/bench_langchain.py [--calls 300] [--router knn]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO.parent / "shared" / "data"))
MOCK_MODEL = "openai/gpt-4o-mini"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def build(router_name: str) -> tuple[Any, Any, list[str]]:
    import numpy as np

    import llmrouter_core as lr
    from llmrouter_core.benchmark import load_split
    from llmrouter_core.pool import Pool

    train, test = load_split("routerbench", data_dir=DATA_DIR)
    params = {"n_neighbors": 15} if router_name == "knn" else {}
    router = lr.get_router(router_name, **params).fit(train.subset(np.arange(600)))
    # Every model is called as the same mocked LiteLLM model, so both sides do equal work.
    pool = Pool(
        replace(s, litellm_model=MOCK_MODEL, input_price=0.15, output_price=0.6)
        for s in router.pool_
    )
    return router, pool, list(test.queries)


def compare(router: Any, pool: Any, queries: list[str], calls: int, mode: str) -> dict[str, float]:
    if mode != "isolated":
        return _compare(router, pool, queries, calls, mode)
    import litellm

    prebuilt = litellm.completion(
        model=MOCK_MODEL, messages=[{"role": "user", "content": "hi"}], mock_response="ok"
    )
    real = litellm.completion
    litellm.completion = lambda **_: prebuilt
    try:
        return _compare(router, pool, queries, calls, "plain", pause=0.0)
    finally:
        litellm.completion = real


def _compare(
    router: Any, pool: Any, queries: list[str], calls: int, mode: str, pause: float = 0.003
) -> dict[str, float]:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import HumanMessage
    from langchain_llmrouter import RoutedChatModel

    from llmrouter_core.execution import Executor

    class Counter(BaseCallbackHandler):
        """A minimal tracing handler: counts the runs it sees."""

        def __init__(self) -> None:
            self.runs = 0

        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            self.runs += 1

        def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
            self.runs += 1

    kwargs = {"mock_response": "ok"}
    ex = Executor(router, pool=pool, keys="", litellm_kwargs=kwargs)
    llm = RoutedChatModel(router=router, pool=pool, model_kwargs=kwargs)
    counter = Counter()
    config = {"callbacks": [counter]} if mode == "traced" else None

    def core(msgs: list[dict[str, str]]) -> None:
        if mode == "stream":
            for _ in ex.stream(msgs):
                pass
        else:
            ex.complete(msgs)

    def adapter(message: HumanMessage) -> None:
        if mode == "stream":
            for _ in llm.stream([message]):
                pass
        else:
            llm.invoke([message], config)

    for warm in queries[:10]:
        core([{"role": "user", "content": warm}])
        adapter(HumanMessage(warm))
    rng = random.Random(0)
    core_t: list[float] = []
    adapter_t: list[float] = []
    for k in range(calls):
        q = queries[k % len(queries)]
        msgs = [{"role": "user", "content": q}]
        message = HumanMessage(q)
        for side in rng.sample(("core", "adapter"), 2):
            time.sleep(pause)
            t0 = time.perf_counter()
            if side == "core":
                core(msgs)
                core_t.append(time.perf_counter() - t0)
            else:
                adapter(message)
                adapter_t.append(time.perf_counter() - t0)
    paired = [a - c for a, c in zip(adapter_t, core_t, strict=True)]
    out = {
        "core_p50_ms": 1e3 * _pct(core_t, 0.5),
        "adapter_p50_ms": 1e3 * _pct(adapter_t, 0.5),
        "overhead_p50_ms": 1e3 * (_pct(adapter_t, 0.5) - _pct(core_t, 0.5)),
        "overhead_paired_p50_ms": 1e3 * statistics.median(paired),
        "overhead_p90_ms": 1e3 * (_pct(adapter_t, 0.9) - _pct(core_t, 0.9)),
    }
    if mode == "traced":
        out["runs_traced_per_call"] = counter.runs / (calls + 10)
    return out


def langchain_floor(queries: list[str], calls: int) -> float:
    """p50 ms of ``invoke`` on a chat model whose ``_generate`` returns a prebuilt answer."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class Prebuilt(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "prebuilt"

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok"))])

    model = Prebuilt()
    times = []
    for k in range(calls + 10):
        message = [HumanMessage(queries[k % len(queries)])]
        t0 = time.perf_counter()
        model.invoke(message)
        if k >= 10:
            times.append(time.perf_counter() - t0)
    return 1e3 * _pct(times, 0.5)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--router", default="knn")
    args = parser.parse_args(argv)
    sys.path.append(str(REPO / "integrations" / "langchain"))  # when not installed
    router, pool, queries = build(args.router)
    results: dict[str, Any] = {"router": args.router, "calls": args.calls}
    for mode in ("plain", "traced", "stream", "isolated"):
        results[mode] = compare(router, pool, queries, args.calls, mode)
        row = results[mode]
        print(
            f"{mode:>7}: core {row['core_p50_ms']:.3f} ms, adapter {row['adapter_p50_ms']:.3f}"
            f" ms p50; overhead {row['overhead_p50_ms']:.3f} ms (paired "
            f"{row['overhead_paired_p50_ms']:.3f}), p90 {row['overhead_p90_ms']:.3f} ms"
        )
    results["langchain_floor_ms"] = langchain_floor(queries, args.calls)
    print(
        f"LangChain's own invoke path (a chat model that does nothing): "
        f"{results['langchain_floor_ms']:.3f} ms p50"
    )
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
