"""Baseline routers: random, cheapest, best single model, smallest and largest model, and the
oracle (evaluation only)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import DataError
from llmrouter_core.pool import Pool
from llmrouter_core.routers.base import Arrays, Router
from llmrouter_core.routers.costs import CostModel

__all__ = [
    "BestSingleRouter",
    "CheapestRouter",
    "LargestRouter",
    "OracleRouter",
    "RandomRouter",
    "SmallestRouter",
    "pick_by_size",
]

logger = logging.getLogger(__name__)


class _ConstantQualityRouter(Router):
    """Predicts one quality per model, the same for every query."""

    quality_: FloatArray

    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:
        return np.repeat(self.quality_[None, :], len(queries), axis=0)

    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        return {}, {"quality": self.quality_}

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        self.quality_ = np.asarray(arrays["quality"], dtype=np.float64)


class BestSingleRouter(_ConstantQualityRouter):
    """Best single model for the budget: each model's mean training score and mean cost.

    Its sweep visits exactly the single models on the upper hull of the training data, so
    it is the floor every learned router must beat.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("single").family
        'baseline'
    """

    name = "single"
    family = "baseline"

    def __init__(self) -> None:
        pass

    def _fit(self, data: RoutingData) -> None:
        self.quality_ = data.mean_scores()
        # Constant costs: one point per model, exactly the single models' own points.
        self.cost_model_ = CostModel(per_query=False).fit(data)


class CheapestRouter(_ConstantQualityRouter):
    """Always the cheapest model (by predicted cost for the query)."""

    name = "cheapest"
    family = "baseline"

    def __init__(self) -> None:
        pass

    def _fit(self, data: RoutingData) -> None:
        self.quality_ = np.zeros(data.n_models)


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

    Args:
        pool: The models, in the router's column order.
        mean_costs: Each model's mean cost per query in the training data (USD).
        largest: Pick the largest (most expensive) model instead of the smallest.

    Returns:
        ``(index, basis)`` with ``basis`` ``"size"`` or ``"price"``.

    Example:
        >>> from llmrouter_core.pool import ModelSpec
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


class _SizeRouter(_ConstantQualityRouter):
    """Always one fixed model, picked by size; the knob can only trade it for the cheapest."""

    _largest: ClassVar[bool] = False
    target_: str
    basis_: str

    def __init__(self) -> None:
        pass

    def _fit(self, data: RoutingData) -> None:
        # Constant costs, as for "single": every operating point is one model for all queries.
        self.cost_model_ = CostModel(per_query=False).fit(data)
        j, basis = pick_by_size(self.pool_, data.mean_costs().tolist(), largest=self._largest)
        self.target_, self.basis_ = data.models[j], basis
        # A preference, not a quality estimate (like "cheapest"'s zeros): 1 for the target, 0
        # for the rest. At cost weight 0 the target wins; a cost weight above
        # 1 / (its cost - the cheapest cost) takes the cheapest model instead.
        self.quality_ = np.zeros(data.n_models)
        self.quality_[j] = 1.0

    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        return {"target": self.target_, "basis": self.basis_}, {"quality": self.quality_}

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        super()._set_state(meta, arrays)
        self.target_, self.basis_ = str(meta["target"]), str(meta["basis"])


class SmallestRouter(_SizeRouter):
    """Always the pool's smallest model (fewest parameters; by price when sizes are unknown).

    Sizes come from the pool (``params_b``, or LLMRouter's ``size`` field) or, failing that,
    from the model names (``"mistral-7b-chat"`` -> 7B); when any model's size is unknown, the
    cheapest model by input + output price (or, without prices, by mean training cost) is
    taken instead, and ``basis_`` says ``"price"``. See :func:`pick_by_size`.

    Like ``single``, a constant router: its sweep visits the cheapest model (point 0) and the
    smallest one.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("smallest").family
        'baseline'
    """

    name = "smallest"
    family = "baseline"
    _largest = False


class LargestRouter(_SizeRouter):
    """Always the pool's largest model (most parameters; by price when sizes are unknown).

    The mirror of ``smallest``: sizes from the pool or the model names; when any size is
    unknown, the most expensive model by input + output price (or by mean training cost).
    Its sweep visits the cheapest model (point 0) and the largest one.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("largest").name
        'largest'
    """

    name = "largest"
    family = "baseline"
    _largest = True


class RandomRouter(Router):
    """A uniformly random quality guess per (query, model), seeded and stable per query.

    With the knob at 0 it picks uniformly at random; with a cost weight it trades the random
    guess against cost, so its sweep is the "no information" reference curve.
    """

    name = "random"
    family = "baseline"

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def _fit(self, data: RoutingData) -> None:
        self.n_models_ = data.n_models

    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:
        out = np.empty((len(queries), len(self.models_)))
        for i, q in enumerate(queries):
            digest = hashlib.sha256(f"{self.random_state}\x00{q}".encode()).digest()
            seed = int.from_bytes(digest[:8], "little")
            out[i] = np.random.default_rng(seed).random(len(self.models_))
        return out

    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        return {}, {}

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        self.n_models_ = len(self.models_)


class OracleRouter(Router):
    """The per-query best model (cheapest among ties), for evaluation only.

    It is fitted on the evaluation data itself and predicts the measured scores of queries it
    has seen; routing an unseen query is an error.
    """

    name = "oracle"
    family = "baseline"
    evaluation_only = True

    def __init__(self) -> None:
        pass

    def _fit(self, data: RoutingData) -> None:
        self.queries_ = list(data.queries)
        self.scores_ = data.scores.copy()
        self._index = {q: i for i, q in enumerate(self.queries_)}
        # The oracle knows each query's measured cost too.
        self.costs_ = data.require_costs().copy()

    def _lookup(self, queries: Sequence[str]) -> list[int]:
        if not hasattr(self, "_index"):
            self._index = {q: i for i, q in enumerate(self.queries_)}
        try:
            return [self._index[q] for q in queries]
        except KeyError:
            raise DataError("the oracle can only route queries it was fitted on") from None

    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:
        return self.scores_[self._lookup(queries)]

    def predict_cost(self, queries: Sequence[str]) -> FloatArray:
        self._check_fitted()
        return self.costs_[self._lookup(queries)]

    def predict(self, queries: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        self._check_fitted()
        rows = self._lookup(queries)
        return self.scores_[rows], self.costs_[rows]

    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        return {"queries": self.queries_}, {"scores": self.scores_, "costs": self.costs_}

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        self.queries_ = list(meta["queries"])
        self.scores_ = np.asarray(arrays["scores"], dtype=np.float64)
        self.costs_ = np.asarray(arrays["costs"], dtype=np.float64)
        self._index = {q: i for i, q in enumerate(self.queries_)}
