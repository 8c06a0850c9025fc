"""Scorers without a learned query dependence: the baselines.

* ``prior`` (the ``single`` router): each model's mean training score. With each model's mean
  cost, its sweep visits exactly the single models on the upper hull of the training data:
  the floor every learned router must beat.
* ``cheapest``: every model equal, so the cheapest wins at any cost weight.
* ``random``: a uniform random quality per (query, model), seeded and stable per query.
* ``smallest`` / ``largest``: 1 for the pool's smallest (largest) model, 0 for the rest
  (:func:`pick_by_size`).
* ``oracle``: the measured scores of the query itself (evaluation only).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.errors import DataError
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.scoring.base import FitContext, Scorer, Tags

__all__ = [
    "CheapestScorer",
    "LargestScorer",
    "OracleScorer",
    "PriorScorer",
    "RandomScorer",
    "SmallestScorer",
    "pick_by_size",
]

logger = logging.getLogger(__name__)


class _ConstantScorer(Scorer):
    """One quality per model, the same for every query."""

    quality_: FloatArray

    def predict(self, X: Any) -> FloatArray:
        return np.repeat(self.quality_[None, :], _n_rows(X), axis=0)

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"n_outputs": self.n_outputs_}, {"quality": self.quality_}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        self.quality_ = np.asarray(arrays["quality"], dtype=np.float64)
        self.n_outputs_ = int(meta["n_outputs"])


class PriorScorer(_ConstantScorer):
    """Each model's mean training score (the best single model for the budget).

    Learns online: :meth:`partial_fit` adds an observed score to the model's running mean.
    """

    tags = Tags(online=True, recipes=("pointwise", "online"))

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        self.quality_ = Y.mean(axis=0)
        self.counts_ = np.full(Y.shape[1], float(Y.shape[0]))

    def partial_fit(self, x: Any, model: int, score: float) -> None:
        counts = getattr(self, "counts_", None)
        if counts is None:  # loaded from a file saved before counts were kept
            self.counts_ = counts = np.ones_like(self.quality_)
        counts[model] += 1.0
        quality = self.quality_.copy()  # routing reads the old array until the swap
        quality[model] += (score - quality[model]) / counts[model]
        self.quality_ = quality

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        meta, arrays = super().get_state()
        return meta, {**arrays, "counts": self.counts_}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        super().set_state(meta, arrays)
        if "counts" in arrays:
            self.counts_ = np.asarray(arrays["counts"], dtype=np.float64)


class CheapestScorer(_ConstantScorer):
    """Every model equal: ties go to the cheaper model, so the cheapest always wins."""

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        self.quality_ = np.zeros(Y.shape[1])


def pick_by_size(
    pool: Pool, mean_costs: Sequence[float], *, largest: bool
) -> tuple[int, Literal["size", "price"]]:
    """Index of the pool's smallest (or largest) model, and what decided it.

    Sizes are each spec's :attr:`~llmrouter_core.pool.ModelSpec.size_b` (``params_b``, filled
    from LLMRouter's ``size`` field, else read from the model's name). They are used only
    when known for *every* model: comparing a 70B open model with a hosted model of unknown
    size would be a guess. Otherwise the price decides: input + output price per 1M tokens
    when every model has both, else the mean cost per query in the training data. Ties go to
    the cheaper model (by price, then by mean training cost), then to the first in the pool.

    Example:
        >>> pool = Pool([ModelSpec("llama-2-70b-chat"), ModelSpec("mistral-7b-chat")])
        >>> pick_by_size(pool, [0.0004, 0.0001], largest=False)
        (1, 'size')
    """
    mean = [float(c) for c in mean_costs]
    if len(mean) != len(pool):
        raise DataError(f"{len(mean)} mean costs for a pool of {len(pool)} models")
    if all(s.has_prices for s in pool):
        price = [float((s.input_price or 0.0) + (s.output_price or 0.0)) for s in pool]
    else:
        price = mean
    sizes = [s.size_b for s in pool]
    basis: Literal["size", "price"]
    if all(size is not None for size in sizes):
        primary = [float(size or 0.0) for size in sizes]
        basis = "size"
    else:
        unknown = [s.name for s, size in zip(pool, sizes, strict=True) if size is None]
        logger.info("model sizes unknown for %s: picking by price", ", ".join(unknown))
        primary, basis = price, "price"
    sign = -1.0 if largest else 1.0
    best = min(range(len(pool)), key=lambda j: (sign * primary[j], price[j], mean[j], j))
    return best, basis


class _SizeScorer(_ConstantScorer):
    """1 for one model picked by size, 0 for the rest: a preference, not a quality estimate.
    At cost weight 0 the target wins; a cost weight above 1 / (its cost - the cheapest cost)
    takes the cheapest model instead."""

    tags = Tags(symmetric_ties=False)

    largest: bool = False

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        pool = context.pool or Pool(ModelSpec(m) for m in context.models)
        mean_costs = (
            context.costs.mean(axis=0) if context.costs is not None else np.zeros(Y.shape[1])
        )
        j, basis = pick_by_size(pool, mean_costs.tolist(), largest=self.largest)
        self.target_: str = context.models[j]
        self.basis_: str = basis
        self.quality_ = np.zeros(Y.shape[1])
        self.quality_[j] = 1.0

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        meta, arrays = super().get_state()
        return {**meta, "target": self.target_, "basis": self.basis_}, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        super().set_state(meta, arrays)
        self.target_, self.basis_ = str(meta["target"]), str(meta["basis"])


class SmallestScorer(_SizeScorer):
    """The pool's smallest model (fewest parameters; by price when sizes are unknown)."""

    largest = False


class LargestScorer(_SizeScorer):
    """The pool's largest model (most parameters; by price when sizes are unknown)."""

    largest = True


class RandomScorer(Scorer):
    """A uniformly random quality per (query, model), seeded and stable per query: the "no
    information" reference curve."""

    input = "text"
    tags = Tags(symmetric_ties=False)

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        self.seed_ = int(context.random_state)

    def predict(self, X: Any) -> FloatArray:
        out = np.empty((len(X), self.n_outputs_))
        for i, q in enumerate(X):
            digest = hashlib.sha256(f"{self.seed_}\x00{q}".encode()).digest()
            seed = int.from_bytes(digest[:8], "little")
            out[i] = np.random.default_rng(seed).random(self.n_outputs_)
        return out

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"n_outputs": self.n_outputs_, "seed": self.seed_}, {}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        self.n_outputs_, self.seed_ = int(meta["n_outputs"]), int(meta["seed"])


class OracleScorer(Scorer):
    """The measured scores of the queries it was fitted on (evaluation only: routing an
    unseen query is an error)."""

    input = "text"
    tags = Tags(evaluation_only=True)

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        self.queries_ = list(X)
        self.scores_ = np.asarray(Y, dtype=np.float64).copy()

    def predict(self, X: Any) -> FloatArray:
        index = {q: i for i, q in enumerate(self.queries_)}
        try:
            return self.scores_[[index[q] for q in X]]
        except KeyError:
            raise DataError("the oracle can only route queries it was fitted on") from None

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"n_outputs": self.n_outputs_, "queries": self.queries_}, {"scores": self.scores_}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        self.queries_ = list(meta["queries"])
        self.scores_ = np.asarray(arrays["scores"], dtype=np.float64)
        self.n_outputs_ = int(meta["n_outputs"])


def _n_rows(X: Any) -> int:
    return len(X) if isinstance(X, list | tuple) else int(X.shape[0])
