"""Operating points of a router: cost-weight sweeps and two-model threshold sweeps.

A router's predictions (quality and cost per query and model) are turned into choices by the
route policy; each setting of the knob gives one operating point whose mean cost and mean score
are the *measured* outcomes of the chosen models, read from the evaluation data.

Example:
    >>> import numpy as np
    >>> from llmrouter_core.data.core import RoutingData
    >>> data = RoutingData(query_ids=["a", "b"], queries=["x", "y"], models=["small", "large"],
    ...                    scores=np.array([[1.0, 1.0], [0.0, 1.0]]),
    ...                    costs=np.array([[1.0, 10.0], [1.0, 10.0]]))
    >>> quality = np.array([[0.9, 0.9], [0.2, 0.9]])
    >>> [(p.mean_cost, p.mean_score) for p in sweep_curve(quality, data.costs, data, [0.0, 1.0])]
    [(5.5, 1.0), (1.0, 0.5)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError
from llmrouter_core.evaluation.metrics import FloatArray, require_complete
from llmrouter_core.policy.ranking import choose

__all__ = [
    "CurvePoint",
    "SimulatedOutcomes",
    "ThresholdPoint",
    "choices_for_weights",
    "curve_from_choices",
    "sweep_curve",
    "threshold_curve",
]


def json_float(value: float | None) -> float | str | None:
    """A float for JSON: infinities and nan become the strings ``"inf"``, ``"-inf"``, ``"nan"``."""
    if value is None:
        return None
    v = float(value)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


@dataclass(frozen=True)
class CurvePoint:
    """One operating point of a cost-weight sweep.

    Attributes:
        cost_weight: The knob ``lambda`` (utility = quality - lambda x cost; ``inf`` =
            cheapest).
        mean_cost: Mean measured cost (USD per query) of the chosen models.
        mean_score: Mean measured score of the chosen models.
        model_shares: Fraction of queries sent to each model (every pool model listed).

    Example:
        >>> p = CurvePoint(0.0, 0.002, 0.9, {"a": 0.25, "b": 0.75})
        >>> p.to_dict()["model_shares"]["b"]
        0.75
    """

    cost_weight: float
    mean_cost: float
    mean_score: float
    model_shares: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``inf`` cost weight as the string ``"inf"``)."""
        return {
            "cost_weight": json_float(self.cost_weight),
            "mean_cost": self.mean_cost,
            "mean_score": self.mean_score,
            "model_shares": dict(self.model_shares),
        }


@dataclass(frozen=True)
class ThresholdPoint:
    """One operating point of a two-model threshold sweep.

    The strong model answers the queries whose predicted gain (strong quality minus weak
    quality) is at least ``threshold``.

    Attributes:
        threshold: Predicted-gain threshold (``inf`` = never the strong model).
        strong_share: Fraction of queries sent to the strong model.
        mean_score: Mean measured score.
        mean_cost: Mean measured cost, or ``None`` if the data has no costs.

    Example:
        >>> ThresholdPoint(threshold=0.2, strong_share=0.4, mean_score=0.81).to_dict()["threshold"]
        0.2
    """

    threshold: float
    strong_share: float
    mean_score: float
    mean_cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "threshold": json_float(self.threshold),
            "strong_share": self.strong_share,
            "mean_score": self.mean_score,
            "mean_cost": self.mean_cost,
        }


@dataclass(frozen=True)
class SimulatedOutcomes:
    """What a multi-call router (a cascade) did on recorded data, per operating point and query.

    A cascade may call several models for one query; its answer is the last accepted one and
    its cost is the sum over every model it called. Routers that call more than one model
    return this from ``simulate(data, cost_weights)``, and :func:`curve_from_choices` reads it
    in place of the chosen models' own costs.

    Attributes:
        final: ``(points, n)`` column (in ``data.models``) of the model whose answer is kept.
        cost: ``(points, n)`` total USD of every call made for the query.
        calls: ``(points, n)`` number of calls made (``None`` if not tracked).

    Example:
        >>> import numpy as np
        >>> out = SimulatedOutcomes(final=np.array([[0, 1]]), cost=np.array([[1.0, 11.0]]))
        >>> out.cost.sum()
        np.float64(12.0)
    """

    final: npt.NDArray[np.intp]
    cost: FloatArray
    calls: npt.NDArray[np.intp] | None = None


def _check_predictions(pred: Any, data: RoutingData, what: str) -> FloatArray:
    arr = np.asarray(pred, dtype=np.float64)
    if arr.shape != (data.n_queries, data.n_models):
        raise DataError(
            f"{what} predictions have shape {arr.shape}; expected "
            f"{(data.n_queries, data.n_models)} (queries x models of the evaluation data)"
        )
    if not np.isfinite(arr).all():
        raise DataError(f"{what} predictions contain nan or infinite values")
    return arr


def _check_weights(cost_weights: Sequence[float] | FloatArray) -> list[float]:
    weights = [float(w) for w in np.asarray(cost_weights, dtype=np.float64).ravel()]
    if not weights:
        raise DataError("no cost weights given")
    for w in weights:
        if math.isnan(w) or w < 0:
            raise DataError(f"cost weights must be >= 0 or inf; got {w}")
    return weights


def choices_for_weights(
    quality_pred: Any,
    cost_pred: Any,
    data: RoutingData,
    cost_weights: Sequence[float] | FloatArray,
) -> npt.NDArray[np.intp]:
    """The chosen model column per cost weight and query, shape ``(len(cost_weights), n)``.

    Raises:
        DataError: predictions do not match ``data`` in shape or are not finite, or a cost
            weight is negative or nan.
    """
    q = _check_predictions(quality_pred, data, "quality")
    c = _check_predictions(cost_pred, data, "cost")
    weights = _check_weights(cost_weights)
    return np.stack([choose(q, c, w) for w in weights]).astype(np.intp)


def curve_from_choices(
    choices: npt.NDArray[np.intp],
    data: RoutingData,
    cost_weights: Sequence[float] | FloatArray,
    *,
    total_costs: FloatArray | None = None,
) -> list[CurvePoint]:
    """Operating points from per-weight choices (see :func:`choices_for_weights`).

    Args:
        choices: ``(points, n)`` column of the answering model per query.
        data: Evaluation data with complete scores and costs.
        cost_weights: The knob value of each point.
        total_costs: ``(points, n)`` USD actually spent per query, for routers that call more
            than one model (see :class:`SimulatedOutcomes`); default: the chosen model's
            recorded cost.

    Raises:
        DataError: ``data`` is incomplete (missing scores or costs), or a shape is wrong.
    """
    costs = require_complete(data)
    weights = _check_weights(cost_weights)
    ch = np.asarray(choices, dtype=np.intp)
    if ch.shape != (len(weights), data.n_queries):
        raise DataError(f"choices have shape {ch.shape}; expected {(len(weights), data.n_queries)}")
    spent = None
    if total_costs is not None:
        spent = np.asarray(total_costs, dtype=np.float64)
        if spent.shape != ch.shape or not np.isfinite(spent).all() or (spent < 0).any():
            raise DataError(
                f"total costs must be finite, non-negative and of shape {ch.shape}; got "
                f"shape {spent.shape}"
            )
    rows = np.arange(data.n_queries)
    points = []
    for k, (w, idx) in enumerate(zip(weights, ch, strict=True)):
        counts = np.bincount(idx, minlength=data.n_models) / data.n_queries
        paid = costs[rows, idx] if spent is None else spent[k]
        points.append(
            CurvePoint(
                cost_weight=w,
                mean_cost=float(paid.mean()),
                mean_score=float(data.scores[rows, idx].mean()),
                model_shares={m: float(counts[j]) for j, m in enumerate(data.models)},
            )
        )
    return points


def sweep_curve(
    quality_pred: Any,
    cost_pred: Any,
    data: RoutingData,
    cost_weights: Sequence[float] | FloatArray,
) -> list[CurvePoint]:
    """Route every query at each cost weight and average the measured outcomes.

    Args:
        quality_pred: Predicted quality, ``(n, m)`` in the column order of ``data.models``.
        cost_pred: Predicted cost (USD), ``(n, m)``.
        data: Evaluation data with complete scores and costs.
        cost_weights: The knob values, e.g. ``router.sweep(41)``.

    Returns:
        One :class:`CurvePoint` per cost weight, in the given order.

    Raises:
        DataError: mismatched or non-finite predictions, or incomplete data.
    """
    require_complete(data)
    choices = choices_for_weights(quality_pred, cost_pred, data, cost_weights)
    return curve_from_choices(choices, data, cost_weights)


def threshold_curve(
    quality_pred: Any,
    data: RoutingData,
    *,
    weak: str,
    strong: str,
) -> list[ThresholdPoint]:
    """Every operating point of a two-model threshold router (RouteLLM's sweep).

    The strong model takes the queries whose predicted gain ``quality[strong] -
    quality[weak]`` is at least the threshold; sweeping the threshold over every distinct
    predicted gain (plus ``inf``) gives the points from 0% to 100% strong calls. Queries with
    equal predicted gain always go together.

    Args:
        quality_pred: Predicted quality, ``(n, m)`` in the column order of ``data.models``.
        data: Evaluation data; the two models' scores must be complete.
        weak: Name of the weak (cheap) model.
        strong: Name of the strong (costly) model.

    Returns:
        Points by increasing strong share, the first at 0% and the last at 100%.
    """
    q = _check_predictions(quality_pred, data, "quality")
    w, s = data.model_index(weak), data.model_index(strong)
    if w == s:
        raise DataError("weak and strong must be two different models")
    pair = data.scores[:, [w, s]]
    if not np.isfinite(pair).all():
        raise DataError(
            f"evaluation data must be complete: {int((~np.isfinite(pair)).sum())} scores of "
            f"{weak} / {strong} are missing"
        )
    n = data.n_queries
    if n == 0:
        raise DataError(f"{data!r} has no queries to evaluate on")
    pair_costs = None
    if data.costs is not None:
        pair_costs = data.costs[:, [w, s]]
        if not np.isfinite(pair_costs).all():
            raise DataError(f"evaluation data must be complete: costs of {weak} / {strong}")
    gain = q[:, s] - q[:, w]
    order = np.argsort(-gain, kind="stable")
    g_sorted = gain[order]
    # After the k queries with the largest gains go strong: running sums of the differences.
    d_score = np.concatenate(([0.0], np.cumsum(pair[order, 1] - pair[order, 0])))
    base_score = float(pair[:, 0].sum())
    d_cost = None
    base_cost = 0.0
    if pair_costs is not None:
        d_cost = np.concatenate(([0.0], np.cumsum(pair_costs[order, 1] - pair_costs[order, 0])))
        base_cost = float(pair_costs[:, 0].sum())
    # A threshold equal to a gain sends the whole tie group strong: cut after each group.
    cuts = [0] + [k + 1 for k in range(n) if k == n - 1 or g_sorted[k + 1] < g_sorted[k]]
    points = []
    for k in cuts:
        threshold = math.inf if k == 0 else float(g_sorted[k - 1])
        points.append(
            ThresholdPoint(
                threshold=threshold,
                strong_share=k / n,
                mean_score=(base_score + float(d_score[k])) / n,
                mean_cost=None if d_cost is None else (base_cost + float(d_cost[k])) / n,
            )
        )
    return points
