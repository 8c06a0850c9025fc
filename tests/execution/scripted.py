"""A scripted LiteLLM provider for fault injection: each call of a model takes the next outcome
of that model's script (an answer, an error, a stream that breaks mid-way, an interruption),
through LiteLLM's real custom-provider path (sync, async, streaming and async streaming)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Outcomes: "ok" (answer), an exception (raised at once), ("break", exc) (a stream delivers
#: two pieces, then ``exc``; a plain call raises ``exc``), "interrupt" (sync: one piece of a
#: stream, then KeyboardInterrupt; async: one piece, then wait until cancelled), or a callable
#: ``api_key -> exception`` (e.g. an error that echoes the key it was given).
Outcome = Any
PIECES = ("The answer ", "is 4.")


@dataclass
class Script:
    """Outcomes per model (consumed in order; "ok" once a script is empty) and a log."""

    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    #: USD reported as the cost of each answer (``None``: no report), or a function of the
    #: prompt and completion tokens.
    cost: float | Callable[[int, int], float] | None = None
    #: Seconds each call takes (so that concurrent calls overlap).
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, model: str, outcomes: Iterable[Outcome]) -> None:
        with self.lock:
            self.outcomes[model] = list(outcomes)

    def reset(self) -> None:
        with self.lock:
            self.outcomes.clear()
            self.calls.clear()

    def take(self, model: str, api_key: Any, stream: bool) -> Outcome:
        with self.lock:
            queue = self.outcomes.get(model) or []
            outcome = queue.pop(0) if queue else "ok"
            self.calls.append({"model": model, "api_key": api_key, "stream": stream})
        if callable(outcome) and not isinstance(outcome, BaseException):
            return outcome(api_key)
        return outcome

    def models_called(self) -> list[str]:
        return [c["model"] for c in self.calls]

    def report(self, usage: dict[str, int]) -> float | None:
        if callable(self.cost):
            return float(self.cost(usage["prompt_tokens"], usage["completion_tokens"]))
        return self.cost

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def usage_of(messages: list[Any]) -> dict[str, int]:
    """Token counts a real provider would report: about 4 characters per token."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    prompt = math.ceil(chars / 4) + 4 * len(messages)
    completion = math.ceil(len("".join(PIECES)) / 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def register_scripted(litellm: Any, provider: str) -> Script:
    """Register (or replace) the provider ``provider`` with a fresh :class:`Script`; pick a
    name no other test uses (the LangChain kit's provider is ``scripted``)."""
    from litellm.llms.custom_llm import CustomLLM

    script = Script()

    def answer(model: str, messages: list[Any]) -> Any:
        usage = usage_of(messages)
        response = litellm.ModelResponse(
            model=model,
            choices=[{"message": {"role": "assistant", "content": "".join(PIECES)}}],
            usage=usage,
        )
        cost = script.report(usage)
        if cost is not None:
            response._hidden_params["response_cost"] = cost
        return response

    def piece(text: str, messages: list[Any] | None = None) -> dict[str, Any]:
        last = messages is not None
        return {
            "text": text,
            "is_finished": last,
            "finish_reason": "stop" if last else "",
            "index": 0,
            "tool_use": None,
            "usage": usage_of(messages) if messages is not None else None,
        }

    class Scripted(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            outcome = script.take(model, k.get("api_key"), False)
            script.enter()
            try:
                time.sleep(script.delay)
                if outcome == "interrupt":
                    raise KeyboardInterrupt
                if isinstance(outcome, tuple):
                    raise outcome[1]
                if isinstance(outcome, BaseException):
                    raise outcome
                return answer(model, messages)
            finally:
                script.leave()

        async def acompletion(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            outcome = script.take(model, k.get("api_key"), False)
            script.enter()
            try:
                await asyncio.sleep(script.delay)
                if outcome == "interrupt":
                    await asyncio.Event().wait()  # until the caller's task is cancelled
                if isinstance(outcome, tuple):
                    raise outcome[1]
                if isinstance(outcome, BaseException):
                    raise outcome
                return answer(model, messages)
            finally:
                script.leave()

        def streaming(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            outcome = script.take(model, k.get("api_key"), True)
            if isinstance(outcome, BaseException):
                raise outcome
            script.enter()
            try:
                yield piece(PIECES[0])
                time.sleep(script.delay)
                if outcome == "interrupt":
                    raise KeyboardInterrupt
                if isinstance(outcome, tuple):
                    yield piece(PIECES[1])
                    raise outcome[1]
                yield piece(PIECES[1], messages)
            finally:
                script.leave()

        async def astreaming(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            outcome = script.take(model, k.get("api_key"), True)
            if isinstance(outcome, BaseException):
                raise outcome
            script.enter()
            try:
                yield piece(PIECES[0])
                await asyncio.sleep(script.delay)
                if outcome == "interrupt":
                    await asyncio.Event().wait()  # until the caller's task is cancelled
                if isinstance(outcome, tuple):
                    yield piece(PIECES[1])
                    raise outcome[1]
                yield piece(PIECES[1], messages)
            finally:
                script.leave()

    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p["provider"] != provider],
        {"provider": provider, "custom_handler": Scripted()},
    ]
    return script


def http_error(status: int, message: str) -> Exception:
    """The error a provider raises for an HTTP ``status`` (LiteLLM maps it to its class)."""
    from litellm.llms.custom_llm import CustomLLMError

    return CustomLLMError(status_code=status, message=message)
