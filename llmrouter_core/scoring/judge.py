"""The judge scorer: an LLM (the *judge*) rates each pool model for the query.

The judge is shown the pool (each model's name, size, price and description) and the query,
and replies with a 0-10 rating per model in a strict JSON format. A rating / 10 is the
predicted quality; the router blends it with each model's mean training score (the weight
chosen by the judge's own cross-validation, see below) and its policy applies the cost-quality
knob, as for every scorer. The ``llm`` router is this scorer with the ``tokens`` cost model.

* **Prompt.** The system message lists the pool once (shared by every call, so providers and
  llama.cpp reuse the cached prefix); ``n_examples`` worked examples (real training queries
  with their measured scores as ratings) pin the reply format; the query comes last, cut to
  its end when it is long, and shorter still when the judge's context window is known and
  small (the local models' 2,048 tokens). See :mod:`._judge_prompts`.
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
  (:attr:`JudgeScorer.judge_stats`) and logged; neither raises.
* **Judge failures** (the call fails after the executor's retries): by default the row falls
  back to the prior, and the failure is counted and logged (``on_judge_error="prior"``);
  ``on_judge_error="raise"`` raises :class:`~llmrouter_core.errors.JudgeError` instead. A
  judge that fails on *every* calibration query at ``fit`` is a configuration error and
  always raises :class:`~llmrouter_core.errors.JudgeError`.
* **Calibration** (``calibrate=True``, in :meth:`JudgeScorer.select`): the router's quality is
  w x rating / 10 + (1 - w) x the model's mean training score, with the blend weight w chosen
  by k-fold cross-validation (squared error against the measured scores) on a seeded slice of
  ``n_calibration`` training queries, each prior computed without the held-out fold. A judge
  whose ratings carry no information gets w = 0: the router then predicts each model's
  training mean, as ``single`` does. A blend given to the router is used as it is.
* **Cost.** Every rating is one LLM call, so fitting rates only the calibration slice, which
  also places the knob's sweep points (:meth:`JudgeScorer.calibration_rows`), and ratings are
  cached in memory per (judge, call arguments, prompt), so a sweep or a repeated query does
  not call the judge again. The judge's own cost is routing overhead, reported in
  :attr:`JudgeScorer.judge_stats`, not part of the routed model's cost.
* **Concurrency.** Routing may run in many threads at once: the cache, the counters and the
  lazily built executor are shared under one lock per scorer; judge calls run outside it.
* **Persistence** is plain JSON: the judge's model id and call arguments (never an API key:
  ``judge_kwargs`` may not carry one), the prompt, the demonstrations and the calibration.

Example:
    >>> from llmrouter_core.registry import get_router
    >>> router = get_router("llm", judge_model="openai/gpt-4o-mini")
    >>> router.family, router.scorer.judge_model
    ('llm', 'openai/gpt-4o-mini')
    >>> parse_ratings('{"a": 7, "b": "3"}', ["a", "b", "c"]).status
    'partial'
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import clone

from llmrouter_core.data.core import FloatArray
from llmrouter_core.errors import JudgeError, NotFittedError
from llmrouter_core.scoring._judge_prompts import (
    DEFAULT_LOCAL_JUDGE,
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_SYSTEM_PROMPT,
    RATING_SCALE,
    ParsedRatings,
    model_lines,
    parse_ratings,
    query_limit,
    render_prompt,
    truncate_query,
)
from llmrouter_core.scoring.base import FitContext, Scorer, Selected, Selection, Tags
from llmrouter_core.secrets import is_secret_name

__all__ = [
    "DEFAULT_LOCAL_JUDGE",
    "DEFAULT_PROMPT_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "RATING_SCALE",
    "JudgeScorer",
    "JudgeStats",
    "ParsedRatings",
    "parse_ratings",
    "render_prompt",
]

logger = logging.getLogger(__name__)

_RESERVED_ARGS = frozenset({"model", "messages", "stream"})
_JUDGE = "judge"  # the judge's name in its one-model execution pool
_CACHE_SIZE = 50_000
_ON_ERROR = ("prior", "raise")
_BLEND_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)
# Guards the lazy creation of each scorer's runtime state (its own lock, cache, counters).
_RUNTIME_LOCK = threading.Lock()


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


class _Runtime:
    """A scorer's state that is neither a hyperparameter nor learned (not saved, not cloned):
    the rating cache, the counters, the executor and the query limit, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cache: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        self.stats = JudgeStats()
        self.executor: Any = None
        self.limit: int | None = None


class JudgeScorer(Scorer):
    """An LLM judge rates each pool model for the query; a rating / 10 is the quality.

    Args:
        judge_model: LiteLLM model id of the judge (``"openai/gpt-4o-mini"``,
            ``"local/smollm2-135m"``, ...). ``None``: the local SmolLM2-135M when no API key is
            configured (as :func:`llmrouter_core.providers.local.default_pool`); with keys
            configured, name one (``fit`` raises ``ValueError`` otherwise).
        judge_kwargs: More LiteLLM arguments of the judge's calls (``api_base``,
            ``temperature``, ``mock_response``...). Saved with the router, so they may not hold
            secrets: use ``judge_api_key_env`` or ``API_KEYS`` for the key. A saved router's
            endpoints are ignored at loading unless trusted.
        judge_api_key_env: Name of an environment variable holding the judge's API key.
        system_prompt: The judge's system message (``None``: :data:`DEFAULT_SYSTEM_PROMPT`);
            ``{models}`` is replaced by the pool's lines.
        prompt_template: The user message, with a ``{query}`` placeholder (and ``{models}``
            unless the system prompt has it; ``None``: :data:`DEFAULT_PROMPT_TEMPLATE`).
        n_examples: Worked examples shown before the query: training queries (seeded, from
            the shorter half) with their measured scores as ratings. They pin the reply
            format for small judges and cost their tokens on every call; 0 for none.
        calibrate: Let :meth:`select` choose the blend with each model's mean training score
            by cross-validation; ``False``: blend 1 (quality = rating / 10).
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

    The calibration slice, the folds and the examples are seeded by the router's
    ``random_state`` (:attr:`FitContext.random_state`).

    Example:
        >>> scorer = JudgeScorer(judge_model="openai/gpt-4o-mini", n_calibration=20)
        >>> scorer.n_calibration, scorer.tags.calls_models
        (20, True)
        >>> # make_router(scorer, cost_model="tokens").fit(train).route("Write a SQL query")
    """

    input = "text"
    # An LLM's ratings may differ between runs; the default judge needs the local extra.
    tags = Tags(deterministic=False, calls_models=True, extras=("local",))

    models_: tuple[str, ...]
    judge_model_: str
    system_prompt_: str
    prompt_template_: str
    models_block_: str
    examples_: list[tuple[str, str]]
    prior_: FloatArray
    calibration_index_: npt.NDArray[np.intp]
    calibration_ratings_: FloatArray
    cv_loss_: dict[str, float]
    fit_judge_stats_: dict[str, Any]

    def __init__(
        self,
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

    # -- runtime state (not learned, not saved) --------------------------------------------
    def _rt(self) -> _Runtime:
        rt: _Runtime | None = self.__dict__.get("_runtime")
        if rt is None:
            with _RUNTIME_LOCK:
                rt = self.__dict__.get("_runtime")
                if rt is None:
                    rt = self.__dict__["_runtime"] = _Runtime()
        return rt

    def __getstate__(self) -> dict[str, Any]:
        # A copy or a pickle gets its own lock, cache and counters.
        state: dict[str, Any] = dict(super().__getstate__())
        state.pop("_runtime", None)
        return state

    @property
    def judge_stats(self) -> JudgeStats:
        """A snapshot of the judge counters since ``fit`` (or loading)."""
        rt = self._rt()
        with rt.lock:
            return JudgeStats(**asdict(rt.stats))

    def clear_cache(self) -> None:
        """Forget the cached ratings (the next request calls the judge again)."""
        rt = self._rt()
        with rt.lock:
            rt.cache.clear()

    # -- checks ----------------------------------------------------------------------------
    def check_params(self) -> None:
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
        timeout = self.timeout
        if isinstance(timeout, bool) or not (isinstance(timeout, int | float) and timeout > 0):
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if self.on_judge_error not in _ON_ERROR:
            raise ValueError(
                f"on_judge_error must be one of {_ON_ERROR}, got {self.on_judge_error!r}"
            )
        if self.judge_model is not None and (
            not isinstance(self.judge_model, str) or not self.judge_model.strip()
        ):
            raise ValueError("judge_model must be a LiteLLM model id such as 'openai/gpt-4o-mini'")
        system, template = self._prompts()
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
            raise ValueError(f"judge_kwargs may not set {reserved}: the scorer sets them")
        secret = sorted(str(k) for k in kwargs if is_secret_name(str(k)))
        headers = kwargs.get("extra_headers")
        if isinstance(headers, Mapping):
            secret += [f"extra_headers[{h}]" for h in headers if is_secret_name(str(h))]
        if secret:
            raise ValueError(
                f"judge_kwargs may not hold secrets ({', '.join(secret)}): they would be saved "
                "with the router; give the key's environment variable as judge_api_key_env, "
                "or set API_KEYS / the provider's key variable"
            )

    def _prompts(self) -> tuple[str, str]:
        system = DEFAULT_SYSTEM_PROMPT if self.system_prompt is None else str(self.system_prompt)
        template = (
            DEFAULT_PROMPT_TEMPLATE if self.prompt_template is None else str(self.prompt_template)
        )
        return system, template

    @staticmethod
    def _resolve_judge(judge_model: str | None) -> str:
        """``judge_model``, or the local default judge when none is named and no API key is
        configured (``ValueError`` when keys are configured: name the judge to pay for)."""
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
    def select(
        self,
        X: Any,
        Y: FloatArray,
        context: FitContext,
        selection: Selection,
        blend: float | None = None,
    ) -> Selected:
        """Rate the calibration slice (:meth:`fit`), then choose the blend with the prior by
        the judge's own cross-validation on that slice (``calibrate=True``; the router's
        folds would call the judge on every training query). A given ``blend`` is used as it
        is; ``calibrate=False`` means blend 1.

        Raises:
            JudgeError: The judge failed on every calibration query (or on one, with
                ``on_judge_error="raise"``).
        """
        self.check_params()
        if blend is not None and not 0.0 <= float(blend) <= 1.0:
            raise ValueError("blend must be in [0, 1] or None")
        fitted: JudgeScorer = clone(self)
        fitted.fit(X, Y, context)
        if blend is not None:
            chosen = float(blend)
        elif self.calibrate:
            chosen, fitted.cv_loss_ = fitted._choose_blend(Y, context.random_state)
            logger.info(
                "judge %s: blend %.1f (cross-validated on %d calibration queries)",
                fitted.judge_model_,
                chosen,
                fitted.calibration_index_.size,
            )
        else:
            chosen = 1.0
        report = [{"blend": float(w), "cv_mse": v} for w, v in fitted.cv_loss_.items()]
        return Selected(fitted, chosen, {}, None, report)

    def fit(self, X: Any, Y: FloatArray, context: FitContext | None = None) -> JudgeScorer:
        """Build the prompt from the pool and the training data, and rate a seeded slice of
        ``n_calibration`` training queries with the judge (one call each).

        Raises:
            ValueError: A bad hyperparameter, or no judge named while API keys are set.
            JudgeError: The judge failed on every calibration query (or on one, with
                ``on_judge_error="raise"``).
            MissingExtraError: The local judge without the ``local`` extra installed.
        """
        try:
            super().fit(X, Y, context)
        except BaseException:
            # A failed fit leaves no half-fitted scorer behind.
            for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
                delattr(self, attr)
            raise
        return self

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        queries = list(X)
        rt = self._rt()
        with rt.lock:
            rt.stats = JudgeStats()
            rt.executor = None
            rt.limit = None
        self.judge_model_ = self._resolve_judge(self.judge_model)
        self.system_prompt_, self.prompt_template_ = self._prompts()
        self.models_ = tuple(str(m) for m in context.models)
        self.n_outputs_ = len(self.models_)
        self.prior_ = np.asarray(Y.mean(axis=0), dtype=np.float64)
        mean_costs = None if context.costs is None else np.nanmean(context.costs, axis=0)
        self.models_block_ = model_lines(
            context.pool, self.models_, mean_costs, int(self.max_description_chars)
        )
        rng = np.random.default_rng(context.random_state)
        n = len(queries)
        n_cal = min(int(self.n_calibration), n)
        order = rng.permutation(n)
        self.calibration_index_ = np.sort(order[:n_cal])
        pool = order[n_cal:] if n > n_cal else order
        self.examples_ = self._pick_examples(queries, Y, pool, rng)
        self.cv_loss_ = {}

        rated = [queries[int(i)] for i in self.calibration_index_]
        self.calibration_ratings_ = self._rate(rated)
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
                len(rated),
                stats.ok,
                stats.partial,
                stats.unparseable,
                stats.errors,
            )
        self.fit_judge_stats_ = stats.to_dict()

    def _pick_examples(
        self,
        queries: Sequence[str],
        Y: FloatArray,
        candidates: npt.NDArray[np.intp],
        rng: np.random.Generator,
    ) -> list[tuple[str, str]]:
        if self.n_examples == 0 or candidates.size == 0:
            return []
        lengths = np.array([len(queries[i]) for i in candidates])
        short = candidates[lengths <= np.median(lengths)]
        picked = rng.choice(short, size=min(int(self.n_examples), short.size), replace=False)
        out = []
        for i in picked:
            reply = {
                model: int(round(float(s) * RATING_SCALE))
                for model, s in zip(self.models_, Y[int(i)], strict=True)
            }
            out.append((queries[int(i)], json.dumps(reply)))
        return out

    def _choose_blend(self, Y: FloatArray, random_state: int) -> tuple[float, dict[str, float]]:
        """The blend weight with the least cross-validated squared error on the calibration
        slice, and the loss of every weight (ties go to less judge)."""
        ratings = self.calibration_ratings_
        k = ratings.shape[0]
        folds = min(int(self.cv_folds), k)
        if folds < 2:
            return 0.0, {}
        assign = np.random.default_rng(random_state + 1).permutation(k) % folds
        n = Y.shape[0]
        total = Y.sum(axis=0)
        losses = np.zeros(_BLEND_GRID.size)
        for f in range(folds):
            held = np.flatnonzero(assign == f)
            # the prior as it would be without the held-out queries
            rows = self.calibration_index_[held]
            prior = (total - Y[rows].sum(axis=0)) / max(n - rows.size, 1)
            r, y = ratings[held], Y[rows]
            for g, w in enumerate(_BLEND_GRID):
                pred = np.where(np.isnan(r), prior, w * r + (1.0 - w) * prior)
                losses[g] += float(np.sum((pred - y) ** 2))
        losses /= max(ratings.size, 1)
        best = int(np.flatnonzero(losses <= losses.min() + 1e-12)[0])
        table = {f"{w:.1f}": float(v) for w, v in zip(_BLEND_GRID, losses, strict=True)}
        return float(_BLEND_GRID[best]), table

    def calibration_rows(self) -> npt.NDArray[np.intp]:
        """The calibration slice: the only training queries rated at ``fit``, so the knob is
        calibrated on them (rating every training query would call the judge for each)."""
        return self.calibration_index_

    # -- prediction ------------------------------------------------------------------------
    def predict(self, X: Any) -> FloatArray:
        """Rating / 10 per query and model; the prior where the judge gave no rating."""
        r = self._rate(list(X))
        return np.where(np.isnan(r), self.prior_[None, :], r)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("this JudgeScorer is not fitted yet; fit it (or its router)")

    def judge_messages(self, query: str) -> list[dict[str, str]]:
        """The chat messages the judge receives for ``query`` (system, examples, query)."""
        self._check_fitted()
        limit = self._query_limit()
        system = render_prompt(self.system_prompt_, self.models_block_, "")
        msgs = [{"role": "system", "content": system}]
        for example, reply in self.examples_:
            msgs.append({"role": "user", "content": self._user_message(example, limit)})
            msgs.append({"role": "assistant", "content": reply})
        msgs.append({"role": "user", "content": self._user_message(query, limit)})
        return msgs

    def _user_message(self, query: str, limit: int) -> str:
        text = truncate_query(query, limit)
        return render_prompt(self.prompt_template_, self.models_block_, text)

    def _query_limit(self) -> int:
        rt = self._rt()
        with rt.lock:
            if rt.limit is not None:
                return rt.limit
        # Computed outside the lock (it may import LiteLLM); every thread gets the same value.
        limit = query_limit(
            self.judge_model_,
            int(self.max_query_chars),
            int(self.max_tokens),
            render_prompt(self.system_prompt_, self.models_block_, ""),
            render_prompt(self.prompt_template_, self.models_block_, ""),
            self.examples_,
        )
        with rt.lock:
            rt.limit = limit
        return limit

    def _call_args(self) -> dict[str, Any]:
        kwargs = dict(self.judge_kwargs or {})
        call: dict[str, Any] = {}
        if "temperature" not in kwargs:
            call["temperature"] = 0.0  # the same query gets the same rating
        if "max_tokens" not in kwargs and "max_completion_tokens" not in kwargs:
            call["max_tokens"] = int(self.max_tokens)
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
        rt = self._rt()
        out = np.full((len(queries), len(self.models_)), np.nan)
        messages = [self.judge_messages(q) for q in queries]
        keys = [self._cache_key(msgs) for msgs in messages]
        rows: dict[str, tuple[float, ...]] = {}
        todo: dict[str, list[dict[str, str]]] = {}
        with rt.lock:
            for key, msgs in zip(keys, messages, strict=True):
                cached = rt.cache.get(key)
                if cached is not None:
                    rt.cache.move_to_end(key)
                    rt.stats.cache_hits += 1
                    rows[key] = cached
                elif key not in todo:
                    todo[key] = msgs
        if todo:  # the calls run outside the lock: concurrent routing is not serialised
            items = list(todo.items())
            workers = min(int(self.max_concurrency), len(items))
            if workers > 1:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    results = list(pool.map(lambda kv: self._ask(kv[1]), items))
            else:
                results = [self._ask(msgs) for _, msgs in items]
            with rt.lock:
                for (key, _), row in zip(items, results, strict=True):
                    if row is not None:  # failures are not cached: the next request retries
                        rows[key] = row
                        rt.cache[key] = row
                        rt.cache.move_to_end(key)
                        if len(rt.cache) > _CACHE_SIZE:
                            rt.cache.popitem(last=False)
        for i, key in enumerate(keys):
            row = rows.get(key)
            if row is not None:
                out[i] = np.array(row, dtype=np.float64)
        return out

    def _judge_executor(self) -> Any:
        rt = self._rt()
        with rt.lock:
            if rt.executor is None:
                from llmrouter_core.execution import Executor, PoolOrderRouter
                from llmrouter_core.pool import ModelSpec, Pool

                spec = ModelSpec(
                    name=_JUDGE,
                    litellm_model=self.judge_model_,
                    api_key_env=self.judge_api_key_env,
                    extra={"litellm_kwargs": dict(self.judge_kwargs or {})},
                )
                rt.executor = Executor(
                    PoolOrderRouter(Pool([spec])),
                    max_retries=int(self.max_retries),
                    timeout=float(self.timeout),
                )
            return rt.executor

    def _ask(self, messages: list[dict[str, str]]) -> tuple[float, ...] | None:
        """One judge call: ratings / RATING_SCALE with NaN for missing models, or ``None``
        when the call failed (and ``on_judge_error="prior"``)."""
        executor = self._judge_executor()
        rt = self._rt()
        try:
            result = executor.complete(messages, model=_JUDGE, **self._call_args())
        except Exception as exc:  # every failure is counted; "raise" re-raises it as one type
            with rt.lock:
                rt.stats.calls += 1
                rt.stats.errors += 1
            if self.on_judge_error == "raise":
                raise JudgeError(f"the judge {self.judge_model_!r} failed: {exc}") from exc
            logger.warning(
                "judge %s failed, using the prior: %s", self.judge_model_, str(exc)[:300]
            )
            return None
        parsed = parse_ratings(result.answer or "", self.models_)
        with rt.lock:
            rt.stats.calls += 1
            rt.stats.cost_usd += float(result.cost or 0.0)
            if parsed.status == "ok":
                rt.stats.ok += 1
            elif parsed.status == "partial":
                rt.stats.partial += 1
            else:
                rt.stats.unparseable += 1
        if parsed.status != "ok":
            logger.info(
                "judge %s: %s reply, missing ratings use the prior: %r",
                self.judge_model_,
                parsed.status,
                (result.answer or "")[:200],
            )
        return tuple(math.nan if r is None else r / RATING_SCALE for r in parsed.ratings)

    # -- persistence -----------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        meta = {
            "judge_model": self.judge_model_,
            "system_prompt": self.system_prompt_,
            "prompt_template": self.prompt_template_,
            "models": list(self.models_),
            "models_block": self.models_block_,
            "examples": [list(e) for e in self.examples_],
            "cv_loss": self.cv_loss_,
            "fit_judge_stats": self.fit_judge_stats_,
        }
        arrays = {
            "prior": self.prior_,
            "calibration_index": self.calibration_index_,
            "calibration_ratings": self.calibration_ratings_,
        }
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        self.check_params()
        self.judge_model_ = str(meta["judge_model"])
        self.system_prompt_ = str(meta["system_prompt"])
        self.prompt_template_ = str(meta["prompt_template"])
        self.models_ = tuple(str(m) for m in meta["models"])
        self.models_block_ = str(meta["models_block"])
        self.examples_ = [(str(q), str(r)) for q, r in meta["examples"]]
        self.cv_loss_ = {str(k): float(v) for k, v in dict(meta["cv_loss"]).items()}
        self.fit_judge_stats_ = dict(meta["fit_judge_stats"])
        self.prior_ = np.asarray(arrays["prior"], dtype=np.float64)
        self.calibration_index_ = np.asarray(arrays["calibration_index"], dtype=np.intp)
        self.calibration_ratings_ = np.asarray(arrays["calibration_ratings"], dtype=np.float64)
        if self.prior_.shape != (len(self.models_),):
            raise ValueError(
                f"the saved judge has {self.prior_.shape} priors for {len(self.models_)} models"
            )
        self.n_outputs_ = len(self.models_)
        self.__dict__.pop("_runtime", None)  # fresh cache and counters
