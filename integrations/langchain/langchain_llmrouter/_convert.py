"""Translation between LangChain messages and the OpenAI-style dicts the executor takes, and
from LiteLLM responses back to LangChain messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call

__all__ = [
    "finish_reason",
    "has_images",
    "response_tool_calls",
    "stream_tool_call_chunks",
    "to_openai_messages",
    "usage_metadata",
]

_IMAGE_BLOCKS = frozenset({"image", "image_url", "input_image"})


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """``messages`` as OpenAI chat dicts (tool calls, tool results and image blocks kept)."""
    out = convert_to_openai_messages(list(messages))
    return out if isinstance(out, list) else [out]


def has_images(messages: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any message carries an image content block."""
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, Mapping) and block.get("type") in _IMAGE_BLOCKS:
                    return True
    return False


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _raw_call(call: Any) -> dict[str, Any]:
    function = _get(call, "function")
    return {
        "id": _get(call, "id"),
        "function": {
            "name": _get(function, "name") or "",
            "arguments": _get(function, "arguments") or "",
        },
    }


def response_tool_calls(calls: Sequence[Any]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """LiteLLM tool calls as LangChain tool calls (unparsable arguments become invalid calls)."""
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for call in calls:
        raw = _raw_call(call)
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except Exception as exc:  # malformed JSON arguments from the model
            invalid.append(make_invalid_tool_call(raw, str(exc)))
            continue
        if parsed is not None:
            valid.append(parsed)  # type: ignore[arg-type]
    return valid, invalid


def stream_tool_call_chunks(chunks: Sequence[Any]) -> list[ToolCallChunk]:
    """The tool calls of a streamed LiteLLM answer, one merged chunk per call index."""
    merged: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        try:
            deltas = chunk.choices[0].delta.tool_calls
        except (AttributeError, IndexError, TypeError):
            continue
        for position, delta in enumerate(deltas or ()):
            index = _get(delta, "index")
            index = position if index is None else int(index)
            entry = merged.setdefault(index, {"id": None, "name": "", "args": ""})
            function = _get(delta, "function")
            if _get(delta, "id"):
                entry["id"] = _get(delta, "id")
            if _get(function, "name"):
                entry["name"] += _get(function, "name")
            if _get(function, "arguments"):
                entry["args"] += _get(function, "arguments")
    return [
        ToolCallChunk(
            name=entry["name"] or None,
            args=entry["args"] or "{}",
            id=entry["id"],
            index=index,
            type="tool_call_chunk",
        )
        for index, entry in sorted(merged.items())
    ]


def finish_reason(response: Any) -> str | None:
    """The finish reason of the first choice, or of the last streamed chunk that has one."""
    chunks = getattr(response, "chunks", None)
    if chunks is not None:
        for chunk in reversed(chunks):
            try:
                reason = chunk.choices[0].finish_reason
            except (AttributeError, IndexError, TypeError):
                continue
            if reason:
                return str(reason)
        return None
    try:
        reason = response.choices[0].finish_reason
    except (AttributeError, IndexError, TypeError):
        return None
    return str(reason) if reason else None


def usage_metadata(input_tokens: int, output_tokens: int) -> UsageMetadata:
    """LangChain usage metadata from the executor's token counts."""
    return UsageMetadata(
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        total_tokens=int(input_tokens) + int(output_tokens),
    )
