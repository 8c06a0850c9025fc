"""A fake OpenAI-compatible upstream for tests and load benchmarks (loopback only).

``POST /v1/chat/completions`` answers every model with a short text, plain or streamed (SSE),
after a latency of its model's :class:`Behaviour`, which may also inject faults: a 429, a 500,
a hang past the client's timeout, or a stream cut mid-way. Faults are drawn from a seeded
generator, so a run is reproducible; :attr:`FakeUpstream.served` counts what was answered.

Example:
    >>> up = FakeUpstream({"fast": Behaviour(latency=0.0)})
    >>> up.behaviours["fast"].latency
    0.0
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Behaviour", "FakeUpstream"]


@dataclass(frozen=True)
class Behaviour:
    """How one fake model answers.

    Attributes:
        latency: Seconds before the answer (or before the first streamed piece).
        jitter: Extra seconds drawn uniformly in ``[0, jitter]``.
        rate_429: Share of calls answered with HTTP 429.
        rate_500: Share of calls answered with HTTP 500.
        rate_timeout: Share of calls that hang for ``hang`` seconds before answering.
        rate_disconnect: Share of streamed calls cut after the first piece.
        words: Words in an answer.
        hang: Seconds a hanging call waits.
        piece_delay: Seconds between streamed pieces.
    """

    latency: float = 0.0
    jitter: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_disconnect: float = 0.0
    words: int = 12
    hang: float = 30.0
    piece_delay: float = 0.0


class FakeUpstream:
    """The fake upstream: ``app`` is its ASGI application.

    Args:
        behaviours: Model name -> :class:`Behaviour` (an unknown model gets a 404).
        seed: Seed of the fault draws.
    """

    def __init__(self, behaviours: Mapping[str, Behaviour], *, seed: int = 0) -> None:
        self.behaviours = dict(behaviours)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        #: Outcomes served: ``ok``, ``429``, ``500``, ``timeout``, ``disconnect``.
        self.served: Counter[str] = Counter()
        self.app = self._build()

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def _fault(self, b: Behaviour, stream: bool) -> str | None:
        x = self._draw()
        for name, rate in (
            ("429", b.rate_429),
            ("500", b.rate_500),
            ("timeout", b.rate_timeout),
            ("disconnect", b.rate_disconnect if stream else 0.0),
        ):
            if x < rate:
                return name
            x -= rate
        return None

    def _build(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def chat(request: Request) -> Response:
            body = await request.json()
            model = str(body.get("model", ""))
            b = self.behaviours.get(model)
            if b is None:
                return JSONResponse(_error("model not found", "not_found_error"), 404)
            stream = bool(body.get("stream"))
            fault = self._fault(b, stream)
            delay = b.latency + (b.jitter * self._draw() if b.jitter else 0.0)
            if fault == "timeout":
                delay = b.hang
            await asyncio.sleep(delay)
            if fault in ("429", "500"):
                self.served[fault] += 1
                kind = "rate_limit_error" if fault == "429" else "server_error"
                return JSONResponse(_error(f"injected {fault}", kind), int(fault))
            words = [f"w{i}" for i in range(b.words)]
            prompt_tokens = sum(
                len(str(m.get("content", "")).split()) for m in body.get("messages") or []
            )
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            }
            rid, created = f"chatcmpl-up{time.time_ns()}", int(time.time())
            if not stream:
                self.served["timeout" if fault == "timeout" else "ok"] += 1
                return JSONResponse(
                    {
                        "id": rid,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": " ".join(words)},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    }
                )

            async def events() -> AsyncIterator[bytes]:
                def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                    obj = {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                    return b"data: " + json.dumps(obj).encode() + b"\n\n"

                yield chunk({"role": "assistant", "content": ""})
                for i, w in enumerate(words):
                    if b.piece_delay and i:
                        await asyncio.sleep(b.piece_delay)
                    yield chunk({"content": w if i == 0 else " " + w})
                    if fault == "disconnect":
                        self.served["disconnect"] += 1
                        raise ConnectionResetError("injected mid-stream disconnect")
                yield chunk({}, "stop")
                if (body.get("stream_options") or {}).get("include_usage"):
                    tail = {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                    yield b"data: " + json.dumps(tail).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
                self.served["timeout" if fault == "timeout" else "ok"] += 1

            return StreamingResponse(events(), media_type="text/event-stream")

        async def models(request: Request) -> Response:
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.behaviours]
            return JSONResponse({"object": "list", "data": data})

        return Starlette(
            routes=[
                Route("/v1/chat/completions", chat, methods=["POST"]),
                Route("/v1/models", models, methods=["GET"]),
            ]
        )


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
