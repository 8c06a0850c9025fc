"""The ``llmrouter/<key>`` LiteLLM provider: a routed pool behind one LiteLLM model id.

DSPy's LM layer talks to LiteLLM; a :class:`~dspy_llmrouter.RoutedLM` registers its
:class:`~llmrouter_core.execution.Executor` here under a key and calls the model
``llmrouter/<key>``. The handler routes each request with the executor (capability checks,
retries, fallbacks, budgets) and answers with the response of the model that actually
answered, renamed to that model, with its USD cost in ``_hidden_params["response_cost"]`` and
in ``usage`` (``cost``, and ``by_model`` per answering model), so DSPy's history and
``track_usage`` record both.

Routing options travel as LiteLLM arguments, so they are part of DSPy's cache key:
``cost_weight`` (lambda), ``pinned_model`` (call this pool model, no routing: a RoutedLM's
``model=`` option, named otherwise here because LiteLLM's ``model`` is the ``llmrouter/<key>``
id), ``max_cost`` (USD cap per request) and ``user`` (whose budget to charge).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from llmrouter_core.errors import LLMRouterError

__all__ = [
    "PIN_KEY",
    "POLICY_KEYS",
    "PROVIDER",
    "executor_for",
    "register_executor",
    "router_fingerprint",
]

logger = logging.getLogger(__name__)

#: LiteLLM provider name: model ids are ``llmrouter/<key>``.
PROVIDER = "llmrouter"
#: The LiteLLM argument that pins a pool model (a RoutedLM's ``model=`` option).
PIN_KEY = "pinned_model"
#: LiteLLM arguments read by the handler (never sent to a model); ``fixed_model`` is the
#: pin's old name, still read.
#: The LiteLLM argument that names the user (LiteLLM drops a custom provider's ``user``).
USER_KEY = "routed_user"
POLICY_KEYS = ("cost_weight", PIN_KEY, "max_cost", "user", USER_KEY, "fixed_model")
# LiteLLM / DSPy call controls that must not reach the executor's model calls: the executor
# owns retries, timeouts and keys; streaming is decided by the handler method.
_CONTROL_KEYS = frozenset(
    {
        "api_base",
        "api_key",
        "base_url",
        "cache",
        "caching",
        "custom_llm_provider",
        "extra_headers",
        "headers",
        "max_retries",
        "metadata",
        "num_retries",
        "retry_strategy",
        "rollout_id",
        "stream",
        "stream_options",
        "timeout",
    }
)
_STATUS = {
    "BudgetExceededError": 402,
    "NoEligibleModelError": 400,
    "InvalidRequestError": 400,
    "UnknownModelError": 400,
    "AllModelsFailedError": 502,
}

_lock = threading.Lock()
_executors: dict[str, Any] = {}


# -- registry -----------------------------------------------------------------------------


def register_executor(executor: Any, *, key: str | None = None) -> str:
    """Register ``executor`` under ``key`` (default: a fresh unique key); returns the key.

    A key that is already registered keeps its first executor: keys built from a content
    fingerprint name identical routing setups, so they may share one executor.
    """
    _ensure_provider()
    key = key or f"lm-{uuid.uuid4().hex[:12]}"
    with _lock:
        _executors.setdefault(key, executor)
        return key


def executor_for(key: str) -> Any:
    """The executor registered under ``key``."""
    with _lock:
        executor = _executors.get(key)
    if executor is None:
        raise LLMRouterError(
            f"no routed model {PROVIDER}/{key} in this process; create it with "
            "dspy_llmrouter.RoutedLM(router=...)"
        )
    return executor


def _ensure_provider() -> None:
    from llmrouter_core.providers import register_provider

    register_provider(PROVIDER, _make_handler)


# -- fingerprints (stable cache keys) -----------------------------------------------------


def router_fingerprint(router: Any) -> str | None:
    """A digest of everything a router's decisions depend on, or ``None`` if unknown.

    Trained routers are fingerprinted from their saved files (parameters, learned arrays,
    pool, calibration); the library's own version is left out. Two routers with the same
    fingerprint route every query the same way, so DSPy's cache may share their answers.
    """
    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.router import Router

    digest = hashlib.sha256()
    digest.update(f"{type(router).__module__}.{type(router).__qualname__}".encode())
    if isinstance(router, Router):
        import numpy as np

        with tempfile.TemporaryDirectory(prefix="llmrouter-fp-") as tmp:
            router.save(tmp)
            doc = json.loads((Path(tmp) / "router.json").read_text(encoding="utf-8"))
            doc.pop("library_version", None)
            digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
            with np.load(Path(tmp) / "arrays.npz", allow_pickle=False) as npz:
                for name in sorted(npz.files):
                    arr = np.ascontiguousarray(npz[name])
                    digest.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
                    digest.update(arr.tobytes())
        return digest.hexdigest()
    if isinstance(router, PoolOrderRouter):
        digest.update(
            json.dumps(
                [list(router.models_), router.pool_.to_dict()], sort_keys=True, default=str
            ).encode()
        )
        return digest.hexdigest()
    return None


def setup_fingerprint(router_digest: str, pool: Any, options: Mapping[str, Any]) -> str:
    """Digest of a router plus the execution pool and executor options."""
    digest = hashlib.sha256(router_digest.encode())
    digest.update(json.dumps(pool.to_dict(), sort_keys=True, default=str).encode())
    digest.update(json.dumps(dict(options), sort_keys=True, default=repr).encode())
    return digest.hexdigest()


# -- the LiteLLM handler ------------------------------------------------------------------


def split_params(optional_params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(policy, model kwargs)`` of a LiteLLM call's optional parameters."""
    policy: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    for key, value in optional_params.items():
        if key in POLICY_KEYS:
            if value is not None:
                policy[key] = value
        elif key not in _CONTROL_KEYS and value is not None:
            kwargs[key] = value
    return policy, kwargs


def _call_args(model: str, messages: Any, params: Mapping[str, Any]) -> tuple[Any, dict]:
    policy, kwargs = split_params(params)
    executor = executor_for(model)
    tools = kwargs.pop("tools", None)
    response_format = kwargs.pop("response_format", None)
    weight = policy.get("cost_weight")
    args = {
        "tools": tools,
        "response_format": response_format,
        "model": policy.get(PIN_KEY) or policy.get("fixed_model"),
        "max_cost": policy.get("max_cost"),
        "user": policy.get(USER_KEY) or policy.get("user"),
        "cost_weight": float(weight) if weight is not None else None,
        **kwargs,
    }
    return executor, {"messages": messages, **args}


def usage_block(result: Any) -> dict[str, Any]:
    """LiteLLM usage of an :class:`ExecutionResult`, with its cost and answering model."""
    return {
        "prompt_tokens": result.input_tokens,
        "completion_tokens": result.output_tokens,
        "total_tokens": result.input_tokens + result.output_tokens,
        "cost": result.cost,
        "by_model": {
            result.model: {
                "calls": 1,
                "cost": result.cost,
                "prompt_tokens": result.input_tokens,
                "completion_tokens": result.output_tokens,
            }
        },
    }


def routing_record(result: Any) -> dict[str, Any]:
    """What a response carries about its routing (JSON-safe)."""
    return {
        "model": result.model,
        "cost": result.known_cost,
        "cost_source": result.cost_source,
        "decision": None if result.decision is None else result.decision.to_dict(),
        "attempts": [a.to_dict() for a in result.attempts],
        "excluded": dict(result.excluded),
    }


def _message_of(result: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.answer or None}
    calls = []
    for call in result.tool_calls:
        fn = getattr(call, "function", None)
        calls.append(
            {
                "id": getattr(call, "id", None) or f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {
                    "name": getattr(fn, "name", None),
                    "arguments": getattr(fn, "arguments", None) or "{}",
                },
            }
        )
    if calls:
        message["tool_calls"] = calls
    return message


def _finish_reason(result: Any) -> str:
    try:
        reason = result.response.choices[0].finish_reason
    except (AttributeError, IndexError, TypeError):
        reason = None
    if result.tool_calls:
        return "tool_calls"
    return str(reason or "stop")


def _model_response(litellm: Any, result: Any) -> Any:
    response = litellm.ModelResponse(
        model=result.model,
        choices=[
            {"index": 0, "finish_reason": _finish_reason(result), "message": _message_of(result)}
        ],
        usage=usage_block(result),
        created=int(time.time()),
    )
    response._hidden_params["response_cost"] = result.cost
    response._hidden_params[PROVIDER] = routing_record(result)
    return response


def _stream_chunk(
    text: str, *, last: bool = False, usage: Any = None, tool: Any = None, reason: str = "stop"
) -> dict[str, Any]:
    return {
        "text": text,
        "is_finished": last,
        "finish_reason": reason if last else "",
        "index": 0,
        "tool_use": tool,
        "usage": usage,
    }


def _final_chunks(result: Any) -> Iterator[dict[str, Any]]:
    from llmrouter_core.execution.executor import StreamedResponse

    calls: list[dict[str, Any]] = []
    if isinstance(result.response, StreamedResponse):
        calls = result.response.tool_calls()
    usage = usage_block(result)
    for i, call in enumerate(calls):
        yield _stream_chunk("", tool={**call, "index": i})
    yield _stream_chunk("", last=True, usage=usage, reason="tool_calls" if calls else "stop")


def _make_handler() -> Any:
    from llmrouter_core._lazy import import_litellm

    litellm = import_litellm()
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    from llmrouter_core.execution import ExecutionResult, StreamChunk

    def failed(exc: Exception) -> Exception:
        status = _STATUS.get(type(exc).__name__)
        if status is None or not isinstance(exc, LLMRouterError):
            return exc
        return CustomLLMError(status_code=status, message=f"{type(exc).__name__}: {exc}")

    class RouterHandler(CustomLLM):  # type: ignore[misc]
        """LiteLLM handler of ``llmrouter/<key>``."""

        def completion(self, model: str, messages: Any, *a: Any, **k: Any) -> Any:
            executor, args = _call_args(model, messages, k.get("optional_params") or {})
            try:
                result = executor.complete(**args)
            except Exception as exc:
                raise failed(exc) from exc
            return _model_response(litellm, result)

        async def acompletion(self, model: str, messages: Any, *a: Any, **k: Any) -> Any:
            executor, args = _call_args(model, messages, k.get("optional_params") or {})
            try:
                result = await executor.acomplete(**args)
            except Exception as exc:
                raise failed(exc) from exc
            return _model_response(litellm, result)

        def streaming(self, model: str, messages: Any, *a: Any, **k: Any) -> Iterator[Any]:
            executor, args = _call_args(model, messages, k.get("optional_params") or {})
            try:
                for item in executor.stream(**args):
                    if isinstance(item, StreamChunk):
                        yield _stream_chunk(item.text)
                    elif isinstance(item, ExecutionResult):
                        yield from _final_chunks(item)
            except Exception as exc:
                raise failed(exc) from exc

        async def astreaming(  # type: ignore[override]
            self, model: str, messages: Any, *a: Any, **k: Any
        ) -> AsyncIterator[Any]:
            executor, args = _call_args(model, messages, k.get("optional_params") or {})
            try:
                async for item in executor.astream(**args):
                    if isinstance(item, StreamChunk):
                        yield _stream_chunk(item.text)
                    elif isinstance(item, ExecutionResult):
                        for chunk in _final_chunks(item):
                            yield chunk
            except Exception as exc:
                raise failed(exc) from exc

    return RouterHandler()
