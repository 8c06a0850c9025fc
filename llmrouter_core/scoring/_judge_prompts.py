"""The LLM judge's prompt and the parsing of its replies (see :mod:`.judge`).

Pure functions of text: what the judge is shown (the pool's lines, worked examples, the query
cut to fit) and how a reply becomes one 0-10 rating per pool model.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.pool import ModelSpec, Pool

__all__ = [
    "DEFAULT_LOCAL_JUDGE",
    "DEFAULT_PROMPT_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "RATING_SCALE",
    "ParsedRatings",
    "context_window",
    "model_lines",
    "parse_ratings",
    "query_limit",
    "render_prompt",
    "truncate_query",
]

logger = logging.getLogger("llmrouter_core.scoring.judge")

#: The judge used when none is named and no API key is configured.
DEFAULT_LOCAL_JUDGE = "local/smollm2-135m"
#: Ratings run from 0 (certainly fails) to this value (certainly answers well).
RATING_SCALE = 10

#: The system message; ``{models}`` is replaced by the pool, one ``- <name> (...)`` line per
#: model. The pool is listed once, here, so every call shares the same prefix (providers and
#: llama.cpp reuse a cached prefix) and examples do not repeat it.
DEFAULT_SYSTEM_PROMPT = (
    "You are the judge of an LLM router. You never answer the user's query yourself. For each "
    "query, you rate how likely each candidate model is to answer it well, from 0 (it will "
    "certainly fail) to 10 (it will certainly answer well).\n"
    "\n"
    "Candidate models:\n"
    "{models}\n"
    "\n"
    "Reply with only one JSON object that maps every candidate model name to its rating, "
    'like {"<model name>": <rating>, ...}.'
)
#: The user message; ``{query}`` (and ``{models}``, if present) are replaced; other braces
#: are kept as they are. The reminder comes last, where small judges look.
DEFAULT_PROMPT_TEMPLATE = (
    "Query:\n"
    "<query>\n"
    "{query}\n"
    "</query>\n"
    "\n"
    "Do not answer the query. Reply with the JSON ratings of every candidate model."
)

_PLACEHOLDER = re.compile(r"\{(models|query)\}")
# "<name>": 7 / <name> = 7 / **<name>** - 7 / <name> is 7 (the name not part of a longer one)
_NAME_START = r"(?<![\w/.-])"
_RATING_AFTER_NAME = (
    r"(?![\w/.]|-\w)[\"'*`]*\s*(?:[:=]|-|\u2013|\u2014|\bis\b)\s*\"?(\d+(?:\.\d+)?)"
)
_CHARS_PER_TOKEN_BOUND = 2.5
_MIN_QUERY_CHARS = 200


# -- prompt ----------------------------------------------------------------------------------


def render_prompt(template: str, models: str, query: str) -> str:
    """``template`` with ``{models}`` and ``{query}`` replaced in one pass (a query that
    contains the text ``{models}`` stays as it is).

    Example:
        >>> render_prompt("M: {models} Q: {query} {other}", "a, b", "why {models}?")
        'M: a, b Q: why {models}? {other}'
    """
    values = {"models": models, "query": query}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut or text[:limit]) + " ..."


def truncate_query(query: str, limit: int) -> str:
    """``query`` cut to its last ``limit`` characters (few-shot prompts, RouterBench's among
    them, put the question last).

    Example:
        >>> truncate_query("a long preamble. Question?", 9)
        '[...] Question?'
    """
    return query if len(query) <= limit else "[...] " + query[-limit:]


def context_window(judge_model: str) -> int | None:
    """Input tokens the judge accepts, if known (this package's local models, else LiteLLM's
    bundled model table)."""
    provider, _, name = judge_model.partition("/")
    if provider == "local":
        from llmrouter_core.providers.local import default_local_pool

        local = default_local_pool()
        return local[name].context_window if name in local.names else None
    from llmrouter_core._lazy import import_litellm

    table: Mapping[str, Any] = getattr(import_litellm(), "model_cost", {})
    for key in (judge_model, name):
        info = table.get(key) if key else None
        if isinstance(info, Mapping) and isinstance(info.get("max_input_tokens"), int):
            return int(info["max_input_tokens"])
    return None


def model_lines(
    pool: Pool | None,
    models: Sequence[str],
    mean_costs: FloatArray | None,
    max_description_chars: int,
) -> str:
    """The pool as the judge sees it: one ``- <name> (size; prices; cost per 1,000 queries):
    description`` line per model (facts that are unknown are left out)."""
    names = set(pool.names) if pool is not None else set()
    lines = []
    for j, name in enumerate(models):
        spec = pool[name] if pool is not None and name in names else ModelSpec(name)
        size = spec.size_b
        facts = [f"{size:g}B parameters" if size is not None else "size unknown"]
        if spec.has_prices:
            facts.append(
                f"${spec.input_price:g} / ${spec.output_price:g} per 1M input / output tokens"
            )
        if mean_costs is not None and np.isfinite(mean_costs[j]):
            facts.append(f"about ${float(mean_costs[j]) * 1000:.3g} per 1,000 queries")
        line = f"- {name} ({'; '.join(facts)})"
        if spec.description and max_description_chars > 0:
            line += ": " + _shorten(spec.description, max_description_chars)
        lines.append(line)
    return "\n".join(lines)


def query_limit(
    judge_model: str,
    max_query_chars: int,
    max_tokens: int,
    system: str,
    frame: str,
    examples: Sequence[tuple[str, str]],
) -> int:
    """Characters of a query (and of each example) shown to the judge: ``max_query_chars``,
    lowered so that the prompt and the reply fit the judge's context window when it is known
    (local models have 2,048 tokens).

    Args:
        judge_model: The judge's model id.
        max_query_chars: The upper bound.
        max_tokens: Output tokens of a reply.
        system: The rendered system message.
        frame: The rendered user message with an empty query.
        examples: The worked examples (query, reply).
    """
    limit = int(max_query_chars)
    window = context_window(judge_model)
    if window is None:
        return limit
    n_user = len(examples) + 1
    fixed = len(system) + n_user * len(frame) + sum(len(r) for _, r in examples)
    # Tokens counted as characters / 2.5 (small models' tokenizers split model names and
    # code finely: SmolLM2 averages about 2.8 on these prompts), plus a few template tokens
    # per message.
    tokens = window - max_tokens - 8 * (2 * n_user)
    fit = int((tokens * _CHARS_PER_TOKEN_BOUND - fixed) // n_user)
    if fit < limit:
        if fit < _MIN_QUERY_CHARS:
            logger.warning(
                "the judge %s has a %d-token context: the pool list and examples leave about "
                "%d characters for the query; use fewer examples or a shorter template",
                judge_model,
                window,
                max(fit, 0),
            )
        limit = max(fit, _MIN_QUERY_CHARS)
    return limit


# -- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedRatings:
    """The ratings read from one judge reply.

    Attributes:
        ratings: Per pool model, the rating in ``[0, RATING_SCALE]`` or ``None`` (missing).
        status: ``"ok"`` (every model rated), ``"partial"`` or ``"unparseable"`` (none).
        method: ``"json"``, ``"regex"`` or ``"none"``: how the ratings were found.
    """

    ratings: tuple[float | None, ...]
    status: Literal["ok", "partial", "unparseable"]
    method: Literal["json", "regex", "none"]


def _as_rating(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?\s*", value)
        if match is None:
            return None
        value = float(match.group(1))
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= RATING_SCALE:
        return float(value)
    return None  # out of the scale: not a rating on the scale asked for


def _json_candidates(text: str) -> list[Any]:
    """Every JSON object or array that can be decoded starting at a ``{`` or ``[``."""
    decoder = json.JSONDecoder()
    out = []
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict | list):
            out.append(value)
    return out


def _from_json(value: Any, models: Sequence[str]) -> list[float | None]:
    m = len(models)
    out: list[float | None] = [None] * m
    if isinstance(value, list):
        if len(value) == m and all(not isinstance(v, dict | list) for v in value):
            out = [_as_rating(v) for v in value]
        elif value and all(isinstance(v, dict) for v in value):
            # [{"model": "a", "rating": 7}, ...]
            merged = {}
            for item in value:
                name = item.get("model", item.get("name"))
                score = item.get("rating", item.get("score"))
                if name is not None:
                    merged[str(name)] = score
            return _from_json(merged, models)
        return out
    exact = {name: j for j, name in enumerate(models)}
    folded = {name.strip().lower(): j for j, name in enumerate(models)}
    for key, raw in value.items():
        k = str(key).strip()
        j = exact.get(k)
        if j is None:
            j = folded.get(k.lower())
        if j is None and k.isdigit() and 1 <= int(k) <= m:
            j = int(k) - 1  # "1": the first model of the list
        if j is not None and out[j] is None:
            out[j] = _as_rating(raw)
    return out


def _from_regex(text: str, models: Sequence[str]) -> list[float | None]:
    out: list[float | None] = []
    for name in models:
        pattern = _NAME_START + re.escape(name) + _RATING_AFTER_NAME
        match = re.search(pattern, text, re.I)
        out.append(_as_rating(match.group(1)) if match else None)
    return out


def parse_ratings(reply: str, models: Sequence[str]) -> ParsedRatings:
    """Read a 0-10 rating per model from a judge's reply.

    First the JSON objects (or arrays) in the reply, best first: a ``{"<model>": rating}``
    object (names matched exactly, then case-insensitively; ``"1"`` ... ``"n"`` number the
    models in the prompt's order), an array of ``n`` ratings in that order, or
    ``[{"model": ..., "rating": ...}]``. If none yields a rating, ``"<model>": <rating>``
    pairs anywhere in the text (regular expression). Ratings outside ``0..10`` are ignored.

    Args:
        reply: The judge's reply text.
        models: The pool's model names, in the prompt's order.

    Returns:
        The :class:`ParsedRatings` (never raises on a malformed reply).

    Example:
        >>> parse_ratings('Sure! ```json\\n{"a": 9, "b": 2}\\n```', ["a", "b"]).ratings
        (9.0, 2.0)
        >>> parse_ratings("a: 8\\nb = 4", ["a", "b"]).method
        'regex'
        >>> parse_ratings("I think the answer is B.", ["a", "b"]).status
        'unparseable'
    """
    m = len(models)
    best: list[float | None] = [None] * m
    method: Literal["json", "regex", "none"] = "none"
    for candidate in _json_candidates(reply):
        found = _from_json(candidate, models)
        if sum(r is not None for r in found) > sum(r is not None for r in best):
            best, method = found, "json"
            if all(r is not None for r in best):
                break
    if method == "none":
        found = _from_regex(reply, models)
        if any(r is not None for r in found):
            best, method = found, "regex"
    n_found = sum(r is not None for r in best)
    status: Literal["ok", "partial", "unparseable"] = (
        "ok" if n_found == m else ("partial" if n_found else "unparseable")
    )
    return ParsedRatings(tuple(best), status, method)
