"""Routers inside LiteLLM's proxy: a custom provider ``llmrouter`` for ``litellm --config``.

LiteLLM's proxy loads ``handler`` from this module (``custom_provider_map``); a deployment
whose model is ``llmrouter/<router>`` (knobs as in ``llmrouter serve``:
``llmrouter/auto:cost_weight=200``) is then answered by that router: it picks the model, the
executor calls it (retries, fallbacks down the ranking), and the response names the model that
answered. LiteLLM's own keys, budgets, rate limits, logging and Redis-backed scale-out apply
on top as for any model::

    model_list:
      - model_name: llmrouter/auto
        litellm_params:
          model: llmrouter/auto
    litellm_settings:
      custom_provider_map:
        - provider: llmrouter
          custom_handler: llmrouter_core.serving.litellm_proxy.handler

The routers come from ``LLMROUTER_ROUTERS``: ``NAME=DIR`` pairs separated by commas (a bare
``DIR`` is served under the router's registered name). ``LLMROUTER_POOL`` names a pool file
to call the models through; with ``LLMROUTER_REPLAY_DATA`` set, every model answers with the
responses recorded in that dataset (offline). ``LLMROUTER_TRUST_ENDPOINTS=1`` uses endpoints
saved in the router directories. Async calls of plain OpenAI-compatible endpoints go direct
(:class:`~llmrouter_core.execution.DirectOpenAI`), as in ``llmrouter serve``;
``LLMROUTER_LITELLM_CALLS=1`` sends every model call through LiteLLM's call path instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from llmrouter_core._lazy import import_litellm
from llmrouter_core.errors import LLMRouterError, PersistenceError
from llmrouter_core.execution import DirectOpenAI, ExecutionResult, Executor, StreamChunk
from llmrouter_core.serving.protocol import ROUTER_PREFIX, ApiError, parse_model

__all__ = ["ROUTERS_ENV", "LLMRouterProvider", "handler"]

#: ``NAME=DIR[,NAME=DIR...]``: the routers the provider serves.
ROUTERS_ENV = "LLMROUTER_ROUTERS"
POOL_ENV = "LLMROUTER_POOL"
TRUST_ENV = "LLMROUTER_TRUST_ENDPOINTS"
LITELLM_CALLS_ENV = "LLMROUTER_LITELLM_CALLS"

litellm = import_litellm()
from litellm.llms.custom_llm import CustomLLM, CustomLLMError  # noqa: E402


def load_routers(spec: str, *, trust_endpoints: bool = False) -> dict[str, Any]:
    """``{name: router}`` from ``NAME=DIR[,NAME=DIR...]``."""
    from llmrouter_core.persistence import load_router

    out: dict[str, Any] = {}
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        name, sep, path = item.partition("=")
        if not sep or Path(item).exists():
            name, path = "", item
        router = load_router(Path(path), trust_endpoints=trust_endpoints)
        out[name or str(getattr(router, "name", "") or Path(path).name)] = router
    if not out:
        raise PersistenceError(f"{ROUTERS_ENV} names no router directory (NAME=DIR,...)")
    return out


class LLMRouterProvider(CustomLLM):  # type: ignore[misc]
    """The ``llmrouter`` LiteLLM provider: one executor per served router, built on first use
    from the environment (see the module's documentation)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._executors: dict[str, Executor] | None = None

    def executors(self) -> dict[str, Executor]:
        with self._lock:
            if self._executors is None:
                self._executors = _build_executors()
            return self._executors

    def _prepare(self, model: str, optional_params: dict[str, Any] | None) -> tuple[Executor, Any]:
        try:
            target = parse_model(ROUTER_PREFIX + model.removeprefix(ROUTER_PREFIX))
        except ApiError as exc:
            raise CustomLLMError(status_code=400, message=exc.message) from None
        executors = self.executors()
        assert target.router is not None
        ex = executors.get(target.router)
        if ex is None:
            raise CustomLLMError(
                status_code=404,
                message=f"unknown router {target.router!r}; served: {', '.join(executors)}",
            )
        params = dict(optional_params or {})
        args: dict[str, Any] = {
            k: params[k]
            for k in ("temperature", "top_p", "max_tokens", "stop", "seed", "tool_choice")
            if params.get(k) is not None
        }
        if params.get("tools"):
            args["tools"] = params["tools"]
        if params.get("response_format") is not None:
            args["response_format"] = params["response_format"]
        knobs = dict(target.knobs)
        if "budget" in knobs:
            knobs["cost_weight"] = float(ex.router.cost_weight_for_budget(knobs.pop("budget")))
        args.update(knobs)
        return ex, args

    async def acompletion(self, model: str, messages: list, *a: Any, **k: Any) -> Any:
        ex, args = self._prepare(model, k.get("optional_params"))
        try:
            result = await ex.acomplete(messages, **args)
        except LLMRouterError as exc:
            raise _error(exc) from None
        return _response(result)

    def completion(self, model: str, messages: list, *a: Any, **k: Any) -> Any:
        ex, args = self._prepare(model, k.get("optional_params"))
        try:
            result = ex.complete(messages, **args)
        except LLMRouterError as exc:
            raise _error(exc) from None
        return _response(result)

    async def astreaming(  # type: ignore[override]
        self, model: str, messages: list, *a: Any, **k: Any
    ) -> AsyncIterator[dict[str, Any]]:
        ex, args = self._prepare(model, k.get("optional_params"))
        if args.get("tools"):  # tool calls arrive whole: one call, sent as one piece
            result = await ex.acomplete(messages, **args)
            yield _final(result, text=result.answer)
            return
        stream = ex.astream(messages, **args)
        try:
            async for item in stream:
                if isinstance(item, StreamChunk):
                    yield _piece(item.text)
                else:
                    yield _final(item)
        except LLMRouterError as exc:
            raise _error(exc) from None
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def streaming(  # type: ignore[override]
        self, model: str, messages: list, *a: Any, **k: Any
    ) -> Iterator[dict[str, Any]]:
        ex, args = self._prepare(model, k.get("optional_params"))
        try:
            for item in ex.stream(messages, **args):
                yield _piece(item.text) if isinstance(item, StreamChunk) else _final(item)
        except LLMRouterError as exc:
            raise _error(exc) from None


def _build_executors() -> dict[str, Executor]:
    from llmrouter_core.pool import Pool

    spec = os.environ.get(ROUTERS_ENV, "")
    trust = os.environ.get(TRUST_ENV, "") in ("1", "true", "yes")
    routers = load_routers(spec, trust_endpoints=trust)
    pool_file = os.environ.get(POOL_ENV)
    direct = os.environ.get(LITELLM_CALLS_ENV, "") not in ("1", "true", "yes")
    transport = DirectOpenAI(litellm) if direct else None
    out = {}
    for name, router in routers.items():
        pool = Pool.from_file(pool_file) if pool_file else router.pool_
        if os.environ.get("LLMROUTER_REPLAY_DATA"):
            from llmrouter_core.providers.replay import replay_pool

            pool = replay_pool(pool)
        out[name] = Executor(router, pool=pool, transport=transport)
    return out


def _error(exc: LLMRouterError) -> CustomLLMError:
    from llmrouter_core.serving.app import api_error_of

    err = api_error_of(exc)
    return CustomLLMError(status_code=err.status, message=err.message)


def _response(result: ExecutionResult) -> Any:
    """The answering call's response, named after the pool model that answered."""
    response = result.response
    if response is None:  # a plan's answer accepted before its last stage
        response = litellm.ModelResponse(
            choices=[{"index": 0, "message": {"role": "assistant", "content": result.answer}}]
        )
    response.model = result.model
    hidden = dict(getattr(response, "_hidden_params", None) or {})
    hidden["additional_headers"] = {
        **(hidden.get("additional_headers") or {}),
        "x-llmrouter-model": result.model,
        "x-llmrouter-cost": repr(float(result.cost)),
    }
    hidden["response_cost"] = result.cost
    response._hidden_params = hidden
    return response


def _piece(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "is_finished": False,
        "finish_reason": "",
        "index": 0,
        "tool_use": None,
        "usage": None,
    }


def _final(result: ExecutionResult, text: str = "") -> dict[str, Any]:
    usage = {
        "prompt_tokens": result.input_tokens,
        "completion_tokens": result.output_tokens,
        "total_tokens": result.input_tokens + result.output_tokens,
    }
    return {
        "text": text,
        "is_finished": True,
        "finish_reason": "stop",
        "index": 0,
        "tool_use": None,
        "usage": usage,
    }


#: The instance LiteLLM's proxy loads (``custom_handler: <this module>.handler``).
handler = LLMRouterProvider()
