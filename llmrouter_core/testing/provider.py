"""A scripted LiteLLM provider for tests: models that answer what you tell them, fail how you
tell them, and record every call (no network, no keys).

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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmrouter_core.pool import ModelSpec, Pool

__all__ = ["PROVIDER", "ScriptedCall", "ScriptedProvider"]

#: The LiteLLM provider prefix of scripted models (``scripted/<name>``).
PROVIDER = "scripted"

#: What a model does on a call: a reply, a function of the messages returning one, an
#: exception to raise, or a list of those consumed one per call (the last one repeats).
Script = str | Callable[[list[dict[str, Any]]], str] | BaseException | Sequence[Any]


@dataclass(frozen=True)
class ScriptedCall:
    """One call a scripted model received."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    stream: bool


@dataclass
class _State:
    scripts: dict[str, Any]
    calls: list[ScriptedCall] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)


_lock = threading.Lock()
_active: _State | None = None


class ScriptedProvider:
    """Scripted models behind LiteLLM's ``scripted/<name>`` provider.

    Args:
        scripts: model name -> :data:`Script`. An exception (e.g. one of LiteLLM's error
            types) is raised on the call, so an executor's retries and fallbacks can be
            tested; ``litellm.RateLimitError`` counts as transient, others move on.

    Calls are recorded in :attr:`calls`. One scripted provider is active per process (the
    latest created or :meth:`activate`-d).
    """

    def __init__(self, scripts: Mapping[str, Script]) -> None:
        self._state = _State(dict(scripts))
        self.activate()

    def activate(self) -> ScriptedProvider:
        """Make this provider answer ``scripted/`` calls (registers it with LiteLLM once)."""
        global _active
        from llmrouter_core.providers._registry import register_provider

        with _lock:
            _active = self._state
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


def _reply(model: str, messages: list[dict[str, Any]], params: dict[str, Any], stream: bool) -> str:
    with _lock:
        state = _active
        if state is None or model not in state.scripts:
            raise KeyError(f"no scripted model {model!r}")
        state.calls.append(ScriptedCall(model, list(messages), dict(params), stream))
        script = state.scripts[model]
        if isinstance(script, Sequence) and not isinstance(script, str):
            k = state.served.get(model, 0)
            state.served[model] = k + 1
            script = script[min(k, len(script) - 1)]
    if isinstance(script, BaseException):
        raise script
    if callable(script):
        return str(script(messages))
    return str(script)


def _make_handler() -> Any:
    from llmrouter_core._lazy import import_litellm

    litellm = import_litellm()
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    def tokens(text: str) -> int:
        return max(1, len(text.split()))

    def respond(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        try:
            text = _reply(model, messages, params, stream=False)
        except KeyError as exc:
            raise CustomLLMError(status_code=404, message=str(exc)) from None
        n_in = sum(tokens(str(m.get("content", ""))) for m in messages)
        return litellm.ModelResponse(
            model=f"{PROVIDER}/{model}",
            choices=[
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            usage={
                "prompt_tokens": n_in,
                "completion_tokens": tokens(text),
                "total_tokens": n_in + tokens(text),
            },
            created=int(time.time()),
        )

    def pieces(
        model: str, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        try:
            text = _reply(model, messages, params, stream=True)
        except KeyError as exc:
            raise CustomLLMError(status_code=404, message=str(exc)) from None
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            yield {
                "text": piece,
                "is_finished": False,
                "finish_reason": "",
                "index": 0,
                "tool_use": None,
                "usage": None,
            }
        n_in = sum(tokens(str(m.get("content", ""))) for m in messages)
        usage = {
            "prompt_tokens": n_in,
            "completion_tokens": tokens(text),
            "total_tokens": n_in + tokens(text),
        }
        yield {
            "text": "",
            "is_finished": True,
            "finish_reason": "stop",
            "index": 0,
            "tool_use": None,
            "usage": usage,
        }

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
