"""The OpenAI chat-completions wire format of ``llmrouter serve``: requests in, bodies out.

* :func:`parse_model` reads a model name: ``llmrouter/<router>[:knob=value...]`` routes,
  anything else names a pool model (forwarded unrouted);
* :func:`parse_chat` validates a request body into a :class:`ChatCall`;
* :func:`completion_body`, :func:`chunk_body` and :func:`usage_body` build OpenAI-shaped
  responses from the executor's results, :func:`flow_body` from a flow's;
* :class:`ApiError` is an error answer: an HTTP status and an OpenAI-style error body.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmrouter_core.execution import ExecutionResult, content_text

if TYPE_CHECKING:
    from llmrouter_core.flows import FlowResult

__all__ = [
    "FLOWS",
    "ROUTER_PREFIX",
    "ApiError",
    "ChatCall",
    "ModelName",
    "chunk_body",
    "completion_body",
    "error_body",
    "flow_body",
    "flow_model",
    "parse_chat",
    "parse_model",
    "usage_body",
]

#: Model names that start with this are routed: ``llmrouter/<router name>``.
ROUTER_PREFIX = "llmrouter/"
#: Knobs a model name or the ``llmrouter`` body extension may set.
KNOBS = ("cost_weight", "budget", "max_cost")
#: Request fields passed to the model as they are.
PASSTHROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tool_choice",
    "parallel_tool_calls",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "reasoning_effort",
)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_EXTENSION_FIELDS = frozenset({*KNOBS, "user", "flow", "explain"})
#: Flows a request may ask for (``"llmrouter": {"flow": ...}``) and the options each takes.
FLOWS: dict[str, frozenset[str]] = {
    "agentic": frozenset({"decomposer", "aggregate", "max_parts", "plan_model", "aggregate_model"}),
    "multi_round": frozenset({"policy_model", "protocol", "max_rounds"}),
}


class ApiError(Exception):
    """An error answer: ``status`` and an OpenAI-style body (``message``, ``type``, ``code``).

    Example:
        >>> ApiError(404, "unknown model 'x'", code="model_not_found").body()["error"]["code"]
        'model_not_found'
    """

    _TYPES = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "invalid_request_error",
        413: "invalid_request_error",
        429: "rate_limit_error",
        502: "api_error",
        503: "service_unavailable",
    }

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        #: The metrics label of this error (``auth``, ``budget``, ...).
        self.kind = kind or code or "bad_request"

    def body(self) -> dict[str, Any]:
        return error_body(
            self.message, self._TYPES.get(self.status, "api_error"), self.code, self.param
        )


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI's API answers."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code or "invalid_request")


@dataclass(frozen=True)
class ModelName:
    """A parsed model name: a router with knobs, or a pool model."""

    router: str | None
    model: str | None
    knobs: Mapping[str, float] = field(default_factory=dict)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise _bad(f"{name} must be a number", "llmrouter")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(f"{name} must be a number, got {value!r}", "llmrouter") from None
    if math.isnan(x) or x < 0:
        raise _bad(f"{name} must be a number >= 0, got {value!r}", "llmrouter")
    return x


def parse_model(name: Any) -> ModelName:
    """Read a request's ``model``.

    Example:
        >>> parse_model("llmrouter/auto:cost_weight=200")
        ModelName(router='auto', model=None, knobs={'cost_weight': 200.0})
        >>> parse_model("gpt-4o-mini").model
        'gpt-4o-mini'
    """
    if not isinstance(name, str) or not name.strip():
        raise _bad("'model' must be a non-empty string", "model", "missing_model")
    if not name.startswith(ROUTER_PREFIX):
        return ModelName(router=None, model=name)
    router, *parts = name[len(ROUTER_PREFIX) :].split(":")
    if not router:
        raise _bad(f"model {name!r} names no router (llmrouter/<router>)", "model")
    knobs: dict[str, float] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in KNOBS:
            raise _bad(
                f"model {name!r}: knob {part!r} is not one of {', '.join(KNOBS)} (as "
                "llmrouter/<router>:cost_weight=200)",
                "model",
            )
        knobs[key] = _number(value, key)
    return ModelName(router=router, model=None, knobs=knobs)


@dataclass
class ChatCall:
    """A validated chat-completions request."""

    target: ModelName
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    tools: list[Any] | None = None
    response_format: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    cost_weight: float | None = None
    budget: float | None = None
    max_cost: float | None = None
    user: str | None = None
    explain: bool = False
    flow: str | None = None
    flow_options: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_chars(self) -> int:
        return sum(len(content_text(m.get("content"))) for m in self.messages)


def parse_chat(body: Any, *, max_prompt_chars: int) -> ChatCall:
    """Validate a chat-completions body; every problem is one :class:`ApiError`."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    target = parse_model(body.get("model"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list", "messages", "empty_messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in _ROLES:
            raise _bad(
                f"messages[{i}] must be an object with a 'role' among {', '.join(sorted(_ROLES))}",
                f"messages.{i}",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content must be a string or a list of parts")
    n = body.get("n", 1)
    if n not in (1, None):
        raise _bad("only n=1 is supported", "n", "unsupported_parameter")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("'stream' must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("'stream_options' must be an object", "stream_options")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not tools):
        raise _bad("'tools' must be a non-empty list", "tools")
    call = ChatCall(
        target=target,
        messages=messages,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        tools=tools,
        response_format=body.get("response_format"),
        kwargs={k: body[k] for k in PASSTHROUGH if body.get(k) is not None},
    )
    if call.prompt_chars > max_prompt_chars:
        raise _bad(
            f"the prompt has {call.prompt_chars} characters, over this server's limit of "
            f"{max_prompt_chars}",
            "messages",
            "context_length_exceeded",
        )
    ext = body.get("llmrouter") or {}
    if not isinstance(ext, dict):
        raise _bad("'llmrouter' must be an object", "llmrouter")
    unknown = sorted(set(ext) - _EXTENSION_FIELDS)
    if unknown:
        raise _bad(
            f"unknown llmrouter field(s) {', '.join(unknown)} (known: "
            f"{', '.join(sorted(_EXTENSION_FIELDS))})",
            "llmrouter",
        )
    knobs = {**target.knobs, **{k: _number(ext[k], k) for k in KNOBS if ext.get(k) is not None}}
    call.cost_weight = knobs.get("cost_weight")
    call.budget = knobs.get("budget")
    call.max_cost = knobs.get("max_cost")
    if call.cost_weight is not None and call.budget is not None:
        raise _bad("give cost_weight or budget, not both", "llmrouter")
    if target.router is None and (call.cost_weight is not None or call.budget is not None):
        raise _bad("cost_weight and budget apply to routed models (llmrouter/<router>)", "model")
    user = ext.get("user", body.get("user"))
    if user is not None and not isinstance(user, str):
        raise _bad("'user' must be a string", "user")
    call.user = user
    if ext.get("flow") is not None:
        call.flow, call.flow_options = _parse_flow(ext["flow"], call)
    call.explain = bool(ext.get("explain", False))
    return call


def _parse_flow(spec: Any, call: ChatCall) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of ``"flow": "agentic"`` or ``"flow": {"name": ..., **options}``."""
    options = dict(spec) if isinstance(spec, dict) else {}
    name = options.pop("name", None) if isinstance(spec, dict) else spec
    if name not in FLOWS:
        raise _bad(
            f"'flow' must be one of {', '.join(FLOWS)} (or an object with 'name' and options)",
            "llmrouter.flow",
        )
    unknown = sorted(set(options) - FLOWS[name])
    if unknown:
        raise _bad(
            f"unknown {name} option(s) {', '.join(unknown)} (known: "
            f"{', '.join(sorted(FLOWS[name]))})",
            "llmrouter.flow",
        )
    if name == "multi_round" and not isinstance(options.get("policy_model"), str):
        raise _bad("the multi_round flow needs a 'policy_model' (a pool model)", "llmrouter.flow")
    if call.target.router is None:
        raise _bad("flows apply to routed models (llmrouter/<router>)", "model")
    if call.tools:
        raise _bad("a flow cannot take tools", "tools", "unsupported")
    return str(name), options


def flow_body(
    result: FlowResult, *, router: str, flow: str, explain: bool, rid: str | None = None
) -> dict[str, Any]:
    """A ``chat.completion`` with a flow's answer; ``model`` names the pool models called
    (joined with ``+``), ``usage`` sums the flow's calls."""
    out_tokens = sum(s.output_tokens for s in result.steps)
    in_tokens = sum(s.tokens for s in result.steps) - out_tokens
    ext: dict[str, Any] = {
        "router": router,
        "flow": flow,
        "models": list(result.models),
        "cost": result.cost,
        "stopped": result.stopped,
    }
    if explain:
        ext["steps"] = [_json_safe(dataclasses.asdict(s)) for s in result.steps]
    return {
        "id": rid or new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": flow_model(result, router),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": in_tokens,
            "completion_tokens": out_tokens,
            "total_tokens": in_tokens + out_tokens,
            "cost": result.cost,
        },
        "llmrouter": ext,
    }


def flow_model(result: FlowResult, router: str) -> str:
    """What a flow's answer names as its model: the pool models called, joined by ``+``."""
    return "+".join(result.models) or router


# -- response bodies ------------------------------------------------------------------------


#: Response ids: a random prefix per process and a counter (``uuid4`` per response reads the
#: system's random source each time, which is slow on a busy machine).
_ID_PREFIX = "chatcmpl-" + uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def new_id() -> str:
    """A response id, unique across processes (random prefix) and within one (counter)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):x}"


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def extension(result: ExecutionResult, router: str | None, explain: bool) -> dict[str, Any]:
    """The ``llmrouter`` response extension: router, model, cost; with ``explain`` the
    decision (ranking, predictions) and every attempt."""
    out: dict[str, Any] = {"router": router, "model": result.model, "cost": result.cost}
    if explain:
        out["decision"] = None if result.decision is None else _json_safe(result.decision.to_dict())
        out["attempts"] = [a.to_dict() for a in result.attempts]
        out["excluded"] = dict(result.excluded)
    return out


def tool_calls_of(result: ExecutionResult) -> list[dict[str, Any]]:
    """The answer's tool calls as OpenAI dicts."""
    out = []
    for call in result.tool_calls:
        d = call.model_dump() if hasattr(call, "model_dump") else dict(call)
        fn = d.get("function") or {}
        out.append(
            {
                "id": d.get("id"),
                "type": "function",
                "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or "{}"},
            }
        )
    return out


def finish_reason_of(result: ExecutionResult, calls: list[Any]) -> str:
    try:
        reason = result.response.choices[0].finish_reason
    except (AttributeError, IndexError, TypeError):
        reason = None
    if calls:
        return "tool_calls"
    return str(reason) if reason in ("stop", "length", "content_filter") else "stop"


def usage_body(result: ExecutionResult) -> dict[str, Any]:
    """OpenAI's ``usage``, plus ``cost``: the answer's USD cost (in a stream's usage chunk
    too, where no header can carry it)."""
    return {
        "prompt_tokens": result.input_tokens,
        "completion_tokens": result.output_tokens,
        "total_tokens": result.input_tokens + result.output_tokens,
        "cost": result.cost,
    }


def completion_body(
    result: ExecutionResult, *, router: str | None, explain: bool, rid: str | None = None
) -> dict[str, Any]:
    """A ``chat.completion`` object; ``model`` is the pool model that answered."""
    calls = tool_calls_of(result)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.answer if (result.answer or not calls) else None,
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": rid or new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason_of(result, calls),
                "logprobs": None,
            }
        ],
        "usage": usage_body(result),
        "llmrouter": extension(result, router, explain),
    }


def chunk_body(
    rid: str,
    model: str,
    *,
    delta: Mapping[str, Any] | None = None,
    finish_reason: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice."""
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": dict(delta or {}), "finish_reason": finish_reason}],
    }
