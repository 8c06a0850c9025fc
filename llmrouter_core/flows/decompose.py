"""Decomposers: split a question into the sub-questions an agentic flow routes one by one.

* :func:`structural_parts` needs no model: it splits on header lines ``### Part N``, else on
  top-level numbered items (``1.`` / ``1)`` at the start of a line, numbered 1, 2, 3, ...);
  text before the first part is context shared by every part.
* The LLM decomposer asks a model for ``{"parts": [...]}`` following :data:`PARTS_SCHEMA`,
  with one repair pass when the reply does not parse (:func:`parse_parts` says why).

Example:
    >>> structural_parts("### Part 1\\nWhat is 2+2?\\n### Part 2\\nName a prime.")
    ['What is 2+2?', 'Name a prime.']
    >>> structural_parts("Answer both.\\n1. What is 2+2?\\n2. Name a prime.")
    ['Answer both.\\n\\nWhat is 2+2?', 'Answer both.\\n\\nName a prime.']
    >>> structural_parts("Just one question?")
    ['Just one question?']
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "PARTS_SCHEMA",
    "decompose_prompt",
    "parse_parts",
    "repair_prompt",
    "structural_parts",
]

_HEADER = re.compile(r"^[ \t]*###[ \t]+Part[ \t]+(\d+)\b[^\n]*$", re.IGNORECASE | re.MULTILINE)
_ITEM = re.compile(r"^(\d+)[.)][ \t]+", re.MULTILINE)

#: JSON schema of the LLM decomposer's reply.
PARTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "parts": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
        }
    },
    "required": ["parts"],
    "additionalProperties": False,
}


def _with_context(context: str, parts: list[str]) -> list[str]:
    context = context.strip()
    parts = [p.strip() for p in parts]
    return [f"{context}\n\n{p}" if context else p for p in parts]


def structural_parts(query: str) -> list[str]:
    """The parts of ``query`` by its structure (``[query]`` when it has none).

    Header lines ``### Part N`` win over numbered items (an item list inside a part stays in
    that part). Numbered items count only when they start at the beginning of a line and
    run 1, 2, 3, ... (at least two of them); continuation lines stay with their item.
    """
    headers = list(_HEADER.finditer(query))
    if headers:
        bodies = [
            query[h.end() : (headers[i + 1].start() if i + 1 < len(headers) else len(query))]
            for i, h in enumerate(headers)
        ]
        parts = _with_context(query[: headers[0].start()], bodies)
        parts = [p for p in parts if p]
        return parts or [query.strip()]
    items: list[re.Match[str]] = []
    for m in _ITEM.finditer(query):
        if int(m.group(1)) == len(items) + 1:
            items.append(m)
    if len(items) >= 2:
        bodies = [
            query[m.end() : (items[i + 1].start() if i + 1 < len(items) else len(query))]
            for i, m in enumerate(items)
        ]
        return _with_context(query[: items[0].start()], bodies)
    return [query.strip()]


def decompose_prompt(query: str, max_parts: int) -> str:
    """The LLM decomposer's request."""
    return (
        "Split the question below into at most "
        f"{max_parts} self-contained sub-questions that together answer it (one, if it "
        "cannot be split). Reply with only a JSON object matching this schema, nothing else:\n"
        f"{json.dumps(PARTS_SCHEMA)}\n"
        'Example: {"parts": ["What is the capital of France?", "What is 2+2?"]}\n\n'
        f"Question:\n{query}"
    )


def repair_prompt(error: str) -> str:
    """The one follow-up that asks the decomposer to fix an invalid reply."""
    return (
        f"That reply is not valid: {error}. Reply again with only the JSON object "
        '{"parts": [...]} (a list of non-empty strings), nothing else.'
    )


def _json_object(text: str) -> Any:
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    return obj


def parse_parts(text: str, max_parts: int) -> list[str]:
    """The sub-questions of a decomposer reply.

    Raises:
        ValueError: The reply is not a JSON object ``{"parts": [non-empty strings]}`` of at
            most ``max_parts`` items (the message says what is wrong).

    Example:
        >>> parse_parts('Sure! {"parts": ["a?", "b?"]}', 4)
        ['a?', 'b?']
    """
    try:
        obj = _json_object(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply is not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("parts"), list):
        raise ValueError('the JSON object has no "parts" list')
    parts = obj["parts"]
    if not parts:
        raise ValueError('"parts" is empty')
    if not all(isinstance(p, str) and p.strip() for p in parts):
        raise ValueError('every item of "parts" must be a non-empty string')
    if len(parts) > max_parts:
        raise ValueError(f'"parts" has {len(parts)} items, more than {max_parts}')
    return [p.strip() for p in parts]
