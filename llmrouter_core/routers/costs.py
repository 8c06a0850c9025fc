"""Per-query cost prediction.

A call's cost grows with the prompt's length (input tokens) and with the answer's length,
which differs by model. The cost model fits, per pool model, ``cost = a + b x input_tokens``
by least squares on the training data (``input_tokens`` estimated from the query text as in
:func:`~llmrouter_core.pool.estimate_tokens`), and clips predictions to the range of costs
seen in training, so an unusual query never gets a negative or absurd cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import NotFittedError
from llmrouter_core.pool import estimate_tokens
from llmrouter_core.routers.heads import clip_inplace

__all__ = ["CostModel"]


class CostModel:
    """``cost[model] = intercept + slope x estimated input tokens``, clipped to the train range.

    Args:
        per_query: Use the query length; if False, predict each model's mean cost.
    """

    def __init__(self, per_query: bool = True) -> None:
        self.per_query = per_query

    def fit(self, data: RoutingData) -> CostModel:
        costs = data.require_costs()
        m = data.n_models
        tokens = np.array([estimate_tokens(q) for q in data.queries], dtype=np.float64)
        self.intercept_ = np.zeros(m)
        self.slope_ = np.zeros(m)
        self.low_ = np.zeros(m)
        self.high_ = np.zeros(m)
        for j in range(m):
            ok = np.isfinite(costs[:, j])
            y, x = costs[ok, j], tokens[ok]
            self.low_[j], self.high_[j] = float(y.min()), float(y.max())
            if self.per_query and x.size >= 3 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                # A negative slope is noise (longer prompts never cost less): fall back to mean.
                if slope > 0:
                    self.slope_[j], self.intercept_[j] = slope, intercept
                    continue
            self.intercept_[j] = float(y.mean())
        return self

    def predict(self, queries: Sequence[str]) -> FloatArray:
        if not hasattr(self, "intercept_"):
            raise NotFittedError("CostModel is not fitted")
        tokens = np.array([estimate_tokens(q) for q in queries], dtype=np.float64)
        pred = self.intercept_[None, :] + tokens[:, None] * self.slope_[None, :]
        return clip_inplace(pred, self.low_, self.high_)

    def get_state(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept_,
            "slope": self.slope_,
            "low": self.low_,
            "high": self.high_,
        }

    @classmethod
    def from_state(cls, arrays: dict[str, Any], per_query: bool = True) -> CostModel:
        obj = cls(per_query=per_query)
        obj.intercept_ = np.asarray(arrays["intercept"], dtype=np.float64)
        obj.slope_ = np.asarray(arrays["slope"], dtype=np.float64)
        obj.low_ = np.asarray(arrays["low"], dtype=np.float64)
        obj.high_ = np.asarray(arrays["high"], dtype=np.float64)
        return obj
