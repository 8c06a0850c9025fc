"""The direct OpenAI-compatible transport behaves as LiteLLM's call path does, on a real
(fake) upstream served on loopback: same answers, tokens, costs, budgets, and the same error
classes, retries and fallbacks under injected faults."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from serve_helpers import free_port, running_app

from llmrouter_core.execution import Budget, DirectOpenAI, Executor, PoolOrderRouter
from llmrouter_core.execution.results import AllModelsFailedError
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.testing.upstream import Behaviour, FakeUpstream

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

UPSTREAM = FakeUpstream(
    {
        "fast": Behaviour(latency=0.0),
        "limited": Behaviour(rate_429=1.0),
        "broken": Behaviour(rate_500=1.0),
        "hanging": Behaviour(rate_timeout=1.0, hang=2.0),
    }
)


def _spec(name: str, base: str, served_as: str | None = None) -> ModelSpec:
    return ModelSpec(
        name,
        litellm_model=f"openai/{served_as or name}",
        api_base=base + "/v1",
        input_price=2.0,
        output_price=8.0,
        extra={"litellm_kwargs": {"api_key": "sk-fake-upstream-0123456789"}},
    )


@pytest.fixture(scope="module")
def upstream() -> Any:
    with running_app(UPSTREAM.app) as url:
        yield url


def _run(pool: Pool, direct: bool, budget: Budget | None = None, **kwargs: Any) -> Any:
    """One request through an executor (pool order) with LiteLLM or the direct transport:
    its result, or the exception it raised."""

    async def go() -> Any:
        transport = DirectOpenAI() if direct else None
        ex = Executor(
            PoolOrderRouter(pool),
            pool=pool,
            transport=transport,
            budget=budget,
            max_retries=1,
            backoff=0.01,
            timeout=0.5,
        )
        try:
            return await ex.acomplete("Say something short, please.", **kwargs)
        except Exception as exc:
            return exc
        finally:
            if transport is not None:
                await transport.aclose()

    return asyncio.run(go())


def _trace(result: Any) -> list[tuple[str, str, str | None, str | None]]:
    attempts = result.attempts
    return [(a.model, a.outcome, a.error_type, a.action) for a in attempts]


def test_a_clean_call_gives_the_same_answer_tokens_and_cost(upstream: str) -> None:
    pool = Pool([_spec("fast", upstream)])
    via_litellm, direct = _run(pool, False, max_tokens=16), _run(pool, True, max_tokens=16)
    for result in (via_litellm, direct):
        assert result.answer == " ".join(f"w{i}" for i in range(12))
        assert result.model == "fast"
    assert (direct.input_tokens, direct.output_tokens) == (
        via_litellm.input_tokens,
        via_litellm.output_tokens,
    )
    # Cost from the pool's prices (the upstream's model is unknown to LiteLLM's table).
    expected = (2.0 * direct.input_tokens + 8.0 * direct.output_tokens) / 1e6
    assert math.isclose(direct.cost, expected) and math.isclose(via_litellm.cost, expected)
    assert direct.cost_source == via_litellm.cost_source == "pool"
    assert direct.response.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("name", "error"),
    [("limited", "RateLimitError"), ("broken", "InternalServerError"), ("hanging", "Timeout")],
)
def test_transient_faults_are_retried_then_fall_back_alike(
    upstream: str, name: str, error: str
) -> None:
    pool = Pool([_spec(name, upstream), _spec("fast", upstream)])
    via_litellm, direct = _run(pool, False), _run(pool, True)
    expected = [
        (name, "error", error, "retry"),
        (name, "error", error, "fallback"),
        ("fast", "success", None, None),
    ]
    assert _trace(via_litellm) == _trace(direct) == expected
    assert direct.answer == via_litellm.answer and direct.model == "fast"


def test_permanent_failures_map_to_the_same_classes(upstream: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    pool = Pool([_spec("gone", upstream, served_as="no-such-model"), _spec("down", dead)])
    via_litellm, direct = _run(pool, False), _run(pool, True)
    assert isinstance(via_litellm, AllModelsFailedError)
    assert isinstance(direct, AllModelsFailedError)
    assert _trace(via_litellm) == _trace(direct)
    assert [a[2] for a in _trace(direct)] == [
        "NotFoundError",
        "InternalServerError",  # LiteLLM's class for a refused connection
        "InternalServerError",
    ]
    assert "sk-fake-upstream" not in str(direct)  # the key never shows in errors


def test_budgets_are_held_and_settled_with_the_same_costs(upstream: str) -> None:
    pool = Pool([_spec("limited", upstream), _spec("fast", upstream)])
    spent = []
    for direct in (False, True):
        budget = Budget(1.0)
        result = _run(pool, direct, budget=budget)
        assert result.model == "fast"
        # The failed calls' holds were released; the answer's cost was settled, nothing held.
        assert math.isclose(budget.spent, result.cost)
        assert budget.overrun == 0.0 and math.isclose(budget.remaining, 1.0 - result.cost)
        spent.append(budget.spent)
    assert math.isclose(spent[0], spent[1])


def test_streams_and_other_arguments_go_through_litellm(upstream: str) -> None:
    pool = Pool([_spec("fast", upstream)])

    async def go() -> str:
        transport = DirectOpenAI()
        ex = Executor(PoolOrderRouter(pool), pool=pool, transport=transport, timeout=5)
        text = ""
        async for item in ex.astream("Say something."):
            text += getattr(item, "text", "") or ""
        await transport.aclose()
        return text

    assert asyncio.run(go()).startswith("w0 w1")
    base = {"model": "openai/fast", "api_base": upstream + "/v1", "messages": []}
    assert DirectOpenAI.handles(base)
    assert not DirectOpenAI.handles({**base, "stream": True})
    assert not DirectOpenAI.handles({**base, "stream_options": {"include_usage": True}})
    assert not DirectOpenAI.handles({**base, "model": "anthropic/claude"})
    assert not DirectOpenAI.handles({**base, "api_base": None})
