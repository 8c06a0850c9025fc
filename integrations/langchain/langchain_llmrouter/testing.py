"""An offline stand-in for tool-calling chat models, for tests and examples.

:func:`scripted_pool` serves models through the core's scripted provider
(:class:`llmrouter_core.testing.ScriptedProvider`, model ids ``scripted/<name>``) with
:class:`ScriptedRules`: answers that follow fixed, documented rules instead of a language
model. It exists so that tool calling, structured output and agent
loops can be exercised end to end (routing, capability filters, budgets, streaming, LangGraph)
with no network and no model weights. It is **not** a language model: its "answers" only
echo the request in a predictable shape.

Rules, applied to the request in this order:

1. The last message is a tool result: answer in text with the tool results
   (``"<name> returned: <content>"``).
2. A ``response_format`` of type ``json_schema``: answer with a JSON object filled from
   the schema (see argument filling below).
3. Tools are given and ``tool_choice`` is not ``"none"``: call the tool named by
   ``tool_choice``; else, the tool whose name shares a word (4+ letters) with the last user
   message; else, when a call is required (``"required"``), the first tool. With
   ``"auto"`` and no matching tool, answer in text.
4. Otherwise answer ``"<model> (scripted) received: <last user message>"``.

Argument filling reads the last user message: integer and number properties take its
numbers in order; string properties take its quoted spans in order, then a capitalised
phrase that does not start a sentence, then the message itself; booleans are ``true``,
arrays ``[]``, objects ``{}``, enums their first value.

``stop`` sequences and ``max_tokens`` (x 4 characters) cut the text. Streaming (by the core's
provider) sends text in word-sized pieces and tool calls as two argument deltas, with token
usage in the last chunk.

Example:
    >>> from llmrouter_core.pool import ModelSpec, Pool
    >>> pool = scripted_pool(Pool([ModelSpec("m", input_price=1.0, output_price=2.0)]))
    >>> pool["m"].litellm_model, pool["m"].supports_tools
    ('scripted/m', True)
    >>> text, calls = scripted_reply("m", [{"role": "user", "content": "Add 2 and 3"}],
    ...     tools=[{"type": "function", "function": {"name": "add", "parameters": {
    ...         "type": "object", "properties": {"a": {"type": "integer"},
    ...         "b": {"type": "integer"}}}}}], tool_choice="required")
    >>> calls[0]["function"]
    {'name': 'add', 'arguments': '{"a": 2, "b": 3}'}
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from llmrouter_core.pool import Pool
from llmrouter_core.testing import ScriptedCall, ScriptedProvider, ScriptedReply
from llmrouter_core.testing.provider import PROVIDER

__all__ = ["SCRIPTED_PROVIDER", "ScriptedRules", "scripted_pool", "scripted_reply"]

#: LiteLLM provider name (the core's scripted provider): model ids are ``scripted/<name>``.
SCRIPTED_PROVIDER = PROVIDER

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"|“([^”]+)”|「([^」]+)」")
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][\w-]*(?:,?\s+[A-Z][\w-]*)*)")
_WORD = re.compile(r"[a-z]{4,}")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return "" if content is None else str(content)


class _Filler:
    """Values for schema properties, taken from a user message in order."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.numbers = [float(n) for n in _NUMBER.findall(text)]
        self.strings = [next(g for g in groups if g) for groups in _QUOTED.findall(text)]
        if not self.strings:
            self.strings = [m.strip(" ,") for m in _CAPITALISED.findall(text) if m.strip(" ,")]

    def value(self, schema: Mapping[str, Any]) -> Any:
        if schema.get("enum"):
            return schema["enum"][0]
        kind = schema.get("type")
        if kind is None:
            for option in schema.get("anyOf", []) or schema.get("oneOf", []):
                if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
                    return self.value(option)
            kind = "string"
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if kind in ("integer", "number"):
            number = self.numbers.pop(0) if self.numbers else 0.0
            return int(number) if kind == "integer" else number
        if kind == "boolean":
            return True
        if kind == "array":
            return []
        if kind == "object":
            return self.fill(schema)
        return self.strings.pop(0) if self.strings else self.text

    def fill(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        return {name: self.value(spec or {}) for name, spec in properties.items()}


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _pick_tool(
    tools: Sequence[Mapping[str, Any]], tool_choice: Any, text: str
) -> Mapping[str, Any] | None:
    functions = [t["function"] for t in tools if isinstance(t, Mapping) and "function" in t]
    if not functions or tool_choice == "none":
        return None
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name")
        return next((f for f in functions if f.get("name") == name), None)
    words = set(_WORD.findall(text.lower()))
    for function in functions:
        if words & set(_WORD.findall(str(function.get("name", "")).lower())):
            return dict(function)
    return dict(functions[0]) if tool_choice in ("required", "any") else None


def scripted_reply(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    response_format: Any = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The scripted answer to a request: ``(text, tool_calls)`` (see the module rules)."""
    if messages and messages[-1].get("role") == "tool":
        results = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            name = message.get("name") or "the tool"
            results.append(f"{name} returned: {_text(message.get('content'))}")
        return "; ".join(reversed(results)), []
    text = _last_user_text(messages)
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(_Filler(text).fill(schema), ensure_ascii=False), []
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_object":
        return json.dumps({"answer": text}, ensure_ascii=False), []
    tool = _pick_tool(tools or [], tool_choice, text)
    if tool is not None:
        arguments = _Filler(text).fill(tool.get("parameters") or {})
        call = {
            "id": f"call_{uuid.uuid4().hex[:16]}",
            "type": "function",
            "function": {
                "name": tool["name"],
                "arguments": json.dumps(arguments, ensure_ascii=False),
            },
        }
        return "", [call]
    return f"{model} (scripted) received: {text}", []


def _cut(text: str, params: Mapping[str, Any]) -> str:
    stop = params.get("stop")
    for seq in [stop] if isinstance(stop, str) else list(stop or []):
        if seq and seq in text:
            text = text[: text.index(seq)]
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
    if max_tokens:
        text = text[: int(max_tokens) * 4]
    return text


class ScriptedRules:
    """The rules of this module as a :class:`~llmrouter_core.testing.Responder` script of
    the core's :class:`~llmrouter_core.testing.ScriptedProvider`."""

    def respond(self, call: ScriptedCall) -> ScriptedReply:
        params = call.params
        text, calls = scripted_reply(
            call.model,
            call.messages,
            tools=params.get("tools"),
            tool_choice=params.get("tool_choice"),
            response_format=params.get("response_format"),
        )
        return ScriptedReply(_cut(text, params), calls)


def scripted_pool(
    pool: Pool,
    *,
    models: Sequence[str] | None = None,
    tools: bool = True,
    json_schema: bool = True,
) -> Pool:
    """``pool`` with ``models`` (default: all) served by ``scripted/<name>`` with
    :class:`ScriptedRules`, declared as supporting tools and JSON schemas; prices and other
    models are kept. Claims those model names in the core's scripted provider."""
    chosen = set(pool.names if models is None else models)
    rules = ScriptedRules()
    ScriptedProvider({name: rules for name in pool.names if name in chosen})
    return Pool(
        replace(
            spec,
            litellm_model=f"{SCRIPTED_PROVIDER}/{spec.name}",
            api_base=None,
            api_key_env=None,
            supports_tools=tools,
            supports_json_schema=json_schema,
        )
        if spec.name in chosen
        else spec
        for spec in pool
    )
