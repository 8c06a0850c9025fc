"""The one cost-quality knob in its three forms: a cost weight, a budget, a threshold.

* :class:`UtilityPolicy`: utility = quality - ``cost_weight`` x cost (USD); ``math.inf``
  takes the cheapest model, ``0`` the best predicted quality; ties go to the cheaper model.
* :class:`BudgetPolicy`: a target mean cost per query, resolved to a cost weight through the
  router's calibration curve (learned on its training queries).
* :class:`ThresholdPolicy`: for two-model pools, RouteLLM's form: take the costlier model when
  its predicted quality gain exceeds the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmrouter_core.decision import Decision
from llmrouter_core.policy.base import (
    FloatArray,
    RouteContext,
    check_cost_weight,
    decisions,
)

__all__ = ["BudgetPolicy", "CostWeightPolicy", "ThresholdPolicy", "UtilityPolicy"]


@dataclass(frozen=True)
class UtilityPolicy:
    """utility = quality - cost_weight x cost (``None``: the router's default weight).

    Example:
        >>> from llmrouter_core.policy.base import RouteContext
        >>> ctx = RouteContext(models=("small", "large"), router="demo")
        >>> q, c = np.array([[0.6, 0.9]]), np.array([[0.001, 0.01]])
        >>> [d.model for d in UtilityPolicy(0.0).decide(q, c, ctx)]
        ['large']
        >>> [d.model for d in UtilityPolicy(100.0).decide(q, c, ctx)]
        ['small']
    """

    cost_weight: float | None = None

    def __post_init__(self) -> None:
        if self.cost_weight is not None:
            check_cost_weight(self.cost_weight)

    def weight(self, context: RouteContext) -> float:
        return context.default_cost_weight if self.cost_weight is None else float(self.cost_weight)

    def decide(
        self, quality: FloatArray, cost: FloatArray, context: RouteContext
    ) -> list[Decision]:
        return decisions(quality, cost, self.weight(context), context)


#: The name the knob had before policies were objects of their own.
CostWeightPolicy = UtilityPolicy


@dataclass(frozen=True)
class BudgetPolicy:
    """Target mean cost per query in USD, resolved to a cost weight by the router's
    calibration (the smallest weight whose mean predicted training cost fits)."""

    max_mean_cost: float

    def __post_init__(self) -> None:
        if not self.max_mean_cost >= 0:
            raise ValueError(f"budget must be a number of USD >= 0, got {self.max_mean_cost!r}")

    def weight(self, context: RouteContext) -> float:
        if context.calibration is None:
            raise ValueError("a budget needs a fitted router's calibration")
        return context.calibration.weight_for_budget(self.max_mean_cost)

    def decide(
        self, quality: FloatArray, cost: FloatArray, context: RouteContext
    ) -> list[Decision]:
        weight = self.weight(context)
        return decisions(
            quality, cost, weight, context, reason=f"budget ${self.max_mean_cost:g} per query"
        )


@dataclass(frozen=True)
class ThresholdPolicy:
    """Two-model pools: the costlier model when its predicted quality gain exceeds
    ``threshold`` (a gain equal to it is a tie, which goes to the cheaper model)."""

    threshold: float

    def __post_init__(self) -> None:
        if math.isnan(self.threshold):
            raise ValueError("threshold must be a number")

    def row_weight(self, quality: FloatArray, cost: FloatArray) -> float:
        """The cost weight equivalent to the threshold on one query's predictions."""
        strong = int(np.argmax(cost))
        dc = float(cost[strong] - cost[1 - strong])
        if dc <= 0:  # same predicted cost: quality decides
            return 0.0
        return float(self.threshold) / dc  # negative for a negative threshold: strong preferred

    def decide(
        self, quality: FloatArray, cost: FloatArray, context: RouteContext
    ) -> list[Decision]:
        if len(context.models) != 2:
            raise ValueError(
                f"the threshold form needs a two-model pool; this router has {len(context.models)}"
            )
        weights = [self.row_weight(quality[i], cost[i]) for i in range(quality.shape[0])]
        return decisions(quality, cost, weights, context, reason=f"threshold {self.threshold:g}")
