"""Budgets that hold for models without prices, and that concurrent use fills as sequential use
does: every call reserves a real upper bound of its cost, settles its actual cost, and waits for
calls in flight to make room instead of being refused at once."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from scripted import Script, http_error, register_scripted

from llmrouter_core.execution import (
    AllModelsFailedError,
    Budget,
    BudgetExceededError,
    ExecutionResult,
    Executor,
    PoolOrderRouter,
    StreamChunk,
)
from llmrouter_core.pool import ModelSpec, Pool

DRIVERS = ("complete", "acomplete", "stream", "astream")
MODELS = ("alpha", "beta", "gamma")
MAX_PRICE = 2.0  # USD per 1M tokens: the ceiling given for the unpriced models
TRUE_PRICE = 1.5  # what the provider actually charges per 1M tokens


@pytest.fixture()
def script(litellm: Any) -> Script:
    return register_scripted(litellm, "unpriced")


def unpriced_executor(**kwargs: Any) -> Executor:
    """Three models neither the pool nor LiteLLM has a price for."""
    pool = Pool(ModelSpec(m, litellm_model=f"unpriced/{m}") for m in MODELS)
    kwargs.setdefault("keys", "")
    kwargs.setdefault("backoff", 0.001)
    kwargs.setdefault("max_backoff", 0.002)
    return Executor(PoolOrderRouter(pool), **kwargs)


def sync_call(ex: Executor, driver: str, prompt: str, **kw: Any) -> ExecutionResult:
    if driver == "complete":
        return ex.complete(prompt, **kw)
    *chunks, final = list(ex.stream(prompt, **kw))
    assert all(isinstance(c, StreamChunk) for c in chunks)
    assert isinstance(final, ExecutionResult)
    return final


async def async_call(ex: Executor, driver: str, prompt: str, **kw: Any) -> ExecutionResult:
    if driver == "acomplete":
        return await ex.acomplete(prompt, **kw)
    items = [item async for item in ex.astream(prompt, **kw)]
    assert isinstance(items[-1], ExecutionResult)
    return items[-1]


def call(ex: Executor, driver: str, prompt: str, **kw: Any) -> ExecutionResult:
    if driver in ("complete", "stream"):
        return sync_call(ex, driver, prompt, **kw)
    return asyncio.run(async_call(ex, driver, prompt, **kw))


# -- unpriced models ---------------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_unpriced_model_under_a_budget_needs_a_max_price(script: Script, driver: str) -> None:
    budget = Budget(1.0)
    ex = unpriced_executor(budget=budget)
    with pytest.raises(BudgetExceededError, match="no known price bounds its cost") as info:
        call(ex, driver, "What is 2 + 2?")
    assert "max_price" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(BudgetExceededError, match="no known price bounds its cost"):
        call(unpriced_executor(), driver, "What is 2 + 2?", max_cost=1.0)
    assert script.calls == [] and budget.spent == 0
    # Without any limit, nothing needs bounding.
    assert call(unpriced_executor(), driver, "What is 2 + 2?").model == "alpha"


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_unpriced_model_reserves_its_max_price_bound(script: Script, driver: str) -> None:
    budget = Budget(1.0)
    ex = unpriced_executor(budget=budget, max_price=MAX_PRICE, limit_max_tokens=16)
    prompt = "What is 2 + 2?"
    bound = ex.cost_bound(prompt, "alpha")
    # Prompt tokens bounded at 2 characters per token plus 4 per message, 16 output tokens.
    assert bound == pytest.approx(MAX_PRICE * (-(-len(prompt) // 2) + 4 + 16) / 1e6)
    held: list[float] = []
    script.cost = lambda p, c: (held.append(budget.reserved) or 0.0) + TRUE_PRICE * (p + c) / 1e6
    result = call(ex, driver, prompt)
    if driver in ("complete", "acomplete"):
        assert held == [pytest.approx(bound)]  # the bound was held during the call
        assert result.cost_source == "provider"
        assert result.cost == pytest.approx(TRUE_PRICE * (result.input_tokens + 4) / 1e6)
    else:  # a stream reports usage but no cost: the ceiling prices it
        assert result.cost_source == "max_price"
        expected = MAX_PRICE * (result.input_tokens + result.output_tokens) / 1e6
        assert result.cost == pytest.approx(expected)
    assert 0 < result.cost <= bound
    assert budget.spent == pytest.approx(result.cost) and budget.reserved == 0


def test_a_cost_above_its_bound_is_counted_and_recorded(
    script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider charging more than the ceiling: the spend is counted in full (never
    hidden), recorded as an overrun, and later admissions see the room it took."""
    ex = unpriced_executor(max_price=MAX_PRICE, limit_max_tokens=16)
    bound = ex.cost_bound("What is 2 + 2?", "alpha")
    assert bound is not None
    budget = Budget(3 * bound)
    ex.budget = budget
    script.cost = 2.5 * bound
    with caplog.at_level(logging.WARNING, logger="llmrouter_core"):
        first = ex.complete("What is 2 + 2?")
    assert first.cost == pytest.approx(2.5 * bound)
    assert budget.spent == pytest.approx(2.5 * bound)
    assert budget.overrun == pytest.approx(1.5 * bound)
    assert any("above the" in r.getMessage() for r in caplog.records)
    with pytest.raises(BudgetExceededError):  # half a bound is left: nothing fits
        ex.complete("What is 2 + 2?")
    assert len(script.calls) == 1 and budget.spent <= budget.limit


# -- admission waits for calls in flight -------------------------------------------------------


def test_try_reserve_waits_for_a_hold_to_settle() -> None:
    budget = Budget(1.0)
    first = budget.reserve(0.8)
    got: list[Any] = []
    waiting = threading.Event()

    def second() -> None:
        waiting.set()
        got.append(budget.try_reserve(0.5, timeout=60.0))

    thread = threading.Thread(target=second)
    thread.start()
    waiting.wait()
    budget.settle(first, 0.3)  # the call cost less than its bound: room for the second
    thread.join()
    assert got[0] is not None and got[0].amount == 0.5
    assert budget.spent == pytest.approx(0.3) and budget.reserved == pytest.approx(0.5)
    # A reservation that can never fit (spending only grows) is refused without waiting.
    assert budget.try_reserve(0.75, timeout=3600.0) is None


async def test_atry_reserve_waits_without_blocking_the_loop() -> None:
    budget = Budget(1.0)
    first = budget.reserve(0.8)
    waiter = asyncio.ensure_future(budget.atry_reserve(0.5, timeout=60.0))
    await asyncio.sleep(0)
    assert not waiter.done()  # no room yet, and the loop still runs
    budget.release(first)
    reservation = await waiter
    assert reservation is not None and budget.reserved == pytest.approx(0.5)
    # A wait that is cancelled leaves nothing behind.
    late = asyncio.ensure_future(budget.atry_reserve(0.9, timeout=3600.0))
    await asyncio.sleep(0)
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late
    assert budget.reserved == pytest.approx(0.5)
    budget.settle(reservation, 0.5)
    assert await budget.atry_reserve(0.6, timeout=3600.0) is None  # 0.5 spent: never fits
    assert budget.reserved == 0


# -- the guarantee under concurrency ------------------------------------------------------------

FAULTS_PER_ROUND = 4  # in every 8 calls of the top model: 429, 401, 500, 400


def inject_faults(script: Script) -> None:
    pattern: list[Any] = [
        http_error(429, "rate limited"),
        "ok",
        http_error(401, "invalid api key"),
        "ok",
        http_error(500, "internal error"),
        "ok",
        http_error(400, "bad request"),
        "ok",
    ]
    script.set("alpha", pattern * 20)
    script.set("beta", [http_error(429, "rate limited"), "ok"] * 10)


@pytest.mark.parametrize("driver", DRIVERS)
def test_200_concurrent_requests_spend_the_budget_and_never_more(
    script: Script, driver: str
) -> None:
    """200 concurrent requests, unpriced models priced by a ceiling, faults injected on the
    top models, demand over the limit: spent <= limit, nothing lost (each request answered or
    refused with BudgetExceededError), and >= 90% of the limit spent."""
    inject_faults(script)
    script.cost = lambda p, c: TRUE_PRICE * (p + c) / 1e6
    script.delay = 0.005  # keeps calls in flight while others arrive
    prompts = [f"Question {i}: what is {i} plus {i}? Reply with one number." for i in range(200)]
    ex = unpriced_executor(max_price=MAX_PRICE, limit_max_tokens=8, max_retries=2)
    bounds = [ex.cost_bound(p, "alpha") for p in prompts]
    assert all(b is not None for b in bounds)
    max_bound = max(b for b in bounds if b is not None)
    # Demand: 200 calls at their actual cost, well over the limit; the limit holds ~50 bounds.
    limit = 50 * max_bound
    budget = Budget(limit)
    ex.budget = budget

    outcomes: list[Any]
    if driver in ("complete", "stream"):

        def one(prompt: str) -> Any:
            try:
                return sync_call(ex, driver, prompt)
            except Exception as exc:  # anything but a refusal counts as lost below
                return exc

        with ThreadPoolExecutor(max_workers=200) as pool:
            outcomes = list(pool.map(one, prompts))
    else:

        async def one_async(prompt: str) -> Any:
            try:
                return await async_call(ex, driver, prompt)
            except Exception as exc:
                return exc

        async def everything() -> list[Any]:
            return await asyncio.gather(*(one_async(p) for p in prompts))

        outcomes = asyncio.run(everything())

    answered = [o for o in outcomes if isinstance(o, ExecutionResult)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    # A request whose model failed with an injected non-transient fault, and whose fallbacks
    # no longer fitted the budget, ends in one error that lists exactly that: accounted for.
    accounted = [
        o
        for o in outcomes
        if isinstance(o, AllModelsFailedError)
        and all(a.outcome == "skipped" or a.action in ("retry", "fallback") for a in o.attempts)
        and any(a.outcome == "skipped" for a in o.attempts)
    ]
    lost = [
        o
        for o in outcomes
        if not isinstance(o, ExecutionResult | BudgetExceededError) and o not in accounted
    ]
    assert lost == []
    assert len(answered) + len(refused) + len(accounted) == 200
    assert refused, "demand exceeds the limit: some requests must be refused"
    assert budget.spent <= limit * (1 + 1e-12)
    assert budget.spent >= 0.9 * limit
    assert budget.spent == pytest.approx(sum(r.cost for r in answered))
    assert budget.reserved == 0 and budget.overrun == 0
    # The faults did happen and were recovered from: retries and fallbacks among the answers.
    attempts = [a for r in answered for a in r.attempts]
    assert {a.action for a in attempts if a.outcome == "error"} == {"retry", "fallback"}
    assert any(r.model != "alpha" for r in answered)
    assert script.max_in_flight >= 5  # the calls really overlapped
