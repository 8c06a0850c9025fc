"""A scripted LiteLLM provider for tests: models that answer what you tell them, fail how you
tell them, and record every call (no network, no keys). A script may also answer with tool
calls (:class:`ScriptedReply`) or read the whole request (a :class:`Responder`).

Example:
    >>> from llmrouter_core.testing import ScriptedProvider
    >>> provider = ScriptedProvider({"small": "4", "large": ["four", "4"]})
    >>> pool = provider.pool(prices={"small": 0.1, "large": 10.0})
    >>> pool["large"].litellm_model
    'scripted/large'
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from llmrouter_core.pool import ModelSpec, Pool

__all__ = ["PROVIDER", "Responder", "ScriptedCall", "ScriptedProvider", "ScriptedReply"]

#: The LiteLLM provider prefix of scripted models (``scripted/<name>``).
PROVIDER = "scripted"


@dataclass(frozen=True)
class ScriptedReply:
    """A scripted answer with tool calls.

    Attributes:
        text: The answer's text (may be empty when it calls tools).
        tool_calls: OpenAI-style tool calls (``{"id", "type": "function", "function":
            {"name", "arguments"}}``).
    """

    text: str = ""
    tool_calls: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class ScriptedCall:
    """One call a scripted model received."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    stream: bool


@runtime_checkable
class Responder(Protocol):
    """A script that reads the whole request (tools, response format, ``stop``, ...)."""

    def respond(self, call: ScriptedCall) -> str | ScriptedReply: ...


#: What a model does on a call: a reply (text or :class:`ScriptedReply`), a function of the
#: messages returning one, a :class:`Responder`, an exception to raise, or a list of those
#: consumed one per call (the last one repeats).
Script = (
    str
    | ScriptedReply
    | Callable[[list[dict[str, Any]]], str | ScriptedReply]
    | Responder
    | BaseException
    | Sequence[Any]
)


@dataclass
class _State:
    scripts: dict[str, Any]
    calls: list[ScriptedCall] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)


_lock = threading.Lock()
#: Model name -> the state of the provider that claimed it last.
_claims: dict[str, _State] = {}


class ScriptedProvider:
    """Scripted models behind LiteLLM's ``scripted/<name>`` provider.

    Args:
        scripts: model name -> :data:`Script`. An exception (e.g. one of LiteLLM's error
            types) is raised on the call, so an executor's retries and fallbacks can be
            tested; ``litellm.RateLimitError`` counts as transient, others move on.

    Calls are recorded in :attr:`calls`. Creating a provider (or :meth:`activate`) claims its
    model names: each name is answered by the provider that claimed it last, so providers of
    different models work side by side.
    """

    def __init__(self, scripts: Mapping[str, Script]) -> None:
        self._state = _State(dict(scripts))
        self.activate()

    def activate(self) -> ScriptedProvider:
        """Make this provider answer ``scripted/<name>`` calls of its models (registers the
        LiteLLM provider once)."""
        from llmrouter_core.providers._registry import register_provider

        with _lock:
            for name in self._state.scripts:
                _claims[name] = self._state
        register_provider(PROVIDER, _make_handler)
        return self

    @property
    def calls(self) -> list[ScriptedCall]:
        """Every call received, in order."""
        with _lock:
            return list(self._state.calls)

    def pool(self, prices: Mapping[str, float] | None = None, **spec: Any) -> Pool:
        """A pool of the scripted models (in script order) calling ``scripted/<name>``, each
        priced ``prices[name]`` USD per 1M input and output tokens (default 1.0); ``spec``
        sets further :class:`~llmrouter_core.pool.ModelSpec` fields of every model."""
        prices = prices or {}
        return Pool(
            ModelSpec(
                name,
                litellm_model=f"{PROVIDER}/{name}",
                input_price=float(prices.get(name, 1.0)),
                output_price=float(prices.get(name, 1.0)),
                **spec,
            )
            for name in self._state.scripts
        )


def _reply(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any], stream: bool
) -> ScriptedReply:
    call = ScriptedCall(model, list(messages), dict(params), stream)
    with _lock:
        state = _claims.get(model)
        if state is None:
            raise KeyError(f"no scripted model {model!r}")
        state.calls.append(call)
        script = state.scripts[model]
        if isinstance(script, Sequence) and not isinstance(script, str):
            k = state.served.get(model, 0)
            state.served[model] = k + 1
            script = script[min(k, len(script) - 1)]
    if isinstance(script, BaseException):
        raise script
    if isinstance(script, Responder):
        script = script.respond(call)
    elif callable(script):
        script = script(messages)
    if isinstance(script, ScriptedReply):
        return script
    return ScriptedReply(str(script))


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    return {
        "id": call.get("id") or f"call_{uuid.uuid4().hex[:16]}",
        "type": "function",
        "function": {
            "name": function.get("name"),
            "arguments": function.get("arguments") or "{}",
        },
    }


def _make_handler() -> Any:
    from llmrouter_core._lazy import import_litellm

    litellm = import_litellm()
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    def tokens(text: str) -> int:
        return max(1, len(text.split()))

    def answer(
        model: str, messages: list[dict[str, Any]], params: dict[str, Any], stream: bool
    ) -> tuple[str, list[dict[str, Any]], dict[str, int]]:
        try:
            reply = _reply(model, messages, params, stream=stream)
        except KeyError as exc:
            raise CustomLLMError(status_code=404, message=str(exc)) from None
        calls = [_tool_call(c) for c in reply.tool_calls]
        n_in = sum(tokens(str(m.get("content", ""))) for m in messages)
        n_out = tokens(reply.text) + sum(tokens(c["function"]["arguments"]) for c in calls)
        usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
        return reply.text, calls, usage

    def respond(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        text, calls, usage = answer(model, messages, params, stream=False)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        return litellm.ModelResponse(
            model=f"{PROVIDER}/{model}",
            choices=[
                {
                    "index": 0,
                    "finish_reason": "tool_calls" if calls else "stop",
                    "message": message,
                }
            ],
            usage=usage,
            created=int(time.time()),
        )

    def chunk(text: str = "", tool_use: Any = None, **last: Any) -> dict[str, Any]:
        return {
            "text": text,
            "is_finished": bool(last),
            "finish_reason": last.get("finish_reason", ""),
            "index": 0,
            "tool_use": tool_use,
            "usage": last.get("usage"),
        }

    def pieces(
        model: str, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        text, calls, usage = answer(model, messages, params, stream=True)
        if text or not calls:
            for i, word in enumerate(text.split(" ")):
                yield chunk(word if i == 0 else " " + word)
        for index, call in enumerate(calls):  # each call's arguments in two deltas
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            for k, part in enumerate((arguments[:half], arguments[half:])):
                function = {"name": call["function"]["name"] if k == 0 else None}
                function["arguments"] = part
                tool_use = {
                    "id": call["id"] if k == 0 else None,
                    "type": "function",
                    "function": function,
                    "index": index,
                }
                yield chunk(tool_use=tool_use)
        yield chunk(finish_reason="tool_calls" if calls else "stop", usage=usage)

    class Scripted(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any) -> Any:
            return respond(model, messages, k.get("optional_params") or {})

        async def acompletion(
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> Any:
            return respond(model, messages, k.get("optional_params") or {})

        def streaming(
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> Iterator[Any]:
            yield from pieces(model, messages, k.get("optional_params") or {})

        async def astreaming(  # type: ignore[override]
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> AsyncIterator[Any]:
            for chunk in pieces(model, messages, k.get("optional_params") or {}):
                yield chunk

    return Scripted()
