"""Helpers of the executor: messages, token bounds, capabilities, error classes and costs.

Kept apart from the executor so the per-call path stays short and each rule is testable.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from llmrouter_core.execution.results import InvalidRequestError
from llmrouter_core.pool import ModelSpec

Message = dict[str, Any]
ErrorAction = Literal["retry", "fallback"]

#: Per-message overhead (role, separators) counted on top of the text, as OpenAI documents.
TOKENS_PER_MESSAGE = 4
#: Characters per token assumed when bounding a prompt's size from above: half of the usual
#: 4, so the bound holds for code, numbers and most non-English text.
BOUND_CHARS_PER_TOKEN = 2.0

# -- messages -------------------------------------------------------------------------------


def normalize_messages(messages: str | Sequence[Mapping[str, Any]]) -> list[Message]:
    """``messages`` as a list of OpenAI-style dicts (a string becomes one user message)."""
    if isinstance(messages, str):
        if not messages.strip():
            raise InvalidRequestError("the request is empty")
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence) or not messages:
        raise InvalidRequestError("messages must be a non-empty string or list of messages")
    out: list[Message] = []
    for i, msg in enumerate(messages):
        # dict first: the common case, and much cheaper than the Mapping ABC check
        if not (type(msg) is dict or isinstance(msg, Mapping)) or "role" not in msg:
            raise InvalidRequestError(f"message {i} must be a mapping with a 'role'")
        out.append(dict(msg))
    return out


def content_text(content: Any) -> str:
    """The text of a message ``content`` (a string or a list of content parts)."""
    if type(content) is str:
        return content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def lacking(
    litellm: Any, spec: ModelSpec, tools: bool, json_schema: bool, vision: bool
) -> str | None:
    """Why ``spec`` cannot serve a request that needs tools / JSON-schema output / images
    (``None``: it can)."""
    if tools and not supports(litellm, spec, "tools"):
        return "does not support tools"
    if json_schema and not supports(litellm, spec, "json_schema"):
        return "does not support JSON-schema output"
    if vision and not supports(litellm, spec, "vision"):
        return "does not accept images"
    return None


def has_images(messages: Sequence[Message]) -> bool:
    """Whether any message carries an image part (``image_url`` or ``input_image``)."""
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") in ("image_url", "input_image"):
                    return True
    return False


def last_user_text(messages: Sequence[Message]) -> str:
    """Text of the last user message (of the last message if no user message)."""
    for msg in reversed(messages):
        if msg.get("role") == "user":
            return content_text(msg.get("content"))
    return content_text(messages[-1].get("content"))


def conversation_text(messages: Sequence[Message]) -> str:
    """Every message's text, one paragraph per message."""
    return "\n\n".join(t for t in (content_text(m.get("content")) for m in messages) if t)


RoutingText = Literal["last_user", "conversation"] | Callable[[list[Message]], str]


def routing_text(messages: list[Message], mode: RoutingText) -> str:
    """The text a router sees for ``messages`` under ``mode``."""
    if callable(mode):
        text = mode(messages)
        if not isinstance(text, str):
            raise InvalidRequestError("the routing_text callable must return a string")
        return text
    if mode == "last_user":
        return last_user_text(messages)
    if mode == "conversation":
        return conversation_text(messages)
    raise InvalidRequestError(
        f"routing_text must be 'last_user', 'conversation' or a callable, not {mode!r}"
    )


def prompt_chars(messages: Sequence[Message], tools: Sequence[Any] | None) -> int:
    """Characters of everything sent as input (message texts and tool schemas)."""
    n = sum(len(content_text(m.get("content"))) for m in messages)
    for m in messages:
        if m.get("tool_calls"):
            n += len(str(m["tool_calls"]))
    if tools:
        n += len(str(list(tools)))
    return n


def input_token_estimate(chars: int, n_messages: int) -> int:
    """Typical prompt tokens (4 characters per token)."""
    return math.ceil(chars / 4.0) + TOKENS_PER_MESSAGE * n_messages


def input_token_bound(chars: int, n_messages: int) -> int:
    """A conservative upper bound on prompt tokens (2 characters per token)."""
    return math.ceil(chars / BOUND_CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * n_messages


def wants_json_schema(response_format: Any) -> bool:
    """Whether ``response_format`` asks for a JSON schema (not plain JSON mode)."""
    if response_format is None:
        return False
    if isinstance(response_format, Mapping):
        return response_format.get("type") == "json_schema"
    return isinstance(response_format, type)  # a pydantic model class


# -- LiteLLM model information (cached; LiteLLM's table is offline) ------------------------

_info_cache: dict[str, dict[str, Any] | None] = {}
#: Providers of this package (:mod:`llmrouter_core.providers`).
OWN_PROVIDERS = frozenset({"replay", "local"})
_info_lock = threading.Lock()


def litellm_model_info(litellm: Any, model: str) -> dict[str, Any] | None:
    """LiteLLM's bundled entry for ``model`` (``None`` if unknown), cached per model."""
    if model in _info_cache:
        return _info_cache[model]
    cost_map: Mapping[str, Any] = getattr(litellm, "model_cost", {})
    info = None
    # This package's providers name a *recorded* or *local* model after the original
    # (``replay/gpt-4``): the original's capabilities and prices do not carry over.
    own = model.partition("/")[0] in OWN_PROVIDERS
    for key in () if own else (model, model.split("/", 1)[-1]):
        entry = cost_map.get(key)
        if isinstance(entry, Mapping):
            info = dict(entry)
            break
    with _info_lock:
        _info_cache[model] = info
    return info


_CAPABILITY_KEYS = {
    "tools": ("supports_tools", "supports_function_calling"),
    "json_schema": ("supports_json_schema", "supports_response_schema"),
    "vision": ("supports_vision", "supports_vision"),
}


def supports(
    litellm: Any, spec: ModelSpec, capability: Literal["tools", "json_schema", "vision"]
) -> bool:
    """Whether ``spec`` can serve ``capability`` (the pool's flag, else LiteLLM's table)."""
    flag, key = _CAPABILITY_KEYS[capability]
    if getattr(spec, flag):
        return True
    info = litellm_model_info(litellm, spec.litellm_model)
    return bool(info and info.get(key))


def context_window(litellm: Any, spec: ModelSpec) -> int | None:
    """Maximum prompt tokens of ``spec`` (the pool's, else LiteLLM's; ``None`` = unknown)."""
    if spec.context_window:
        return int(spec.context_window)
    info = litellm_model_info(litellm, spec.litellm_model)
    if info:
        value = info.get("max_input_tokens") or info.get("max_tokens")
        if value:
            return int(value)
    return None


def bound_prices(
    litellm: Any, spec: ModelSpec, max_price: float | None = None
) -> tuple[float, float] | None:
    """USD per token (input, output) used to bound a call's cost from above.

    Each side is the higher of the pool's and LiteLLM's price; a side neither knows takes
    ``max_price`` (USD per 1M tokens, the caller's ceiling for unpriced models). ``None`` if a
    side is still unknown: the call's cost then has no bound.
    """
    info = litellm_model_info(litellm, spec.litellm_model) or {}
    out: list[float] = []
    for pool_price, lite in (
        (spec.input_price, info.get("input_cost_per_token")),
        (spec.output_price, info.get("output_cost_per_token")),
    ):
        known = [p / 1e6 for p in (pool_price,) if p is not None]
        if isinstance(lite, int | float) and math.isfinite(lite) and lite >= 0:
            known.append(float(lite))
        if not known:
            if max_price is None:
                return None
            known.append(max_price / 1e6)
        out.append(max(known))
    return out[0], out[1]


# -- errors -----------------------------------------------------------------------------------

_RETRYABLE = frozenset(
    {
        "RateLimitError",
        "Timeout",
        "APITimeoutError",
        "TimeoutError",
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "BadGatewayError",
    }
)
_NOT_RETRYABLE = frozenset(
    {
        "ContextWindowExceededError",
        "ContentPolicyViolationError",
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "UnprocessableEntityError",
        "UnsupportedParamsError",
    }
)


_AUTH_ERRORS = frozenset({"AuthenticationError", "PermissionDeniedError"})
# An authentication failure wrapped in another error class (some providers' errors reach
# LiteLLM as a connection or server error that only says so in its text).
_AUTH_TEXT = re.compile(
    r"(?i)\b(401|403)\b.{0,40}(unauthori[sz]ed|forbidden|api[ _-]?key|credential)"
    r"|\b(unauthori[sz]ed|invalid[ _-]api[ _-]key|incorrect api key|invalid x-api-key)\b"
)


def _status(exc: BaseException) -> int | None:
    for value in (
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
    ):
        if isinstance(value, int):
            return value
    return None


def _is_auth_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is an authentication or permission
    failure: retrying with the same key cannot help."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(cls.__name__ in _AUTH_ERRORS for cls in type(current).__mro__):
            return True
        if _status(current) in (401, 403):
            return True
        # Only explicit wrapping: an implicit __context__ may be unrelated.
        original = getattr(current, "original_exception", None)
        current = original if isinstance(original, BaseException) else current.__cause__
    return bool(_AUTH_TEXT.search(str(exc)[:2000]))


def classify_error(exc: BaseException) -> ErrorAction:
    """``"retry"`` for transient failures (rate limit, timeout, connection, 5xx), else
    ``"fallback"`` (context window, content filter, bad request, unknown model...).

    An authentication or permission failure is never retried, whatever class carries it
    (a 401/403 status anywhere in the exception chain, or a message saying so).
    """
    if _is_auth_failure(exc):
        return "fallback"
    for cls in type(exc).__mro__:
        if cls.__name__ in _NOT_RETRYABLE:
            return "fallback"
        if cls.__name__ in _RETRYABLE:
            return "retry"
    status = _status(exc)
    if status is not None and (status == 429 or status >= 500):
        return "retry"
    return "fallback"


def retry_after(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header on the provider's response, if any.

    Only a finite, non-negative number of seconds counts: anything else (``nan``, ``inf``,
    an HTTP date, garbage) is treated as absent, so the usual backoff applies.
    """
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after")
        seconds = float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


# -- usage and cost ------------------------------------------------------------------------


def usage_tokens(response: Any) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) reported in ``response.usage``."""
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None

    def get(name: str) -> int | None:
        value = usage.get(name) if isinstance(usage, Mapping) else getattr(usage, name, None)
        return int(value) if isinstance(value, int | float) else None

    return get("prompt_tokens"), get("completion_tokens")


def answer_text(response: Any) -> str:
    """The text of the first choice ("" if the model answered with tool calls only)."""
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return ""
    return content_text(content)


def provider_cost(response: Any) -> float | None:
    """The cost LiteLLM computed (or a custom provider reported) for ``response``."""
    hidden = getattr(response, "_hidden_params", None) or {}
    value = hidden.get("response_cost") if isinstance(hidden, Mapping) else None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None
