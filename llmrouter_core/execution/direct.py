"""A direct call path for OpenAI-compatible endpoints, with LiteLLM for everything else.

:class:`DirectOpenAI` is a *transport* for the :class:`~llmrouter_core.execution.Executor`
(``Executor(..., transport=DirectOpenAI())``): an object with LiteLLM's ``completion`` /
``acompletion``. An async call, streamed or not, of a pool model that is a plain
OpenAI-compatible endpoint (an ``openai/<name>`` model with an ``api_base``, and only standard
chat arguments) is posted straight to ``{api_base}/chat/completions`` on one shared keep-alive
connection pool (aiohttp); every other call, and every other attribute, is LiteLLM's own.

LiteLLM's call path costs several milliseconds of CPU per call (logging objects, cost
calculation, model-info lookups, the OpenAI client); a gateway making hundreds of calls a
second spends most of its CPU there. The executor's guarantees do not move: budgets, retries,
fallbacks, timeouts and capability filters are the attempt loop's, the answer is a LiteLLM
``ModelResponse`` (a stream's pieces are LiteLLM ``ModelResponseStream`` chunks), its cost
comes from the pool's prices (or LiteLLM's price table), and a failure raises the LiteLLM
exception class that LiteLLM raises for the same HTTP status, with the provider's response (and
its ``Retry-After``) attached. A stream cut mid-way raises LiteLLM's ``MidStreamFallbackError``
and a stream that stalls for ``timeout`` seconds between pieces raises ``Timeout``, as on
LiteLLM's path.

Example:
    >>> transport = DirectOpenAI()
    >>> transport.handles({"model": "openai/m", "api_base": "http://127.0.0.1:9/v1",
    ...                    "messages": []})
    True
    >>> transport.handles({"model": "openai/m", "messages": []})  # no api_base: LiteLLM's
    False
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import Any

__all__ = ["DirectOpenAI"]

#: Arguments of an OpenAI chat call sent in the body as they are.
_BODY_ARGS = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "n",
        "parallel_tool_calls",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
    }
)
#: Arguments that shape the HTTP call instead.
_CALL_ARGS = frozenset(
    {"model", "messages", "api_base", "api_key", "timeout", "extra_headers", "extra_body"}
)
_PROVIDER = "openai"
_CONTEXT_PHRASES = ("context_length_exceeded", "maximum context length", "context window")
_POLICY_PHRASES = ("content_filter", "content_policy", "content management policy")


class DirectOpenAI:
    """LiteLLM, except async calls of OpenAI-compatible endpoints go direct.

    Args:
        litellm: The LiteLLM module to fall back to (default: imported on creation).
        max_connections: Open connections kept per event loop, over all endpoints.
    """

    def __init__(self, litellm: ModuleType | None = None, *, max_connections: int = 1000) -> None:
        if litellm is None:
            from llmrouter_core._lazy import import_litellm

            litellm = import_litellm()
        self._litellm = litellm
        self.max_connections = int(max_connections)
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def __getattr__(self, name: str) -> Any:
        # Everything but ``acompletion`` (sync calls, price tables, provider lists) is LiteLLM's.
        return getattr(self._litellm, name)

    @staticmethod
    def handles(kwargs: Mapping[str, Any]) -> bool:
        """Whether the call ``kwargs`` (LiteLLM arguments) goes direct."""
        model = kwargs.get("model")
        timeout = kwargs.get("timeout")
        return (
            isinstance(model, str)
            and model.startswith("openai/")
            and bool(kwargs.get("api_base"))
            and (timeout is None or isinstance(timeout, int | float))
            and all(k in _BODY_ARGS or k in _CALL_ARGS for k in kwargs)
        )

    async def acompletion(self, **kwargs: Any) -> Any:
        """``litellm.acompletion(**kwargs)``, direct when :meth:`handles` says so."""
        if not self.handles(kwargs):
            return await self._litellm.acompletion(**kwargs)
        import aiohttp

        model = str(kwargs["model"])
        url = str(kwargs["api_base"]).rstrip("/") + "/chat/completions"
        body: dict[str, Any] = {"model": model.split("/", 1)[1], "messages": kwargs["messages"]}
        body.update((k, v) for k, v in kwargs.items() if k in _BODY_ARGS and v is not None)
        body.update(kwargs.get("extra_body") or {})
        headers = {"content-type": "application/json"}
        key = kwargs.get("api_key") or os.environ.get("OPENAI_API_KEY")
        if key:
            headers["authorization"] = f"Bearer {key}"
        headers.update(kwargs.get("extra_headers") or {})
        timeout = kwargs.get("timeout")
        seconds = None if timeout is None else float(timeout)
        stream = bool(kwargs.get("stream"))
        # A stream's timeout bounds each wait (for the answer's start, then between pieces),
        # as the OpenAI client's does; a plain call's bounds the whole call.
        limits = (
            aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
            if stream
            else aiohttp.ClientTimeout(total=seconds)
        )
        resp = None
        try:
            resp = await self._session().post(
                url, data=json.dumps(body, default=_jsonable), headers=headers, timeout=limits
            )
            if resp.status != 200 or not stream:
                raw = await resp.read()
        except BaseException as exc:  # cancellation too: the connection is given back
            if resp is not None:
                resp.release()
            if isinstance(exc, asyncio.TimeoutError):
                raise self._timeout(model, timeout) from None
            if not isinstance(exc, aiohttp.ClientError):
                raise
            # LiteLLM reports a failed connection to an OpenAI endpoint as a 500.
            raise self._litellm.InternalServerError(
                message=f"OpenAIException - Connection error. ({type(exc).__name__})",
                llm_provider=_PROVIDER,
                model=model,
            ) from exc
        if resp.status != 200:
            raise self._error(resp.status, raw, dict(resp.headers), model, url)
        if stream:
            return self._chunks(resp, model, timeout)
        try:
            return self._litellm.ModelResponse(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise self._not_chat(model, exc) from None

    async def aclose(self) -> None:
        """Close the connections of the running event loop (a server's shutdown)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    # -- helpers -----------------------------------------------------------------------------
    async def _chunks(self, resp: Any, model: str, timeout: Any) -> AsyncIterator[Any]:
        """The chunks of the server-sent events of ``resp``, until ``[DONE]`` or the end."""
        import aiohttp

        started = False  # whether a chunk went out, for a mid-stream failure
        data: list[bytes] = []
        try:
            async for line in resp.content:
                line = line.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" "))
                    continue
                if line or not data:  # another field, a comment, or nothing to dispatch
                    continue
                payload, data = b"\n".join(data), []
                if payload == b"[DONE]":
                    return
                try:
                    obj = json.loads(payload)
                    if isinstance(obj, dict) and obj.get("error"):
                        raise self._error(500, payload, dict(resp.headers), model, str(resp.url))
                    chunk = self._litellm.ModelResponseStream(**obj)
                except (ValueError, TypeError) as exc:
                    raise self._not_chat(model, exc) from None
                started = True
                yield chunk
        except asyncio.TimeoutError:
            raise self._timeout(model, timeout) from None
        except aiohttp.ClientError as exc:
            cut = self._litellm.APIConnectionError(
                message=f"OpenAIException - Connection error. ({type(exc).__name__})",
                llm_provider=_PROVIDER,
                model=model,
            )
            from litellm.exceptions import MidStreamFallbackError

            raise MidStreamFallbackError(
                message=str(cut),
                model=model,
                llm_provider=_PROVIDER,
                original_exception=cut,
                is_pre_first_chunk=not started,
            ) from exc
        finally:
            resp.release()

    def _timeout(self, model: str, timeout: Any) -> Exception:
        return self._litellm.Timeout(  # type: ignore[no-any-return]
            message=f"OpenAIException - request timed out after {timeout} seconds",
            model=model,
            llm_provider=_PROVIDER,
        )

    def _not_chat(self, model: str, exc: Exception) -> Exception:
        return self._litellm.APIError(  # type: ignore[no-any-return]
            status_code=500,
            message=f"OpenAIException - the endpoint's answer is not a chat completion: {exc}",
            llm_provider=_PROVIDER,
            model=model,
        )

    def _session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0)
            session = self._sessions[loop] = aiohttp.ClientSession(connector=connector)
        return session

    def _error(
        self, status: int, raw: bytes, headers: Mapping[str, str], model: str, url: str
    ) -> Exception:
        """The LiteLLM exception LiteLLM raises for an OpenAI endpoint's ``status``."""
        import httpx

        response = httpx.Response(
            status, headers=headers, content=raw, request=httpx.Request("POST", url)
        )
        text = raw.decode("utf-8", "replace")
        try:
            detail = json.loads(text).get("error")
            text = str(detail.get("message") or text) if isinstance(detail, dict) else text
        except (ValueError, AttributeError):
            pass
        message = f"OpenAIException - {text}"
        lm = self._litellm
        common: dict[str, Any] = {
            "message": message,
            "model": model,
            "llm_provider": _PROVIDER,
            "response": response,
        }
        lowered = text.lower()
        if status == 400 and any(p in lowered for p in _CONTEXT_PHRASES):
            return lm.ContextWindowExceededError(**common)  # type: ignore[no-any-return]
        if status == 400 and any(p in lowered for p in _POLICY_PHRASES):
            return lm.ContentPolicyViolationError(**common)  # type: ignore[no-any-return]
        by_status = {
            400: "BadRequestError",
            401: "AuthenticationError",
            403: "PermissionDeniedError",
            404: "NotFoundError",
            408: "Timeout",
            422: "UnprocessableEntityError",
            429: "RateLimitError",
            502: "BadGatewayError",
            503: "ServiceUnavailableError",
        }
        name = by_status.get(status) or ("InternalServerError" if status >= 500 else "")
        if name == "Timeout":
            return lm.Timeout(message=message, model=model, llm_provider=_PROVIDER)  # type: ignore[no-any-return]
        if name:
            return getattr(lm, name)(**common)  # type: ignore[no-any-return]
        return lm.APIError(  # type: ignore[no-any-return]
            status_code=status,
            message=message,
            llm_provider=_PROVIDER,
            model=model,
            response=response,
        )


def _jsonable(value: Any) -> Any:
    """JSON form of a pydantic object in the arguments (a tool definition, a schema)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
