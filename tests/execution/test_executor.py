"""The executor on a real trained router and real RouterBench prompts; model calls go through
LiteLLM with mock responses, and faults are injected with LiteLLM's own mock exceptions."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from exec_helpers import TOOL_MODELS, mocked_pool

from llmrouter_core.errors import UnknownModelError
from llmrouter_core.execution import (
    AllModelsFailedError,
    ExecutionResult,
    Executor,
    InvalidRequestError,
    NoEligibleModelError,
    StreamChunk,
    StreamInterruptedError,
)
from llmrouter_core.pool import Pool

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def make(router: Any, pool: Pool, **kwargs: Any) -> Executor:
    kwargs.setdefault("keys", "")
    kwargs.setdefault("backoff", 0.001)
    kwargs.setdefault("max_backoff", 0.002)
    return Executor(router, pool=pool, **kwargs)


@pytest.fixture(scope="module")
def query(arc_test: Any) -> str:
    return str(arc_test.queries[3])


def test_answers_with_the_routed_model(knn_router: Any, arc: Any, query: str) -> None:
    ex = make(knn_router, mocked_pool(knn_router, arc))
    result = ex.complete(query)
    expected = knn_router.route(query)
    assert result.decision == expected
    assert result.model == expected.model and not result.fell_back
    assert result.answer == f"answer of {expected.model}"
    assert [a.outcome for a in result.attempts] == ["success"]
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.cost > 0 and result.latency_s > 0


def test_cost_comes_from_litellm_or_the_pool_prices(
    knn_router: Any, arc: Any, query: str, litellm: Any
) -> None:
    pool = mocked_pool(knn_router, arc)
    ex = make(knn_router, pool)
    # LiteLLM prices gpt-4-1106-preview itself ...
    known = ex.complete(query, model="gpt-4-1106-preview")
    info = litellm.model_cost["gpt-4-1106-preview"]
    expected = (
        info["input_cost_per_token"] * known.input_tokens
        + info["output_cost_per_token"] * known.output_tokens
    )
    assert known.cost_source == "provider"
    assert known.cost == pytest.approx(expected)
    # ... but not a model it does not know: then the pool's prices apply.
    unknown = ex.complete(query, model="zero-one-ai/Yi-34B-Chat")
    spec = pool["zero-one-ai/Yi-34B-Chat"]
    assert unknown.cost_source == "pool"
    assert unknown.cost == pytest.approx(
        spec.estimate_cost(unknown.input_tokens, unknown.output_tokens)
    )
    assert unknown.decision is not None and unknown.decision.router == "forced"


def test_a_pool_model_outside_the_router_can_be_named(
    knn_router: Any, arc: Any, query: str
) -> None:
    """``model=`` may name any pool model, e.g. a verifier the router never routes to."""
    from llmrouter_core.pool import ModelSpec

    base = mocked_pool(knn_router, arc)
    extra = ModelSpec(
        "verifier",
        litellm_model="openai/verifier",
        input_price=1.0,
        output_price=2.0,
        extra={"litellm_kwargs": {"mock_response": "Correct"}},
    )
    ex = make(knn_router, Pool([*base, extra]))
    assert "verifier" not in ex.models
    result = ex.complete(query, model="verifier")
    assert (result.answer, result.model) == ("Correct", "verifier")
    expected = extra.estimate_cost(result.input_tokens, result.output_tokens)
    assert result.cost == pytest.approx(expected)
    assert asyncio.run(ex.acomplete(query, model="verifier")).answer == "Correct"
    # Routing still only ever picks the router's models.
    assert ex.complete(query).model in ex.models


def test_rate_limit_is_retried_then_falls_back(
    knn_router: Any, arc: Any, query: str, litellm: Any
) -> None:
    top, second = knn_router.route(query).ranked[:2]
    fault = litellm.RateLimitError("rate limited", llm_provider="openai", model=top)
    ex = make(
        knn_router, mocked_pool(knn_router, arc, {top: {"mock_response": fault}}), max_retries=2
    )
    result = ex.complete(query)
    assert result.model == second and result.fell_back
    assert result.answer == f"answer of {second}"
    log = [(a.model, a.outcome, a.error_type, a.retry, a.action) for a in result.attempts]
    assert log == [
        (top, "error", "RateLimitError", 0, "retry"),
        (top, "error", "RateLimitError", 1, "retry"),
        (top, "error", "RateLimitError", 2, "fallback"),
        (second, "success", None, 0, None),
    ]


def test_timeout_is_retried(knn_router: Any, arc: Any, query: str) -> None:
    top = knn_router.route(query).model
    faults = {top: {"mock_timeout": True, "timeout": 0.001}}
    ex = make(knn_router, mocked_pool(knn_router, arc, faults), max_retries=1)
    result = ex.complete(query)
    errors = [a for a in result.attempts if a.outcome == "error"]
    assert [(a.model, a.error_type, a.action) for a in errors] == [
        (top, "Timeout", "retry"),
        (top, "Timeout", "fallback"),
    ]
    assert result.model != top


@pytest.mark.parametrize("kind", ["context_window", "content_filter", "bad_request"])
def test_non_transient_errors_fall_back_without_retry(
    knn_router: Any, arc: Any, query: str, litellm: Any, kind: str
) -> None:
    top, second = knn_router.route(query).ranked[:2]
    fault = {
        "context_window": litellm.ContextWindowExceededError(
            message="prompt too long", model=top, llm_provider="openai"
        ),
        "content_filter": litellm.ContentPolicyViolationError(
            message="flagged by the content filter", model=top, llm_provider="openai"
        ),
        "bad_request": litellm.BadRequestError(
            message="invalid parameter", model=top, llm_provider="openai"
        ),
    }[kind]
    ex = make(
        knn_router, mocked_pool(knn_router, arc, {top: {"mock_response": fault}}), max_retries=3
    )
    result = ex.complete(query)
    assert result.model == second
    assert [(a.model, a.error_type, a.action) for a in result.attempts[:-1]] == [
        (top, type(fault).__name__, "fallback")
    ]


def test_server_error_is_retried(knn_router: Any, arc: Any, query: str) -> None:
    top = knn_router.route(query).model
    faults = {top: {"mock_response": Exception("upstream returned 503")}}
    ex = make(knn_router, mocked_pool(knn_router, arc, faults), max_retries=1)
    result = ex.complete(query)
    errors = [a for a in result.attempts if a.outcome == "error"]
    assert [a.action for a in errors] == ["retry", "fallback"]
    assert "503" in (errors[0].error or "")


def test_every_model_failing_raises_one_error_listing_each_attempt(
    knn_router: Any, arc: Any, query: str, litellm: Any
) -> None:
    faults = {
        m: {"mock_response": litellm.RateLimitError(f"{m} is busy", llm_provider="openai", model=m)}
        for m in knn_router.models_
    }
    ex = make(knn_router, mocked_pool(knn_router, arc, faults), max_retries=1)
    with pytest.raises(AllModelsFailedError) as info:
        ex.complete(query)
    err = info.value
    ranked = knn_router.route(query).ranked
    assert len(err.attempts) == 2 * len(ranked)
    assert [a.model for a in err.attempts[::2]] == list(ranked)
    text = str(err)
    for m in ranked:
        assert f"{m} is busy" in text
    assert f"all {len(ranked)} models tried failed" in text


def test_fallback_can_be_turned_off(knn_router: Any, arc: Any, query: str, litellm: Any) -> None:
    top = knn_router.route(query).model
    fault = litellm.BadRequestError(message="nope", model=top, llm_provider="openai")
    ex = make(
        knn_router, mocked_pool(knn_router, arc, {top: {"mock_response": fault}}), fallback=False
    )
    with pytest.raises(AllModelsFailedError) as info:
        ex.complete(query)
    assert [a.model for a in info.value.attempts] == [top]


# -- a provider that fails a given number of times, then answers -----------------------------

_flaky_lock = threading.Lock()
_flaky_failures: dict[str, int] = {}


@pytest.fixture(scope="module")
def flaky_provider(litellm: Any) -> None:
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    class Flaky(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            with _flaky_lock:
                left = _flaky_failures.get(model, 0)
                _flaky_failures[model] = max(left - 1, 0)
            if left:
                raise CustomLLMError(status_code=429, message=f"{model}: too many requests")
            return litellm.ModelResponse(
                model=model,
                choices=[{"message": {"role": "assistant", "content": f"{model} answers"}}],
                usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            )

        async def acompletion(self, *a: Any, **k: Any) -> Any:
            return self.completion(*a, **k)

    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p["provider"] != "flaky"],
        {"provider": "flaky", "custom_handler": Flaky()},
    ]


def test_retry_succeeds_on_the_same_model(
    knn_router: Any, arc: Any, query: str, flaky_provider: None
) -> None:
    top = knn_router.route(query).model
    pool = mocked_pool(knn_router, arc).replace(top, litellm_model="flaky/top-model", extra={})
    _flaky_failures["top-model"] = 2
    result = make(knn_router, pool, max_retries=3).complete(query)
    assert result.model == top and result.answer == "top-model answers"
    assert [(a.outcome, a.error_type, a.retry) for a in result.attempts] == [
        ("error", "RateLimitError", 0),
        ("error", "RateLimitError", 1),
        ("success", None, 2),
    ]


async def test_async_retry_and_fallback(
    knn_router: Any, arc: Any, query: str, flaky_provider: None, litellm: Any
) -> None:
    top, second = knn_router.route(query).ranked[:2]
    pool = mocked_pool(knn_router, arc).replace(top, litellm_model="flaky/async-top", extra={})
    _flaky_failures["async-top"] = 1
    ok = await make(knn_router, pool).acomplete(query)
    assert ok.model == top and [a.outcome for a in ok.attempts] == ["error", "success"]

    fault = litellm.RateLimitError("busy", llm_provider="openai", model=top)
    failing = mocked_pool(knn_router, arc, {top: {"mock_response": fault}})
    res = await make(knn_router, failing, max_retries=0).acomplete(query)
    assert res.model == second
    assert res.answer == make(knn_router, failing).complete(query).answer


# -- capabilities and context windows ----------------------------------------------------------


def test_tool_requests_go_only_to_models_with_tools(knn_router: Any, arc: Any, query: str) -> None:
    ex = make(knn_router, mocked_pool(knn_router, arc))
    result = ex.complete(query, tools=[WEATHER_TOOL])
    assert result.model in TOOL_MODELS
    assert result.decision is not None and set(result.decision.ranked) <= set(TOOL_MODELS)
    assert {m for m, why in result.excluded.items() if why == "does not support tools"} == (
        set(knn_router.models_) - set(TOOL_MODELS)
    )


def test_json_schema_requests_skip_models_without_it(knn_router: Any, arc: Any, query: str) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}},
    }
    result = make(knn_router, mocked_pool(knn_router, arc)).complete(query, response_format=schema)
    assert result.model in TOOL_MODELS
    assert all("JSON-schema" in why for why in result.excluded.values())


def test_long_prompts_skip_small_context_windows(knn_router: Any, arc: Any, arc_test: Any) -> None:
    # Real prompts concatenated to about 6,000 tokens: over 4,096, under 16,384.
    long_prompt = "\n\n".join(arc_test.queries[:60])[:24_000]
    ex = make(knn_router, mocked_pool(knn_router, arc))
    result = ex.complete(long_prompt)
    small = {"meta/llama-2-70b-chat", "WizardLM/WizardLM-13B-V1.2"}
    assert set(result.excluded) == small
    assert all("context window of 4096" in why for why in result.excluded.values())
    assert result.decision is not None and not small & set(result.decision.ranked)
    with pytest.raises(NoEligibleModelError, match="context window"):
        ex.complete(long_prompt * 4)


# -- routing text, forced models, bad input -----------------------------------------------


def test_routing_text_modes(knn_router: Any, arc: Any, arc_test: Any) -> None:
    first, last = arc_test.queries[10], arc_test.queries[11]
    messages = [
        {"role": "system", "content": "Answer with one letter."},
        {"role": "user", "content": first},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": last},
    ]
    pool = mocked_pool(knn_router, arc)
    assert make(knn_router, pool).route(messages) == knn_router.route(last)
    conversation = "\n\n".join(m["content"] for m in messages)
    assert make(knn_router, pool, routing_text="conversation").route(messages) == (
        knn_router.route(conversation)
    )
    assert make(knn_router, pool, routing_text=lambda ms: ms[1]["content"]).route(messages) == (
        knn_router.route(first)
    )
    expensive = make(knn_router, pool).route(last, cost_weight=0.0)
    cheap = make(knn_router, pool).route(last, cost_weight=float("inf"))
    assert cheap == knn_router.route(last, cost_weight=float("inf"))
    assert cheap.cost[cheap.model] <= expensive.cost[expensive.model]


def test_forced_model_and_bad_requests(knn_router: Any, arc: Any, query: str) -> None:
    ex = make(knn_router, mocked_pool(knn_router, arc))
    forced = ex.complete(query, model="claude-v1")
    assert forced.model == "claude-v1" and forced.answer == "answer of claude-v1"
    with pytest.raises(UnknownModelError, match="no-such-model"):
        ex.complete(query, model="no-such-model")
    with pytest.raises(InvalidRequestError):
        ex.complete("   ")
    with pytest.raises(InvalidRequestError):
        ex.complete([{"content": "no role"}])
    with pytest.raises(InvalidRequestError):
        ex.complete(query, stream=True)
    with pytest.raises(UnknownModelError, match="lacks the router's models"):
        Executor(knn_router, pool=Pool.from_names(["gpt-4o"]), keys="")


# -- streaming ---------------------------------------------------------------------------------


def test_stream_yields_chunks_then_the_result(
    knn_router: Any, arc: Any, query: str, litellm: Any
) -> None:
    top, second = knn_router.route(query).ranked[:2]
    fault = litellm.RateLimitError("busy", llm_provider="openai", model=top)
    ex = make(
        knn_router, mocked_pool(knn_router, arc, {top: {"mock_response": fault}}), max_retries=0
    )
    items = list(ex.stream(query))
    *chunks, final = items
    assert chunks and all(isinstance(c, StreamChunk) and c.model == second for c in chunks)
    assert isinstance(final, ExecutionResult)
    assert "".join(c.text for c in chunks) == final.answer == f"answer of {second}"
    assert [a.outcome for a in final.attempts] == ["error", "success"]
    assert final.output_tokens > 0 and final.cost > 0


async def test_astream_matches_stream(knn_router: Any, arc: Any, query: str) -> None:
    ex = make(knn_router, mocked_pool(knn_router, arc))
    items = [item async for item in ex.astream(query)]
    final = items[-1]
    assert isinstance(final, ExecutionResult)
    assert "".join(i.text for i in items[:-1] if isinstance(i, StreamChunk)) == final.answer
    assert final.model == knn_router.route(query).model


@pytest.fixture(scope="module")
def breaking_provider(litellm: Any) -> None:
    """Streams two pieces of an answer, then fails (as a dropped connection would)."""
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    class Breaking(CustomLLM):  # type: ignore[misc]
        def streaming(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            for piece in ("The answer ", "is "):
                yield {
                    "text": piece,
                    "is_finished": False,
                    "finish_reason": "",
                    "index": 0,
                    "tool_use": None,
                    "usage": None,
                }
            raise CustomLLMError(status_code=502, message="connection reset by peer")

    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p["provider"] != "breaking"],
        {"provider": "breaking", "custom_handler": Breaking()},
    ]


def test_stream_failing_mid_answer_keeps_the_partial_text(
    knn_router: Any, arc: Any, query: str, breaking_provider: None
) -> None:
    top = knn_router.route(query).model
    pool = mocked_pool(knn_router, arc).replace(top, litellm_model="breaking/m", extra={})
    delivered: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for item in make(knn_router, pool).stream(query):
            assert isinstance(item, StreamChunk)
            delivered.append(item.text)
    assert delivered == ["The answer ", "is "]
    assert info.value.partial == "The answer is "
    assert [(a.model, a.outcome, a.action) for a in info.value.attempts] == [(top, "error", "stop")]
    assert "connection reset" in str(info.value)


def test_stream_failing_before_text_falls_back(knn_router: Any, arc: Any, query: str) -> None:
    top, second = knn_router.route(query).ranked[:2]
    faults = {top: {"mock_response": "Exception: mock_streaming_error"}}
    items = list(make(knn_router, mocked_pool(knn_router, arc, faults)).stream(query))
    final = items[-1]
    assert isinstance(final, ExecutionResult) and final.model == second
    assert final.attempts[0].model == top and final.attempts[0].outcome == "error"


def test_concurrent_threads_share_an_executor(knn_router: Any, arc: Any, arc_test: Any) -> None:
    ex = make(knn_router, mocked_pool(knn_router, arc))
    queries = [str(q) for q in arc_test.queries[:24]]
    out: dict[int, str] = {}

    def work(i: int) -> None:
        out[i] = ex.complete(queries[i]).model

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [out[i] for i in range(len(queries))] == [
        d.model for d in knn_router.route_batch(queries)
    ]


class CountingRouter:
    """Delegates to a trained router and counts its routing calls."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.models_ = router.models_
        self.pool_ = router.pool_
        self.calls: list[int] = []

    def route(self, query: str, **kw: Any) -> Any:
        self.calls.append(1)
        return self.router.route(query, **kw)

    def route_batch(self, queries: list[str], **kw: Any) -> Any:
        self.calls.append(len(queries))
        return self.router.route_batch(queries, **kw)


async def test_concurrent_async_requests_are_routed_together(
    knn_router: Any, arc: Any, arc_test: Any
) -> None:
    counting = CountingRouter(knn_router)
    ex = make(counting, mocked_pool(knn_router, arc))
    queries = [str(q) for q in arc_test.queries[:50]]
    results = await asyncio.gather(*(ex.acomplete(q, mock_delay=0.002) for q in queries))
    assert [r.decision for r in results] == [knn_router.route(q) for q in queries]
    assert counting.calls == [50]  # one vectorised routing call for the 50 requests
    # Requests with different constraints are batched separately.
    counting.calls.clear()
    mixed = await asyncio.gather(
        *(
            ex.acomplete(q, tools=[WEATHER_TOOL] if i % 2 else None)
            for i, q in enumerate(queries[:10])
        )
    )
    assert sorted(counting.calls) == [5, 5]
    assert all(r.model in TOOL_MODELS for r in mixed[1::2])


def test_acting_on_a_given_decision(knn_router: Any, arc: Any, query: str) -> None:
    ex = make(knn_router, mocked_pool(knn_router, arc))
    decision = ex.route(query, cost_weight=float("inf"))
    result = ex.complete(query, decision=decision)
    assert result.decision is decision and result.model == decision.model
    # Ranked models that cannot serve the request are skipped.
    with_tools = ex.complete(query, decision=decision, tools=[WEATHER_TOOL])
    assert with_tools.model == next(m for m in decision.ranked if m in TOOL_MODELS)
