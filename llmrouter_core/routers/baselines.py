"""Baseline routers: random, cheapest, best single model, and the oracle (evaluation only)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import DataError
from llmrouter_core.routers.base import Arrays, Router
from llmrouter_core.routers.costs import CostModel

__all__ = ["BestSingleRouter", "CheapestRouter", "OracleRouter", "RandomRouter"]


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
