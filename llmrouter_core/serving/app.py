"""The ``llmrouter serve`` application: an OpenAI-compatible chat-completions server that routes.

:func:`create_app` builds a Starlette (ASGI) application from a :class:`ServeConfig`; any ASGI
server runs it (``llmrouter serve`` uses uvicorn, see :mod:`llmrouter_core.serving.server`).

Endpoints: ``POST /v1/chat/completions`` (plain and SSE streaming), ``GET /v1/models``,
``POST /v1/feedback``, ``GET /health``, ``GET /ready``, ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from llmrouter_core.errors import DataError, LLMRouterError, MissingExtraError, UnknownModelError
from llmrouter_core.execution import (
    BudgetExceededError,
    DirectOpenAI,
    ExecutionError,
    ExecutionResult,
    Executor,
    InvalidRequestError,
    NoEligibleModelError,
    StreamChunk,
)
from llmrouter_core.pool import Pool
from llmrouter_core.serving.feedback import apply_feedback, check_feedback
from llmrouter_core.serving.keys import ApiKey, KeyRing
from llmrouter_core.serving.metrics import Metrics
from llmrouter_core.serving.protocol import (
    ROUTER_PREFIX,
    ApiError,
    ChatCall,
    chunk_body,
    completion_body,
    extension,
    flow_body,
    new_id,
    parse_chat,
    tool_calls_of,
    usage_body,
)
from llmrouter_core.serving.state import LocalState, SharedState

__all__ = ["ServeConfig", "Service", "create_app"]

logger = logging.getLogger("llmrouter_core.serving")


@dataclass
class ServeConfig:
    """What a server serves and how.

    Attributes:
        routers: Router name -> fitted router (served as ``llmrouter/<name>``).
        pool: The pool the models are called through (default: each router's own). Its
            model names are also served unrouted.
        keys: The accepted bearer keys (``None``: no authentication, for loopback use).
        state: Shared state (default: in this process; :class:`RedisState` to scale out).
        max_body_bytes: Largest request body accepted (413 above).
        max_prompt_chars: Largest prompt, in characters of message text (400 above).
        timeout: Seconds per model call.
        max_retries: Retries of a model on a transient failure.
        admission_timeout: Seconds a call may wait for budget room held by calls in flight.
        drain_timeout: Seconds a shutdown waits for requests in flight.
        log_prompts: Log prompt texts (off: only sizes, models, costs and key names).
        direct: Call OpenAI-compatible pool models (``openai/...`` with an ``api_base``)
            directly (:class:`~llmrouter_core.execution.DirectOpenAI`), not through LiteLLM's
            call path; streams and other providers go through LiteLLM either way.
    """

    routers: Mapping[str, Any]
    pool: Pool | None = None
    keys: KeyRing | None = None
    state: SharedState | None = None
    max_body_bytes: int = 1_000_000
    max_prompt_chars: int = 200_000
    timeout: float = 60.0
    max_retries: int = 2
    admission_timeout: float = 5.0
    drain_timeout: float = 30.0
    log_prompts: bool = False
    direct: bool = True
    executor_kwargs: dict[str, Any] = field(default_factory=dict)


class Service:
    """The server's state: executors per router and key, metrics, draining."""

    def __init__(self, config: ServeConfig) -> None:
        if not config.routers:
            raise InvalidRequestError("serve at least one router")
        self.config = config
        self.state: SharedState = config.state if config.state is not None else LocalState()
        self.metrics = Metrics()
        self.draining = False
        self.ready = False
        self._executors: dict[tuple[str, str | None], Executor] = {}
        first = next(iter(config.routers.values()))
        self.pool: Pool = config.pool if config.pool is not None else first.pool_
        self.default_router = next(iter(config.routers))
        # One transport (one connection pool) for every executor of this server.
        self.transport = DirectOpenAI() if config.direct else None

    # -- executors ----------------------------------------------------------------------------
    def executor(self, router: str, key: ApiKey | None) -> Executor:
        """The executor of ``router`` for ``key`` (one per key: its budget is the key's)."""
        cache = (router, key.name if key is not None and key.budget is not None else None)
        ex = self._executors.get(cache)
        if ex is None:
            cfg = self.config
            budget = (
                None
                if cache[1] is None or key is None or key.budget is None
                else self.state.budget(key.name, key.budget)
            )
            ex = self._executors[cache] = Executor(
                cfg.routers[router],
                pool=self.pool,
                budget=budget,
                timeout=cfg.timeout,
                max_retries=cfg.max_retries,
                admission_timeout=cfg.admission_timeout,
                transport=self.transport,
                **cfg.executor_kwargs,
            )
        return ex

    def warm_up(self) -> None:
        """Import what the first call of each provider needs (LiteLLM loads provider code on
        first use; that would stall the event loop under the first requests). Calls no model:
        LiteLLM's ``mock_response`` answers."""
        from llmrouter_core._lazy import import_litellm

        litellm = import_litellm()
        seen: set[str] = set()
        for spec in self.pool:
            provider = spec.litellm_model.partition("/")[0]
            if provider in seen:
                continue
            seen.add(provider)
            try:
                litellm.completion(
                    model=spec.litellm_model,
                    messages=[{"role": "user", "content": "warm-up"}],
                    mock_response="ok",
                )
            except Exception as exc:  # a warm-up only: the first real call will tell
                logger.debug("warm-up of %s: %s", provider, type(exc).__name__)

    @property
    def in_flight(self) -> int:
        return self.metrics.in_flight

    # -- auth -----------------------------------------------------------------------------------
    async def authorize(self, headers: Mapping[str, str]) -> ApiKey | None:
        ring = self.config.keys
        if ring is None:
            return None
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing bearer API key", code="invalid_api_key", kind="auth")
        key = ring.lookup(token.strip())
        if key is None:
            raise ApiError(401, "invalid API key", code="invalid_api_key", kind="auth")
        if key.rpm is not None and not await self.state.allow(key.name, key.rpm):
            raise ApiError(
                429,
                f"rate limit of {key.rpm} requests per minute reached",
                code="rate_limit_exceeded",
                kind="rate_limit",
            )
        return key

    # -- requests -------------------------------------------------------------------------------
    def resolve(self, call: ChatCall, key: ApiKey | None) -> tuple[str, str | None]:
        """``(router to execute with, pool model or None)`` of a request."""
        target = call.target
        if target.router is not None:
            if target.router not in self.config.routers:
                raise ApiError(
                    404,
                    f"unknown model {ROUTER_PREFIX}{target.router}; this server routes with: "
                    + ", ".join(ROUTER_PREFIX + r for r in self.config.routers),
                    code="model_not_found",
                    param="model",
                )
            if key is not None and not key.allows(target.router):
                raise ApiError(
                    403,
                    f"this key may not use {ROUTER_PREFIX}{target.router}",
                    code="model_not_allowed",
                    kind="forbidden",
                )
            return target.router, None
        model = str(target.model)
        if model not in self.pool.names:
            raise ApiError(
                404,
                f"unknown model {model!r}; see GET /v1/models",
                code="model_not_found",
                param="model",
            )
        if key is not None and not key.allows(None):
            raise ApiError(
                403,
                "this key may only use routed models (llmrouter/<router>)",
                code="model_not_allowed",
                kind="forbidden",
            )
        return self.default_router, model

    def arguments(self, call: ChatCall, router: str, model: str | None) -> dict[str, Any]:
        """The executor arguments of ``call``."""
        cost_weight = call.cost_weight
        if call.budget is not None:
            r = self.config.routers[router]
            if not hasattr(r, "cost_weight_for_budget"):
                raise ApiError(400, f"router {router} has no budget calibration", param="llmrouter")
            try:
                cost_weight = float(r.cost_weight_for_budget(call.budget))
            except (LLMRouterError, ValueError) as exc:
                raise ApiError(400, str(exc), param="llmrouter") from None
        return {
            "tools": call.tools,
            "response_format": call.response_format,
            "model": model,
            "max_cost": call.max_cost,
            "user": call.user,
            "cost_weight": cost_weight,
            **call.kwargs,
        }


def api_error_of(exc: BaseException) -> ApiError:
    """The error answer of an exception raised while executing a request."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BudgetExceededError):
        return ApiError(429, str(exc), code="insufficient_quota", kind="budget")
    if isinstance(exc, NoEligibleModelError):
        return ApiError(400, _first_line(exc), code="no_eligible_model", kind="no_model")
    if isinstance(exc, UnknownModelError):
        return ApiError(404, str(exc), code="model_not_found", param="model")
    if isinstance(exc, ExecutionError):
        return ApiError(502, _first_line(exc), code="upstream_error", kind="upstream")
    if isinstance(exc, InvalidRequestError | DataError | ValueError | TypeError):
        return ApiError(400, _first_line(exc))
    logger.error("internal error: %s", type(exc).__name__, exc_info=exc)
    return ApiError(500, "internal server error", code="internal_error", kind="internal")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return " ".join(x.strip() for x in lines[:6]) if lines else type(exc).__name__


# -- the ASGI application ---------------------------------------------------------------------


def create_app(config: ServeConfig) -> Any:
    """The Starlette application serving ``config`` (``app.state.service`` is its
    :class:`Service`)."""
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
        from starlette.routing import Route
    except ImportError:
        raise MissingExtraError("starlette", "serve", "llmrouter serve") from None

    service = Service(config)

    def error_response(err: ApiError, endpoint: str) -> Response:
        service.metrics.request(endpoint, err.status)
        service.metrics.error(err.kind)
        headers = {"retry-after": "1"} if err.status in (429, 503) else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    async def read_json(request: Request) -> Any:
        limit = config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"request body over {limit} bytes", code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body over {limit} bytes", code="request_too_large")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(
                400, f"the body is not valid JSON ({exc})", code="invalid_json"
            ) from None
        except RecursionError:
            raise ApiError(400, "the body is nested too deeply", code="invalid_json") from None

    def log_answer(
        key: ApiKey | None, call: ChatCall, router: str, result: ExecutionResult, wall: float
    ) -> None:
        if logger.isEnabledFor(logging.INFO):
            prompt = f" prompt={json.dumps(call.messages)[:2000]}" if config.log_prompts else ""
            logger.info(
                "chat key=%s router=%s model=%s cost=%.6g latency=%.3fs chars=%d%s",
                key.name if key else "-",
                router,
                result.model,
                result.cost,
                wall,
                call.prompt_chars,
                prompt,
            )

    def account(shown: str | None, result: ExecutionResult, started: float) -> None:
        wall = time.perf_counter() - started
        in_models = sum(a.latency_s for a in result.attempts if a.outcome != "skipped")
        service.metrics.answered(shown or "unrouted", result.model, result.cost, wall - in_models)

    def headers_of(result_model: str, router: str | None, cost: float | None) -> dict[str, str]:
        out = {"x-llmrouter-model": result_model}
        if router is not None:
            out["x-llmrouter-router"] = router
        if cost is not None:
            out["x-llmrouter-cost"] = repr(float(cost))
        return out

    async def chat(request: Request) -> Response:
        endpoint = "/v1/chat/completions"
        started = time.perf_counter()
        if service.draining:
            return error_response(
                ApiError(503, "the server is shutting down", code="shutting_down", kind="draining"),
                endpoint,
            )
        service.metrics.in_flight += 1
        streaming = False
        try:
            key = await service.authorize(request.headers)
            call = parse_chat(await read_json(request), max_prompt_chars=config.max_prompt_chars)
            router, model = service.resolve(call, key)
            ex = service.executor(router, key)
            args = service.arguments(call, router, model)
            shown = None if model is not None else ROUTER_PREFIX + router
            if call.flow is not None:
                response = await flow_answer(ex, call, args["cost_weight"], router, key, started)
                streaming = isinstance(response, StreamingResponse)  # it counts itself out
                return response
            if call.stream:
                response = await stream(ex, call, args, shown, router, key, started)
                streaming = True
                return response
            try:
                result = await ex.acomplete(call.messages, **args)
            except Exception as exc:
                raise api_error_of(exc) from None
            account(shown, result, started)
            log_answer(key, call, router, result, time.perf_counter() - started)
            service.metrics.request(endpoint, 200)
            return JSONResponse(
                completion_body(result, router=shown, explain=call.explain),
                headers=headers_of(result.model, shown, result.cost),
            )
        except ApiError as err:
            return error_response(err, endpoint)
        finally:
            if not streaming:
                service.metrics.in_flight -= 1

    def flow_done(
        result: Any, call: ChatCall, router: str, key: ApiKey | None, started: float
    ) -> dict[str, Any]:
        """The body of a flow's answer, counted and logged."""
        shown = ROUTER_PREFIX + router
        body = flow_body(result, router=shown, flow=str(call.flow), explain=call.explain)
        model, wall = body["model"], time.perf_counter() - started
        in_models = sum(s.latency_s for s in result.steps if s.role == "call")
        service.metrics.answered(shown, model, result.cost, wall - in_models)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "flow key=%s router=%s flow=%s models=%s cost=%.6g latency=%.3fs",
                key.name if key else "-",
                router,
                call.flow,
                model,
                result.cost,
                wall,
            )
        return body

    def flow_tail(rid: str, created: int, body: dict[str, Any], call: ChatCall, rest: str) -> bytes:
        """The end of a streamed flow answer: the text not sent yet, the last chunk (with the
        ``llmrouter`` extension), the usage chunk if asked, ``[DONE]``."""
        model = body["model"]
        pieces = [chunk_body(rid, model, delta={"content": rest}, created=created)] if rest else []
        last = chunk_body(rid, model, finish_reason="stop", created=created)
        pieces.append({**last, "llmrouter": body["llmrouter"]})
        if call.include_usage:
            pieces.append({**chunk_body(rid, model, created=created), "choices": []})
            pieces[-1]["usage"] = body["usage"]
        return b"".join(sse(p) for p in pieces) + b"data: [DONE]\n\n"

    async def flow_answer(
        ex: Executor,
        call: ChatCall,
        cost_weight: float | None,
        router: str,
        key: ApiKey | None,
        started: float,
    ) -> Response:
        """Answer with a flow (``"llmrouter": {"flow": ...}``). Streamed, the answer's text
        goes out as the call that makes it streams; a flow whose answer no call streamed
        (the parts' concatenation, a multi-round answer) sends it as one piece at the end."""
        endpoint, shown = "/v1/chat/completions", ROUTER_PREFIX + router
        texts: asyncio.Queue[str | None] = asyncio.Queue()
        on_text = texts.put_nowait if call.stream else None
        task = asyncio.ensure_future(run_flow(ex, call, cost_weight, on_text=on_text))
        task.add_done_callback(lambda _: texts.put_nowait(None))
        try:
            first = await texts.get()  # the first text, or None once the flow has ended
        except BaseException:
            task.cancel()
            raise
        if first is not None:
            return flow_stream(task, texts, first, call, router, key, started)
        try:
            result = task.result()
        except Exception as exc:
            raise api_error_of(exc) from None
        body = flow_done(result, call, router, key, started)
        service.metrics.request(endpoint, 200)
        headers = headers_of(body["model"], shown, result.cost)
        if not call.stream:
            return JSONResponse(body, headers=headers)
        rid, created = body["id"], body["created"]
        role = chunk_body(
            rid, body["model"], delta={"role": "assistant", "content": ""}, created=created
        )
        return Response(
            sse(role) + flow_tail(rid, created, body, call, result.answer),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    def flow_stream(
        task: asyncio.Future[Any],
        texts: asyncio.Queue[str | None],
        first: str,
        call: ChatCall,
        router: str,
        key: ApiKey | None,
        started: float,
    ) -> Response:
        """The SSE answer of a flow whose answer is streaming (``first``: its first text)."""
        endpoint, shown = "/v1/chat/completions", ROUTER_PREFIX + router
        rid, created = new_id(), int(time.time())

        async def events() -> AsyncIterator[bytes]:
            status = 499  # the client went away, unless set below
            text: str | None
            try:
                yield sse(
                    chunk_body(
                        rid, shown, delta={"role": "assistant", "content": ""}, created=created
                    )
                )
                sent, text = "", first
                while text is not None:
                    sent += text
                    yield sse(chunk_body(rid, shown, delta={"content": text}, created=created))
                    text = await texts.get()
                try:
                    result = task.result()
                except Exception as exc:  # the stream failed after its text began
                    err = api_error_of(exc)
                    status = err.status
                    service.metrics.error(err.kind)
                    yield sse(err.body())
                    return
                body = flow_done(result, call, router, key, started)
                # The flow's answer is the streamed reply; anything beyond it goes out now.
                rest = result.answer[len(sent) :] if result.answer.startswith(sent) else ""
                yield flow_tail(rid, created, body, call, rest)
                status = 200
            finally:
                task.cancel()  # a no-op once the flow has ended
                service.metrics.in_flight -= 1
                service.metrics.request(endpoint, status)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"x-llmrouter-router": shown, "cache-control": "no-cache"},
        )

    async def stream(
        ex: Executor,
        call: ChatCall,
        args: dict[str, Any],
        shown: str | None,
        router: str,
        key: ApiKey | None,
        started: float,
    ) -> Response:
        """Start an SSE stream once the first piece is there (errors before it are plain
        error answers with their status)."""
        endpoint = "/v1/chat/completions"
        rid, created = new_id(), int(time.time())
        if call.tools:
            # Tool calls arrive whole from the executor: one non-streamed call, sent as chunks.
            try:
                result = await ex.acomplete(call.messages, **args)
            except Exception as exc:
                raise api_error_of(exc) from None
            items: AsyncIterator[StreamChunk | ExecutionResult] = _one(result)
            first: StreamChunk | ExecutionResult = result
        else:
            items = ex.astream(call.messages, **args)
            try:
                first = await items.__anext__()
            except StopAsyncIteration:
                raise ApiError(
                    502, "the model returned nothing", code="upstream_error", kind="upstream"
                ) from None
            except Exception as exc:
                await items.aclose()  # type: ignore[attr-defined]
                raise api_error_of(exc) from None
        model = first.model

        async def events() -> AsyncIterator[bytes]:
            status = 499  # the client went away, unless set below
            try:
                result: ExecutionResult | None = None
                try:
                    role = {"role": "assistant", "content": ""}
                    yield sse(chunk_body(rid, model, delta=role, created=created))
                    pending = [first]
                    while result is None:
                        item = pending.pop() if pending else await items.__anext__()
                        if isinstance(item, StreamChunk):
                            if item.text:
                                delta = {"content": item.text}
                                yield sse(chunk_body(rid, model, delta=delta, created=created))
                        else:
                            result = item
                except StopAsyncIteration:
                    pass
                except Exception as exc:
                    err = api_error_of(exc)
                    status = err.status
                    service.metrics.error(err.kind)
                    yield sse(err.body())
                    return
                finally:
                    await items.aclose()  # type: ignore[attr-defined]
                if result is None:
                    status = 502
                    return
                calls = tool_calls_of(result)
                if call.tools and result.answer:  # not streamed: the text is not sent yet
                    delta = {"content": result.answer}
                    yield sse(chunk_body(rid, model, delta=delta, created=created))
                if calls:
                    tool_delta = {"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]}
                    yield sse(chunk_body(rid, model, delta=tool_delta, created=created))
                reason = "tool_calls" if calls else "stop"
                final = chunk_body(rid, model, finish_reason=reason, created=created)
                final["llmrouter"] = extension(result, shown, call.explain)
                yield sse(final)
                if call.include_usage:
                    usage = chunk_body(rid, model, created=created)
                    usage["choices"] = []
                    usage["usage"] = usage_body(result)
                    yield sse(usage)
                yield b"data: [DONE]\n\n"
                status = 200
                account(shown, result, started)
                log_answer(key, call, router, result, time.perf_counter() - started)
            finally:
                service.metrics.in_flight -= 1
                service.metrics.request(endpoint, status)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={**headers_of(model, shown, None), "cache-control": "no-cache"},
        )

    async def models(request: Request) -> Response:
        try:
            key = await service.authorize(request.headers)
        except ApiError as err:
            return error_response(err, "/v1/models")
        data = [
            {"id": ROUTER_PREFIX + name, "object": "model", "created": 0, "owned_by": "llmrouter"}
            for name in config.routers
            if key is None or key.allows(name)
        ]
        if key is None or key.allows(None):
            data += [
                {"id": name, "object": "model", "created": 0, "owned_by": "pool"}
                for name in service.pool.names
            ]
        service.metrics.request("/v1/models", 200)
        return JSONResponse({"object": "list", "data": data})

    async def feedback(request: Request) -> Response:
        endpoint = "/v1/feedback"
        try:
            key = await service.authorize(request.headers)
            body = await read_json(request)
            name, item = check_feedback(config.routers, body, key)
            await service.state.feedback(name, item)
        except ApiError as err:
            return error_response(err, endpoint)
        service.metrics.request(endpoint, 200)
        return JSONResponse({"status": "recorded"})

    def apply(name: str, item: Mapping[str, Any]) -> None:
        apply_feedback(config.routers, name, item)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    async def ready(request: Request) -> Response:
        if service.draining or not service.ready:
            return JSONResponse(
                {"status": "draining" if service.draining else "starting"}, status_code=503
            )
        return JSONResponse({"status": "ready", "in_flight": service.in_flight})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await service.state.start(apply)
        await asyncio.to_thread(service.warm_up)
        # What is loaded by now (LiteLLM's modules, the routers) lives as long as the server:
        # keep it out of the collector's full passes, which otherwise stop every request in
        # flight for tens of milliseconds, many times a second under load.
        gc.collect()
        gc.freeze()
        service.ready = True
        try:
            yield
        finally:
            service.ready = False
            await service.state.close()
            if service.transport is not None:
                await service.transport.aclose()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/feedback", feedback, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app


async def run_flow(
    ex: Executor,
    call: ChatCall,
    cost_weight: float | None,
    on_text: Callable[[str], None] | None = None,
) -> Any:
    """Run the flow ``call`` asks for on its last user message, with ``ex`` (the key's
    executor: its budget applies to every call of the flow); ``on_text`` receives the answer's
    text as it streams (agentic flows). A flow none of whose model calls succeeded is an
    error: 429 if the budget refused its calls, else 502."""
    from llmrouter_core.execution import content_text
    from llmrouter_core.flows import aagentic, amulti_round

    users = [m for m in call.messages if m.get("role") == "user"]
    query = content_text(users[-1].get("content")) if users else ""
    if not query.strip():
        raise ApiError(400, "a flow needs a user message with text", param="messages")
    common: dict[str, Any] = {"executor": ex, "max_cost": call.max_cost, "user": call.user}
    if call.flow == "agentic":
        result = await aagentic(
            query, cost_weight=cost_weight, on_text=on_text, **common, **call.flow_options
        )
    else:
        result = await amulti_round(query, **common, **call.flow_options)
    if not any(s.model and s.error is None and s.cost is not None for s in result.steps):
        # No model call of the flow succeeded: its answer would only list the failures.
        errors = [s.error for s in result.steps if s.error]
        why = "; ".join(errors[:3]) or (result.stopped or "no answer")
        if any("budget" in e.lower() for e in errors):
            raise ApiError(
                429, f"the flow ran out of budget: {why}", code="insufficient_quota", kind="budget"
            )
        raise ApiError(
            502, f"the flow answered nothing: {why}", code="upstream_error", kind="upstream"
        )
    return result


def sse(obj: Any) -> bytes:
    """One server-sent event of ``obj`` (JSON)."""
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def _one(result: ExecutionResult) -> AsyncIterator[StreamChunk | ExecutionResult]:
    yield result
