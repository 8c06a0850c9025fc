"""One attempt loop behind four drivers: every scenario runs against ``complete``,
``acomplete``, ``stream`` and ``astream``, with faults injected by a scripted LiteLLM provider
(LiteLLM's real custom-provider path, sync and async, plain and streaming)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from scripted import PIECES, Script, http_error, register_scripted

from llmrouter_core.execution import (
    AllModelsFailedError,
    Budget,
    BudgetExceededError,
    ExecutionResult,
    Executor,
    PoolOrderRouter,
    StreamChunk,
    StreamInterruptedError,
)
from llmrouter_core.execution import _support as sup
from llmrouter_core.execution.attempts import Admit, AttemptLoop, Call, Finish, Sleep
from llmrouter_core.pool import ModelSpec, Pool

DRIVERS = ("complete", "acomplete", "stream", "astream")
STREAMING = ("stream", "astream")
MODELS = ("alpha", "beta", "gamma")
PROMPT = "What is 2 + 2? Answer with one number."
ANSWER = "".join(PIECES)


@pytest.fixture()
def script(litellm: Any) -> Script:
    return register_scripted(litellm, "faulty")


def make(*, priced: bool = True, **kwargs: Any) -> Executor:
    """An executor over three scripted models, ranked alpha, beta, gamma."""
    prices = {"input_price": 1.0, "output_price": 2.0} if priced else {}
    pool = Pool(ModelSpec(m, litellm_model=f"faulty/{m}", **prices) for m in MODELS)
    kwargs.setdefault("keys", "")
    kwargs.setdefault("backoff", 0.001)
    kwargs.setdefault("max_backoff", 0.002)
    return Executor(PoolOrderRouter(pool), **kwargs)


def run(ex: Executor, driver: str, **kwargs: Any) -> tuple[ExecutionResult, list[str]]:
    """One request through ``driver``: the result and the streamed pieces (raises errors)."""
    if driver == "complete":
        return ex.complete(PROMPT, **kwargs), []
    if driver == "acomplete":
        return asyncio.run(ex.acomplete(PROMPT, **kwargs)), []
    pieces: list[str] = []
    if driver == "stream":
        items = list(ex.stream(PROMPT, **kwargs))
    else:

        async def collect() -> list[Any]:
            return [item async for item in ex.astream(PROMPT, **kwargs)]

        items = asyncio.run(collect())
    *chunks, final = items
    assert all(isinstance(c, StreamChunk) for c in chunks)
    assert isinstance(final, ExecutionResult)
    pieces = [c.text for c in chunks]
    return final, pieces


def log(attempts: Any) -> list[tuple[Any, ...]]:
    return [(a.model, a.outcome, a.retry, a.action) for a in attempts]


@pytest.mark.parametrize("driver", DRIVERS)
def test_transient_error_then_success_on_the_same_model(script: Script, driver: str) -> None:
    script.set("alpha", [http_error(429, "slow down"), http_error(503, "overloaded")])
    result, pieces = run(make(max_retries=2), driver)
    assert (result.model, result.answer) == ("alpha", ANSWER)
    assert log(result.attempts) == [
        ("alpha", "error", 0, "retry"),
        ("alpha", "error", 1, "retry"),
        ("alpha", "success", 2, None),
    ]
    assert "slow down" in (result.attempts[0].error or "")
    assert script.models_called() == ["alpha"] * 3
    assert pieces == (list(PIECES) if driver in STREAMING else [])


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_non_transient_error_falls_to_the_next_model(
    script: Script, driver: str, status: int
) -> None:
    # Authentication and permission errors included: the same key cannot start working.
    script.set("alpha", [http_error(status, "no") for _ in range(3)])
    result, _ = run(make(max_retries=2), driver)
    assert result.model == "beta" and result.fell_back
    assert log(result.attempts) == [("alpha", "error", 0, "fallback"), ("beta", "success", 0, None)]
    assert script.models_called() == ["alpha", "beta"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_all_models_failing_raises_one_error_and_releases_the_budget(
    script: Script, driver: str
) -> None:
    for m in MODELS:
        script.set(m, [http_error(429, f"{m} is busy") for _ in range(2)])
    budget = Budget(1.0)
    with pytest.raises(AllModelsFailedError) as info:
        run(make(max_retries=1, budget=budget), driver)
    assert log(info.value.attempts) == [
        (m, "error", r, "retry" if r == 0 else "fallback") for m in MODELS for r in (0, 1)
    ]
    assert "all 3 models tried failed" in str(info.value)
    assert all(f"{m} is busy" in str(info.value) for m in MODELS)
    assert budget.spent == 0 and budget.reserved == 0 and budget.calls == 0


@pytest.mark.parametrize("driver", DRIVERS)
def test_budget_refusal_calls_nothing(script: Script, driver: str) -> None:
    ex = make(budget=Budget(1e-9))
    with pytest.raises(BudgetExceededError, match="spend limits"):
        run(ex, driver)
    assert script.calls == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_no_room_left_after_waiting_skips_every_model(script: Script, driver: str) -> None:
    # The bounds fit the budget, but a call in flight (an outside hold) keeps the room until
    # the admission timeout: every model is skipped, nothing is called.
    ex = make(budget=Budget(1.0), admission_timeout=0.01)
    bound = ex.cost_bound(PROMPT, "alpha")
    assert bound is not None
    budget = ex.budget
    assert isinstance(budget, Budget)
    hold = budget.reserve(1.0 - bound / 2)
    with pytest.raises(BudgetExceededError, match="no model fits the remaining budget") as info:
        run(ex, driver)
    assert all(f"{m} (faulty/{m}): skipped" in str(info.value) for m in MODELS)
    assert script.calls == []
    budget.release(hold)
    assert budget.reserved == 0 and budget.spent == 0
    assert run(ex, driver)[0].model == "alpha"  # the room is back


@pytest.mark.parametrize("driver", DRIVERS)
def test_interruption_mid_call(script: Script, driver: str) -> None:
    """Ctrl-C (sync) or task cancellation (async) during a call: it propagates unchanged, no
    other model is tried, no hold is left, and the call is charged what it is known to have
    produced (a plain call: its whole bound; a stream: the prompt and the text delivered)."""
    budget = Budget(1.0)
    ex = make(budget=budget)
    bound = ex.cost_bound(PROMPT, "alpha")
    assert bound is not None
    script.set("alpha", ["interrupt"])
    delivered: list[str] = []
    if driver == "complete":
        with pytest.raises(KeyboardInterrupt):
            ex.complete(PROMPT)
    elif driver == "stream":
        with pytest.raises(KeyboardInterrupt):
            for item in ex.stream(PROMPT):
                delivered.append(item.text)  # type: ignore[union-attr]
    else:

        async def consume() -> None:
            if driver == "acomplete":
                await ex.acomplete(PROMPT)
            else:
                async for item in ex.astream(PROMPT):
                    delivered.append(item.text)  # type: ignore[union-attr]

        async def cancel_midway() -> None:
            task = asyncio.ensure_future(consume())
            while not script.calls or (driver == "astream" and not delivered):
                await asyncio.sleep(0.001)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_midway())
    assert script.models_called() == ["alpha"]
    assert budget.reserved == 0 and budget.calls == 1
    if driver in STREAMING:
        assert delivered == [PIECES[0]]
        assert 0 < budget.spent < bound
    else:
        assert budget.spent == pytest.approx(bound)
    # The executor is still usable.
    assert run(ex, driver)[0].model == "alpha"


@pytest.mark.parametrize("driver", DRIVERS)
def test_stream_interrupted_mid_way(script: Script, driver: str) -> None:
    """The connection drops after part of the answer: a stream cannot take back what it
    delivered, so it stops with the partial text; a plain call never saw any text, so the
    failure is an ordinary transient one and is retried."""
    budget = Budget(1.0)
    ex = make(budget=budget)
    bound = ex.cost_bound(PROMPT, "alpha")
    assert bound is not None
    script.set("alpha", [("break", http_error(502, "connection reset by peer"))])
    if driver in STREAMING:
        with pytest.raises(StreamInterruptedError) as info:
            run(ex, driver)
        assert info.value.partial == ANSWER
        assert log(info.value.attempts) == [("alpha", "error", 0, "stop")]
        assert "connection reset by peer" in str(info.value)
        assert script.models_called() == ["alpha"]
        assert 0 < budget.spent < bound  # the delivered text, not the whole bound
    else:
        result, _ = run(ex, driver)
        assert log(result.attempts) == [
            ("alpha", "error", 0, "retry"),
            ("alpha", "success", 1, None),
        ]
        assert budget.spent == pytest.approx(result.cost)
    assert budget.reserved == 0 and budget.calls == 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_retry_after_nan_counts_as_absent(script: Script, driver: str, litellm: Any) -> None:
    request = httpx.Request("POST", "http://provider.invalid/v1/chat/completions")
    fault = litellm.RateLimitError(
        "slow down",
        llm_provider="faulty",
        model="alpha",
        response=httpx.Response(429, headers={"retry-after": "nan"}, request=request),
    )
    script.set("alpha", [fault])
    result, _ = run(make(), driver)
    assert log(result.attempts) == [("alpha", "error", 0, "retry"), ("alpha", "success", 1, None)]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), ("0.5", 0.5), ("nan", None), ("inf", None), ("-1", None), ("soon", None)],
)
def test_retry_after_values(value: str, seconds: float | None, litellm: Any) -> None:
    request = httpx.Request("POST", "http://provider.invalid")
    exc = litellm.RateLimitError(
        "slow",
        llm_provider="openai",
        model="m",
        response=httpx.Response(429, headers={"retry-after": value}, request=request),
    )
    assert sup.retry_after(exc) == seconds


def test_authentication_failures_are_never_retried(litellm: Any) -> None:
    wrapped = litellm.APIConnectionError(
        message="Error code: 401 - Unauthorized: invalid api key", llm_provider="x", model="m"
    )
    assert sup.classify_error(wrapped) == "fallback"
    assert sup.classify_error(http_error(401, "bad key")) == "fallback"
    assert sup.classify_error(litellm.APIConnectionError("reset", "x", "m")) == "retry"


def test_the_loop_is_a_state_machine_without_io(script: Script, litellm: Any) -> None:
    """Driven by hand: the loop asks for admission, a call, a wait, another call, and ends
    with the result; nothing is called but what the test feeds it."""
    budget = Budget(1.0)
    ex = make(budget=budget, max_retries=1)
    loop = AttemptLoop(ex, ex._plan(ex_request(PROMPT)))
    action = loop.start()
    assert isinstance(action, Admit) and action.budget is budget
    reservation = budget.try_reserve(action.amount)
    action = loop.admitted(reservation)
    assert isinstance(action, Call) and action.model == "alpha"
    assert action.kwargs["model"] == "faulty/alpha" and action.kwargs["max_tokens"] == 1024
    action = loop.failed(litellm.RateLimitError("busy", llm_provider="x", model="alpha"))
    assert isinstance(action, Sleep) and 0 < action.seconds <= ex.max_backoff
    action = loop.slept()
    assert isinstance(action, Call)
    action = loop.failed(litellm.RateLimitError("busy", llm_provider="x", model="alpha"))
    assert isinstance(action, Admit)  # retries used up: beta, after releasing alpha's hold
    assert budget.reserved == 0
    action = loop.admitted(budget.try_reserve(action.amount))
    assert isinstance(action, Call) and action.model == "beta"
    response = litellm.ModelResponse(
        choices=[{"message": {"role": "assistant", "content": "4"}}],
        usage={"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    )
    finish = loop.answered(response)
    assert isinstance(finish, Finish) and finish.result is not None
    assert finish.result.answer == "4" and finish.result.model == "beta"
    assert budget.spent == pytest.approx(finish.result.cost) and budget.reserved == 0
    assert script.calls == []


def ex_request(prompt: str) -> Any:
    from llmrouter_core.execution import Request

    return Request.build(prompt)
