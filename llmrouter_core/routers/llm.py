"""The causal-LM router: an LLM (the *judge*) rates each pool model for the query.

The judge is shown the pool (each model's name, size, price and description) and the query,
and replies with a 0-10 rating per model in a strict JSON format. Ratings become predicted
quality, optionally calibrated on the training data, and the shared policy applies the
cost-quality knob, as for every router.

* **Prompt.** The system message lists the pool once (shared by every call, so providers and
  llama.cpp reuse the cached prefix); ``n_examples`` worked examples (real training queries
  with their measured scores as ratings) pin the reply format; the query comes last, cut to
  its end when it is long, and shorter still when the judge's context window is known and
  small (the local models' 2,048 tokens).
* **Calls** go through the project's execution layer
  (:class:`~llmrouter_core.execution.Executor`): any LiteLLM model id, keys from ``API_KEYS``
  or the provider's environment variable (never stored), retries of transient failures. With
  no judge named and no API key configured, the judge is the local SmolLM2-135M
  (``local/smollm2-135m``, ``local`` extra), as the execution layer's default pool.
* **Parsing** is lenient about the wrapping and strict about the content: the JSON object
  (or array) in the reply that rates the most pool models, else ``"<model>": <rating>`` pairs
  found by a regular expression; ratings outside 0-10 are ignored. A model the reply leaves
  out gets its training prior (a *partial* reply); a reply with no usable rating is
  *unparseable* and the whole row gets the prior. Both are counted
  (:attr:`CausalLMRouter.judge_stats`) and logged; neither raises.
* **Judge failures** (the call fails after the executor's retries): by default the row falls
  back to the prior, and the failure is counted and logged (``on_judge_error="prior"``);
  ``on_judge_error="raise"`` raises :class:`~llmrouter_core.errors.JudgeError` instead. A
  judge that fails on *every* calibration query at ``fit`` is a configuration error and
  always raises :class:`~llmrouter_core.errors.JudgeError`.
* **Calibration** (``calibrate=True``): quality = w x rating / 10 + (1 - w) x the model's
  mean training score, with the blend weight w chosen by k-fold cross-validation (squared
  error against the measured scores) on a seeded slice of ``n_calibration`` training queries,
  each prior computed without the held-out fold. A judge whose ratings carry no information
  gets w = 0: the router then predicts each model's training mean, as ``single`` does.
* **Cost.** Every rating is one LLM call, so fitting rates only the calibration slice (which
  also places the knob's sweep points), and ratings are cached in memory per (judge, call
  arguments, prompt), so a sweep or a repeated query does not call the judge again. The
  judge's own cost is routing overhead, reported in :attr:`CausalLMRouter.judge_stats`, not
  part of the routed model's cost.
* **Persistence** is plain JSON: the judge's model id and call arguments (never an API key:
  ``judge_kwargs`` may not carry one), the prompt, the demonstration and the calibration.

Example:
    >>> from llmrouter_core import get_router
    >>> router = get_router("llm", judge_model="openai/gpt-4o-mini")
    >>> router.family
    'llm'
    >>> parse_ratings('{"a": 7, "b": "3"}', ["a", "b", "c"]).status
    'partial'
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import JudgeError
from llmrouter_core.pool import Pool
from llmrouter_core.routers.base import Arrays, Router

__all__ = [
    "DEFAULT_LOCAL_JUDGE",
    "DEFAULT_PROMPT_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "RATING_SCALE",
    "CausalLMRouter",
    "JudgeStats",
    "ParsedRatings",
    "parse_ratings",
    "render_prompt",
]

logger = logging.getLogger(__name__)

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
# call arguments that would put a secret into a saved router or a log
_SECRET_ARG = re.compile(r"key|secret|credential|password|token$", re.I)
_SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret", re.I)
# "<name>": 7 / <name> = 7 / **<name>** - 7 / <name> is 7 (the name not part of a longer one)
_NAME_START = r"(?<![\w/.-])"
_RATING_AFTER_NAME = (
    r"(?![\w/.]|-\w)[\"'*`]*\s*(?:[:=]|-|\u2013|\u2014|\bis\b)\s*\"?(\d+(?:\.\d+)?)"
)
_RESERVED_ARGS = frozenset({"model", "messages", "stream"})
_JUDGE = "judge"  # the judge's name in its one-model execution pool
_CACHE_SIZE = 50_000
_CHARS_PER_TOKEN_BOUND = 2.5
_MIN_QUERY_CHARS = 200
_ON_ERROR = ("prior", "raise")


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


def _truncate_query(query: str, limit: int) -> str:
    # Keep the end: few-shot prompts (RouterBench's among them) put the question last.
    return query if len(query) <= limit else "[...] " + query[-limit:]


def _context_window(judge_model: str) -> int | None:
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


def _model_lines(
    pool: Pool, models: Sequence[str], mean_costs: FloatArray, max_description_chars: int
) -> str:
    lines = []
    for j, name in enumerate(models):
        spec = pool[name]
        size = spec.size_b
        facts = [f"{size:g}B parameters" if size is not None else "size unknown"]
        if spec.has_prices:
            facts.append(
                f"${spec.input_price:g} / ${spec.output_price:g} per 1M input / output tokens"
            )
        facts.append(f"about ${float(mean_costs[j]) * 1000:.3g} per 1,000 queries")
        line = f"- {name} ({'; '.join(facts)})"
        if spec.description and max_description_chars > 0:
            line += ": " + _shorten(spec.description, max_description_chars)
        lines.append(line)
    return "\n".join(lines)


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


# -- statistics ------------------------------------------------------------------------------


@dataclass
class JudgeStats:
    """Counters of the judge's work (since ``fit``, or since loading).

    Attributes:
        calls: Judge calls made (cache misses).
        cache_hits: Ratings served from the in-memory cache.
        ok: Replies that rated every model.
        partial: Replies that rated some models (the rest got their prior).
        unparseable: Replies with no usable rating (the whole row got the prior).
        errors: Calls that failed after retries (the row got the prior, or
            :class:`~llmrouter_core.errors.JudgeError` was raised).
        cost_usd: What the judge's calls cost (routing overhead).
    """

    calls: int = 0
    cache_hits: int = 0
    ok: int = 0
    partial: int = 0
    unparseable: int = 0
    errors: int = 0
    cost_usd: float = 0.0

    @property
    def fallbacks(self) -> int:
        """Rows that fell back entirely to the prior (unparseable replies and failures)."""
        return self.unparseable + self.errors

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fallbacks"] = self.fallbacks
        return out


# -- the router ------------------------------------------------------------------------------


class CausalLMRouter(Router):
    """An LLM judge rates each pool model for the query; ratings become predicted quality.

    Args:
        judge_model: LiteLLM model id of the judge (``"openai/gpt-4o-mini"``,
            ``"local/smollm2-135m"``, ...). ``None``: the local SmolLM2-135M when no API key is
            configured (as :func:`llmrouter_core.providers.local.default_pool`); with keys
            configured, name one (``fit`` raises ``ValueError`` otherwise).
        judge_kwargs: More LiteLLM arguments of the judge's calls (``api_base``,
            ``temperature``, ``mock_response``...). Saved with the router, so they may not hold
            secrets: use ``judge_api_key_env`` or ``API_KEYS`` for the key.
        judge_api_key_env: Name of an environment variable holding the judge's API key.
        system_prompt: The judge's system message (``None``: :data:`DEFAULT_SYSTEM_PROMPT`);
            ``{models}`` is replaced by the pool's lines.
        prompt_template: The user message, with a ``{query}`` placeholder (and ``{models}``
            unless the system prompt has it; ``None``: :data:`DEFAULT_PROMPT_TEMPLATE`).
        n_examples: Worked examples shown before the query: training queries (seeded, from
            the shorter half) with their measured scores as ratings. They pin the reply
            format for small judges and cost their tokens on every call; 0 for none.
        calibrate: Blend ratings with each model's mean training score, the weight chosen by
            cross-validation; ``False`` uses rating / 10 as the quality.
        n_calibration: Training queries rated at ``fit`` (one judge call each) for the blend
            weight and the knob's calibration.
        cv_folds: Folds of the blend weight's cross-validation.
        max_query_chars: Longer queries keep their last characters (few-shot prompts put the
            question last).
        max_description_chars: Model descriptions are shortened to this length.
        max_tokens: Output tokens of a judge reply.
        max_concurrency: Judge calls in flight at once when rating many queries.
        timeout: Seconds per judge call.
        max_retries: Retries of a transient judge failure (rate limit, timeout, 5xx).
        on_judge_error: ``"prior"`` (fall back to the prior, count and log) or ``"raise"``
            (:class:`~llmrouter_core.errors.JudgeError`).
        random_state: Seeds the calibration slice, the folds and the examples.

    Example:
        >>> router = CausalLMRouter(judge_model="openai/gpt-4o-mini", n_calibration=20)
        >>> router.n_calibration
        20
        >>> # router.fit(train).route("Write a SQL query ...")  calls the judge once per query
    """

    name = "llm"
    family = "llm"
    #: Every rating is an LLM call: ``llmrouter benchmark`` leaves it out unless named.
    benchmark_by_default: ClassVar[bool] = False

    judge_model_: str
    system_prompt_: str
    prompt_template_: str
    models_block_: str
    examples_: list[tuple[str, str]]
    prior_: FloatArray
    blend_: float
    cv_loss_: dict[str, float]
    calibration_index_: np.ndarray
    fit_judge_stats_: dict[str, Any]

    def __init__(
        self,
        *,
        judge_model: str | None = None,
        judge_kwargs: Mapping[str, Any] | None = None,
        judge_api_key_env: str | None = None,
        system_prompt: str | None = None,
        prompt_template: str | None = None,
        n_examples: int = 1,
        calibrate: bool = True,
        n_calibration: int = 40,
        cv_folds: int = 5,
        max_query_chars: int = 2000,
        max_description_chars: int = 240,
        max_tokens: int = 256,
        max_concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 2,
        on_judge_error: str = "prior",
        random_state: int = 0,
    ) -> None:
        self.judge_model = judge_model
        self.judge_kwargs = judge_kwargs
        self.judge_api_key_env = judge_api_key_env
        self.system_prompt = system_prompt
        self.prompt_template = prompt_template
        self.n_examples = n_examples
        self.calibrate = calibrate
        self.n_calibration = n_calibration
        self.cv_folds = cv_folds
        self.max_query_chars = max_query_chars
        self.max_description_chars = max_description_chars
        self.max_tokens = max_tokens
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.on_judge_error = on_judge_error
        self.random_state = random_state

    # -- runtime state (not learned, not saved) --------------------------------------------
    def _runtime(self) -> None:
        if "_lock" not in vars(self):
            self._lock = threading.Lock()
            self._cache: OrderedDict[str, tuple[float, ...]] = OrderedDict()
            self._stats = JudgeStats()
            self._executor: Any = None
            self._limit: int | None = None

    @property
    def judge_stats(self) -> JudgeStats:
        """A snapshot of the judge counters since ``fit`` (or loading)."""
        self._runtime()
        with self._lock:
            return JudgeStats(**asdict(self._stats))

    def clear_cache(self) -> None:
        """Forget the cached ratings (the next request calls the judge again)."""
        self._runtime()
        with self._lock:
            self._cache.clear()

    # -- checks ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        ints = {
            "n_examples": (self.n_examples, 0),
            "n_calibration": (self.n_calibration, 1),
            "cv_folds": (self.cv_folds, 2),
            "max_query_chars": (self.max_query_chars, 1),
            "max_description_chars": (self.max_description_chars, 0),
            "max_tokens": (self.max_tokens, 1),
            "max_concurrency": (self.max_concurrency, 1),
            "max_retries": (self.max_retries, 0),
        }
        for name, (value, low) in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.timeout, int | float) and self.timeout > 0):
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.on_judge_error not in _ON_ERROR:
            raise ValueError(
                f"on_judge_error must be one of {_ON_ERROR}, got {self.on_judge_error!r}"
            )
        if self.judge_model is not None and (
            not isinstance(self.judge_model, str) or not self.judge_model.strip()
        ):
            raise ValueError("judge_model must be a LiteLLM model id such as 'openai/gpt-4o-mini'")
        system = DEFAULT_SYSTEM_PROMPT if self.system_prompt is None else str(self.system_prompt)
        template = (
            DEFAULT_PROMPT_TEMPLATE if self.prompt_template is None else str(self.prompt_template)
        )
        if "{query}" not in template:
            raise ValueError("prompt_template lacks the {query} placeholder")
        if "{query}" in system:
            raise ValueError("system_prompt may not hold {query}: it is the same for every call")
        if "{models}" not in system and "{models}" not in template:
            raise ValueError(
                "neither system_prompt nor prompt_template has the {models} placeholder"
            )
        kwargs = self.judge_kwargs or {}
        if not isinstance(kwargs, Mapping):
            raise ValueError("judge_kwargs must be a mapping of LiteLLM arguments")
        reserved = sorted(_RESERVED_ARGS.intersection(kwargs))
        if reserved:
            raise ValueError(f"judge_kwargs may not set {reserved}: the router sets them")
        secret = sorted(k for k in kwargs if _SECRET_ARG.search(str(k)) and k != "max_tokens")
        headers = kwargs.get("extra_headers")
        if isinstance(headers, Mapping):
            secret += [f"extra_headers[{h}]" for h in headers if _SECRET_HEADER.search(str(h))]
        if secret:
            raise ValueError(
                f"judge_kwargs may not hold secrets ({', '.join(secret)}): they would be saved "
                "with the router; give the key's environment variable as judge_api_key_env, "
                "or set API_KEYS / the provider's key variable"
            )

    @staticmethod
    def _resolve_judge(judge_model: str | None) -> str:
        if judge_model:
            return judge_model
        from llmrouter_core.providers.local import default_pool

        if default_pool() is None:
            raise ValueError(
                "API keys are configured, so there is no default judge: name one with "
                "judge_model='<LiteLLM model id>' (e.g. 'openai/gpt-4o-mini'), or "
                f"judge_model={DEFAULT_LOCAL_JUDGE!r} for the local CPU model"
            )
        return DEFAULT_LOCAL_JUDGE

    # -- training --------------------------------------------------------------------------
    def fit(self, data: RoutingData, pool: Pool | None = None) -> CausalLMRouter:
        """Rate a slice of the training queries with the judge and calibrate (see the class
        docstring); arguments as :meth:`Router.fit`.

        Raises:
            ValueError: A bad hyperparameter, or no judge named while API keys are set.
            JudgeError: The judge failed on every calibration query (or on one, with
                ``on_judge_error="raise"``).
            MissingExtraError: The local judge without the ``local`` extra installed.
        """
        try:
            super().fit(data, pool)
        except BaseException:
            # A failed fit leaves no half-fitted router behind (the base class sets models_
            # before the judge is first called).
            for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
                delattr(self, attr)
            raise
        return self

    def _fit(self, data: RoutingData) -> None:
        self._check_params()
        self._runtime()
        with self._lock:
            self._stats = JudgeStats()
            self._executor = None
            self._limit = None
        self.judge_model_ = self._resolve_judge(self.judge_model)
        self.system_prompt_ = (
            DEFAULT_SYSTEM_PROMPT if self.system_prompt is None else str(self.system_prompt)
        )
        self.prompt_template_ = (
            DEFAULT_PROMPT_TEMPLATE if self.prompt_template is None else str(self.prompt_template)
        )
        self.prior_ = np.asarray(data.mean_scores(), dtype=np.float64)
        self.models_block_ = _model_lines(
            self.pool_, data.models, data.mean_costs(), self.max_description_chars
        )
        rng = np.random.default_rng(self.random_state)
        n = data.n_queries
        n_cal = min(self.n_calibration, n)
        order = rng.permutation(n)
        self.calibration_index_ = np.sort(order[:n_cal])
        self.examples_ = self._pick_examples(data, order[n_cal:] if n > n_cal else order, rng)

        queries = [data.queries[i] for i in self.calibration_index_]
        ratings = self._rate(queries)
        stats = self.judge_stats
        if stats.errors and stats.errors == stats.calls:
            raise JudgeError(
                f"the judge {self.judge_model_!r} failed on all {stats.calls} calibration "
                "queries; check the model id and its API key (see the log for the errors)"
            )
        if stats.fallbacks or stats.partial:
            logger.warning(
                "judge %s on %d calibration queries: %d replies rated every model, %d some, "
                "%d none (unparseable), %d calls failed; missing ratings use the prior",
                self.judge_model_,
                len(queries),
                stats.ok,
                stats.partial,
                stats.unparseable,
                stats.errors,
            )
        scores = data.scores[self.calibration_index_]
        if self.calibrate:
            self.blend_, self.cv_loss_ = self._choose_blend(ratings, scores, data)
        else:
            self.blend_, self.cv_loss_ = 1.0, {}
        self.fit_judge_stats_ = stats.to_dict()

    def _pick_examples(
        self, data: RoutingData, candidates: np.ndarray, rng: np.random.Generator
    ) -> list[tuple[str, str]]:
        if self.n_examples == 0 or candidates.size == 0:
            return []
        lengths = np.array([len(data.queries[i]) for i in candidates])
        short = candidates[lengths <= np.median(lengths)]
        picked = rng.choice(short, size=min(self.n_examples, short.size), replace=False)
        out = []
        for i in picked:
            reply = {
                model: int(round(float(s) * RATING_SCALE))
                for model, s in zip(data.models, data.scores[int(i)], strict=True)
            }
            out.append((data.queries[int(i)], json.dumps(reply)))
        return out

    def _choose_blend(
        self, ratings: FloatArray, scores: FloatArray, data: RoutingData
    ) -> tuple[float, dict[str, float]]:
        """The blend weight with the least cross-validated squared error on the slice."""
        k = ratings.shape[0]
        grid = np.round(np.linspace(0.0, 1.0, 11), 2)
        folds = min(self.cv_folds, k)
        if folds < 2:
            return 0.0, {}
        assign = np.random.default_rng(self.random_state + 1).permutation(k) % folds
        total = data.scores.sum(axis=0)
        losses = np.zeros(grid.size)
        for f in range(folds):
            held = np.flatnonzero(assign == f)
            # the prior as it would be without the held-out queries
            rows = self.calibration_index_[held]
            prior = (total - data.scores[rows].sum(axis=0)) / max(data.n_queries - rows.size, 1)
            r, y = ratings[held], scores[held]
            for g, w in enumerate(grid):
                pred = np.where(np.isnan(r), prior, w * r + (1.0 - w) * prior)
                losses[g] += float(np.sum((pred - y) ** 2))
        losses /= max(ratings.size, 1)
        best = int(np.flatnonzero(losses <= losses.min() + 1e-12)[0])  # ties: less judge
        return float(grid[best]), {f"{w:.1f}": float(v) for w, v in zip(grid, losses, strict=True)}

    def _calibrate(self, queries: Sequence[str]) -> dict[str, list[float]]:
        # Only the rated slice: calibrating on every training query would call the judge
        # once per training query.
        return super()._calibrate([queries[int(i)] for i in self.calibration_index_])

    # -- prediction ------------------------------------------------------------------------
    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:
        r = self._rate(queries)
        prior = self.prior_[None, :]
        w = self.blend_
        q = np.where(np.isnan(r), prior, w * r + (1.0 - w) * prior)
        return np.asarray(np.clip(q, 0.0, 1.0), dtype=np.float64)

    def judge_messages(self, query: str) -> list[dict[str, str]]:
        """The chat messages the judge receives for ``query`` (system, examples, query).

        Example:
            >>> # router.judge_messages("What is 2 + 2?")[-1]["content"]  lists the pool
        """
        self._check_fitted()
        system = render_prompt(self.system_prompt_, self.models_block_, "")
        msgs = [{"role": "system", "content": system}]
        for example, reply in self.examples_:
            msgs.append({"role": "user", "content": self._user_message(example)})
            msgs.append({"role": "assistant", "content": reply})
        msgs.append({"role": "user", "content": self._user_message(query)})
        return msgs

    def _user_message(self, query: str) -> str:
        text = _truncate_query(query, self._query_limit())
        return render_prompt(self.prompt_template_, self.models_block_, text)

    def _query_limit(self) -> int:
        """Characters of a query (and of each example) shown to the judge: ``max_query_chars``,
        lowered so that the prompt and the reply fit the judge's context window when it is
        known (local models have 2,048 tokens)."""
        self._runtime()
        if self._limit is None:
            self._limit = self._compute_query_limit()
        return self._limit

    def _compute_query_limit(self) -> int:
        limit = int(self.max_query_chars)
        window = _context_window(self.judge_model_)
        if window is None:
            return limit
        frame = len(render_prompt(self.prompt_template_, self.models_block_, ""))
        system = len(render_prompt(self.system_prompt_, self.models_block_, ""))
        n_user = len(self.examples_) + 1
        fixed = system + n_user * frame + sum(len(r) for _, r in self.examples_)
        # Tokens counted as characters / 2.5 (small models' tokenizers split model names and
        # code finely: SmolLM2 averages about 2.8 on these prompts), plus a few template
        # tokens per message.
        tokens = window - self.max_tokens - 8 * (2 * n_user)
        fit = int((tokens * _CHARS_PER_TOKEN_BOUND - fixed) // n_user)
        if fit < limit:
            if fit < _MIN_QUERY_CHARS:
                logger.warning(
                    "the judge %s has a %d-token context: the pool list and examples leave "
                    "about %d characters for the query; use fewer examples or a shorter "
                    "template",
                    self.judge_model_,
                    window,
                    max(fit, 0),
                )
            limit = max(fit, _MIN_QUERY_CHARS)
        return limit

    def _call_args(self) -> dict[str, Any]:
        kwargs = dict(self.judge_kwargs or {})
        call: dict[str, Any] = {}
        if "temperature" not in kwargs:
            call["temperature"] = 0.0  # the same query gets the same rating
        if "max_tokens" not in kwargs and "max_completion_tokens" not in kwargs:
            call["max_tokens"] = self.max_tokens
        return call

    def _cache_key(self, messages: list[dict[str, str]]) -> str:
        blob = json.dumps(
            [self.judge_model_, dict(self.judge_kwargs or {}), self._call_args(), messages],
            sort_keys=True,
            default=repr,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _rate(self, queries: Sequence[str]) -> FloatArray:
        """Ratings / RATING_SCALE, shape ``(n, m)``; NaN where the judge gave none."""
        self._runtime()
        m = len(self.models_)
        out = np.full((len(queries), m), np.nan)
        keys = []
        todo: dict[str, list[dict[str, str]]] = {}
        with self._lock:
            for q in queries:
                msgs = self.judge_messages(q)
                key = self._cache_key(msgs)
                keys.append(key)
                if key in self._cache:
                    self._cache.move_to_end(key)
                    self._stats.cache_hits += 1
                elif key not in todo:
                    todo[key] = msgs
        if todo:
            items = list(todo.items())
            workers = min(self.max_concurrency, len(items))
            if workers > 1:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    results = list(pool.map(lambda kv: self._ask(kv[1]), items))
            else:
                results = [self._ask(msgs) for _, msgs in items]
            fresh = {key: row for (key, _), row in zip(items, results, strict=True)}
        else:
            fresh = {}
        with self._lock:
            for key, row in fresh.items():
                if row is not None:  # failures are not cached: the next request retries
                    self._cache[key] = row
                    if len(self._cache) > _CACHE_SIZE:
                        self._cache.popitem(last=False)
            for i, key in enumerate(keys):
                row = fresh.get(key) if key in fresh else self._cache.get(key)
                if row is not None:
                    out[i] = np.array(row, dtype=np.float64)
        return out

    def _judge_executor(self) -> Any:
        with self._lock:
            if self._executor is None:
                from llmrouter_core.execution import Executor, PoolOrderRouter
                from llmrouter_core.pool import ModelSpec

                spec = ModelSpec(
                    name=_JUDGE,
                    litellm_model=self.judge_model_,
                    api_key_env=self.judge_api_key_env,
                    extra={"litellm_kwargs": dict(self.judge_kwargs or {})},
                )
                self._executor = Executor(
                    PoolOrderRouter(Pool([spec])),
                    max_retries=self.max_retries,
                    timeout=float(self.timeout),
                )
            return self._executor

    def _ask(self, messages: list[dict[str, str]]) -> tuple[float, ...] | None:
        """One judge call: ratings / RATING_SCALE with NaN for missing models, or ``None``
        when the call failed (and ``on_judge_error="prior"``)."""
        executor = self._judge_executor()
        try:
            result = executor.complete(messages, model=_JUDGE, **self._call_args())
        except Exception as exc:  # every failure is counted; "raise" re-raises it as one type
            with self._lock:
                self._stats.calls += 1
                self._stats.errors += 1
            if self.on_judge_error == "raise":
                raise JudgeError(f"the judge {self.judge_model_!r} failed: {exc}") from exc
            logger.warning(
                "judge %s failed, using the prior: %s", self.judge_model_, str(exc)[:300]
            )
            return None
        parsed = parse_ratings(result.answer or "", self.models_)
        with self._lock:
            self._stats.calls += 1
            self._stats.cost_usd += float(result.cost or 0.0)
            if parsed.status == "ok":
                self._stats.ok += 1
            elif parsed.status == "partial":
                self._stats.partial += 1
            else:
                self._stats.unparseable += 1
        if parsed.status != "ok":
            logger.info(
                "judge %s: %s reply, missing ratings use the prior: %r",
                self.judge_model_,
                parsed.status,
                (result.answer or "")[:200],
            )
        return tuple(math.nan if r is None else r / RATING_SCALE for r in parsed.ratings)

    # -- persistence -----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        meta = {
            "judge_model": self.judge_model_,
            "system_prompt": self.system_prompt_,
            "prompt_template": self.prompt_template_,
            "models_block": self.models_block_,
            "examples": [list(e) for e in self.examples_],
            "blend": self.blend_,
            "cv_loss": self.cv_loss_,
            "fit_judge_stats": self.fit_judge_stats_,
        }
        arrays = {"prior": self.prior_, "calibration_index": self.calibration_index_}
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        self._check_params()
        self.judge_model_ = str(meta["judge_model"])
        self.system_prompt_ = str(meta["system_prompt"])
        self.prompt_template_ = str(meta["prompt_template"])
        self.models_block_ = str(meta["models_block"])
        self.examples_ = [(str(q), str(r)) for q, r in meta["examples"]]
        self.blend_ = float(meta["blend"])
        self.cv_loss_ = {str(k): float(v) for k, v in dict(meta["cv_loss"]).items()}
        self.fit_judge_stats_ = dict(meta["fit_judge_stats"])
        self.prior_ = np.asarray(arrays["prior"], dtype=np.float64)
        self.calibration_index_ = np.asarray(arrays["calibration_index"], dtype=np.int64)
