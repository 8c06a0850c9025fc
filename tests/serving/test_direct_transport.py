"""The direct OpenAI-compatible transport behaves as LiteLLM's call path does, on a real
(fake) upstream served on loopback: same answers, tokens, costs, budgets, and the same error
classes, retries and fallbacks under injected faults."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from serve_helpers import free_port, running_app, upstream_spec

from llmrouter_core.execution import (
    Budget,
    DirectOpenAI,
    Executor,
    PoolOrderRouter,
    StreamChunk,
    StreamedResponse,
)
from llmrouter_core.execution.drivers import delta_text
from llmrouter_core.execution.results import AllModelsFailedError, StreamInterruptedError
from llmrouter_core.pool import Pool
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
    pool = Pool([upstream_spec("fast", upstream)])
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
    pool = Pool([upstream_spec(name, upstream), upstream_spec("fast", upstream)])
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
    pool = Pool(
        [upstream_spec("gone", upstream, served_as="no-such-model"), upstream_spec("down", dead)]
    )
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
    pool = Pool([upstream_spec("limited", upstream), upstream_spec("fast", upstream)])
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


def _stream(pool: Pool, direct: bool) -> tuple[list[str], Any]:
    """One streamed request (pool order): the pieces of text it delivered, and its result or
    the exception it raised."""

    async def go() -> tuple[list[str], Any]:
        transport = DirectOpenAI() if direct else None
        ex = Executor(
            PoolOrderRouter(pool),
            pool=pool,
            transport=transport,
            max_retries=1,
            backoff=0.01,
            timeout=0.5,
        )
        pieces: list[str] = []
        try:
            async for item in ex.astream("Say something short, please."):
                if isinstance(item, StreamChunk):
                    pieces.append(item.text)
                else:
                    return pieces, item
            raise AssertionError("the stream ended without a result")
        except StreamInterruptedError as exc:
            return pieces, exc
        finally:
            if transport is not None:
                await transport.aclose()

    return asyncio.run(go())


def test_a_clean_stream_gives_the_same_pieces_tokens_and_cost(upstream: str) -> None:
    pool = Pool([upstream_spec("fast", upstream)])
    (lit_pieces, lit), (pieces, direct) = _stream(pool, False), _stream(pool, True)
    assert pieces == lit_pieces == ["w0"] + [f" w{i}" for i in range(1, 12)]
    assert direct.answer == lit.answer == "".join(pieces)
    assert (direct.input_tokens, direct.output_tokens) == (lit.input_tokens, lit.output_tokens)
    assert direct.output_tokens == 12  # the usage chunk was read (include_usage)
    assert math.isclose(direct.cost, lit.cost) and direct.cost_source == lit.cost_source == "pool"
    # The pieces are LiteLLM's own chunk type, as on LiteLLM's path.
    assert {type(c).__name__ for c in direct.response.chunks} == {"ModelResponseStream"}
    assert len(direct.response.chunks) == len(lit.response.chunks)


def test_a_stream_refused_before_its_first_piece_falls_back_alike(upstream: str) -> None:
    pool = Pool([upstream_spec("limited", upstream), upstream_spec("fast", upstream)])
    (lit_pieces, lit), (pieces, direct) = _stream(pool, False), _stream(pool, True)
    assert (
        _trace(direct)
        == _trace(lit)
        == [
            ("limited", "error", "RateLimitError", "retry"),
            ("limited", "error", "RateLimitError", "fallback"),
            ("fast", "success", None, None),
        ]
    )
    assert pieces == lit_pieces and direct.model == "fast"


@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [
        (Behaviour(rate_disconnect=1.0), "MidStreamFallbackError"),  # cut after a piece
        (Behaviour(piece_delay=2.0, words=3), "Timeout"),  # stalls longer than the timeout
    ],
)
def test_a_stream_that_fails_midway_stops_alike(behaviour: Behaviour, cause: str) -> None:
    pool_of = FakeUpstream({"midway": behaviour, "fast": Behaviour()})
    with running_app(pool_of.app) as url:
        pool = Pool([upstream_spec("midway", url), upstream_spec("fast", url)])
        (lit_pieces, lit), (pieces, direct) = _stream(pool, False), _stream(pool, True)
    # Text was delivered, so no fallback: the stream stops with what it said, on both paths.
    for exc in (lit, direct):
        assert isinstance(exc, StreamInterruptedError)
        assert exc.partial == "w0" and f": {cause}:" in str(exc)
    assert pieces == lit_pieces == ["w0"]
    assert _trace(direct) == _trace(lit) == [("midway", "error", cause, "stop")]


def test_which_calls_go_direct(upstream: str) -> None:
    base = {"model": "openai/fast", "api_base": upstream + "/v1", "messages": []}
    assert DirectOpenAI.handles(base)
    assert DirectOpenAI.handles({**base, "stream": True, "stream_options": {"include_usage": 1}})
    assert not DirectOpenAI.handles({**base, "model": "anthropic/claude"})
    assert not DirectOpenAI.handles({**base, "api_base": None})
    assert not DirectOpenAI.handles({**base, "mock_response": "hi"})  # LiteLLM's own argument


def _sse_app(body: bytes) -> Any:
    """An endpoint that answers every chat call with the raw event stream ``body``."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def chat(request: Any) -> Response:
        return Response(body, media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def _event(obj: dict[str, Any], newline: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps(obj).encode() + newline + newline


def _piece(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_event_streams_are_read_as_the_protocol_allows() -> None:
    """Comments, CRLF line ends and tool-call deltas are read; an error event fails the call."""
    call = {"index": 0, "id": "call_1", "type": "function"}
    body = (
        b": keep-alive\n\n"
        + _event(_piece({"role": "assistant", "content": "Hel"}), b"\r\n")
        + _event(_piece({"content": "lo"}))
        + _event(_piece({"tool_calls": [{**call, "function": {"name": "add", "arguments": "{"}}]}))
        + _event(_piece({"tool_calls": [{"index": 0, "function": {"arguments": '"a": 1}'}}]}))
        + _event(_piece({}, "tool_calls"))
        + b"data: [DONE]\n\n"
    )
    failing = _event(_piece({"content": "Hel"})) + _event({"error": {"message": "overloaded"}})

    async def go(url: str) -> list[Any]:
        transport = DirectOpenAI()
        kwargs = {"model": "openai/m", "api_base": url + "/v1", "messages": [], "stream": True}
        try:
            return [chunk async for chunk in await transport.acompletion(**kwargs)]
        finally:
            await transport.aclose()

    with running_app(_sse_app(body)) as url:
        chunks = asyncio.run(go(url))
    assert "".join(delta_text(c) for c in chunks) == "Hello"
    assert StreamedResponse(tuple(chunks)).tool_calls() == [
        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    with running_app(_sse_app(failing)) as url, pytest.raises(Exception, match="overloaded"):
        asyncio.run(go(url))
