"""Model selection on training data only: K-fold cross-validated AIQ.

Hyperparameters (and how far to trust a learned scorer over the per-model prior) are chosen by
the area under the cost-quality curve that out-of-fold predictions achieve on the training
queries' measured outcomes; test data is never looked at.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core.data.core import FloatArray
from llmrouter_core.evaluation.metrics import aiq
from llmrouter_core.policy.base import Anchor
from llmrouter_core.policy.ranking import choose

__all__ = [
    "BLEND_GRID",
    "Comparison",
    "RoutedOutcomes",
    "balanced_weights",
    "bootstrap_weights",
    "compare",
    "cv_aiq",
    "kfold",
    "route_points",
    "routed_outcomes",
    "select_blend",
    "simplex_grid",
]

#: Candidate weights of a learned scorer against the per-model prior (1 = scorer only,
#: 0 = "the best single model for the budget").
BLEND_GRID = (1.0, 0.75, 0.5, 0.25, 0.0)


def kfold(
    n: int, n_splits: int, random_state: int
) -> Iterator[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Shuffled K-fold (train, validation) index pairs."""
    n_splits = max(2, min(n_splits, n))
    perm = np.random.default_rng(random_state).permutation(n)
    folds = np.array_split(perm, n_splits)
    for i in range(n_splits):
        val = np.sort(folds[i])
        train = np.sort(np.concatenate([f for j, f in enumerate(folds) if j != i]))
        yield train, val


def _weight_grid(cost_pred: FloatArray, n_points: int) -> list[float]:
    pos = cost_pred[cost_pred > 0]
    if pos.size:
        return [np.inf, *np.geomspace(1e3 / pos.min(), 1e-3 / pos.max(), n_points), 0.0]
    return [np.inf, 0.0]


def route_points(
    quality: FloatArray,
    cost_pred: FloatArray,
    scores: FloatArray,
    costs: FloatArray,
    n_points: int = 33,
) -> list[tuple[float, float]]:
    """(mean cost, mean score) of routing by ``(quality, cost_pred)`` over a sweep of cost
    weights, judged on measured ``scores`` / ``costs``.

    The cost weights are log-spaced over the range where predicted choices change, plus 0 and
    ``inf``.
    """
    rows = np.arange(scores.shape[0])
    points = []
    for w in _weight_grid(cost_pred, n_points):
        idx = choose(quality, cost_pred, float(w))
        points.append((float(costs[rows, idx].mean()), float(scores[rows, idx].mean())))
    return points


def cv_aiq(
    quality: FloatArray,
    cost_pred: FloatArray,
    scores: FloatArray,
    costs: FloatArray,
    n_points: int = 33,
) -> float:
    """AIQ of :func:`route_points` over the single models' mean-cost range on the same queries."""
    points = route_points(quality, cost_pred, scores, costs, n_points)
    mean_costs = costs.mean(axis=0)
    c_min, c_max = float(mean_costs.min()), float(mean_costs.max())
    if c_max <= c_min:
        return max(p[1] for p in points)
    return float(aiq(points, c_min, c_max))


def select_blend(
    candidates: Sequence[dict[str, Any]],
    oofs: Sequence[FloatArray],
    prior_oof: FloatArray,
    blends: Sequence[float],
    cost_pred: FloatArray,
    scores: FloatArray,
    costs: FloatArray,
) -> tuple[dict[str, Any], float, float, list[dict[str, Any]]]:
    """The hyperparameters and scorer-vs-prior blend with the best :func:`cv_aiq`.

    Args:
        candidates: Hyperparameter settings, one per entry of ``oofs``.
        oofs: Out-of-fold quality predictions of each setting, ``(n, m)``.
        prior_oof: Out-of-fold per-model mean scores, ``(n, m)``.
        blends: Weights ``b`` of the scorer in ``b x oof + (1 - b) x prior``.
        cost_pred: Predicted costs used to route, ``(n, m)``.
        scores: Measured scores, ``(n, m)``.
        costs: Measured costs, ``(n, m)``.

    Returns:
        ``(params, blend, cv_aiq, report)``: the first best setting (ties keep the earlier
        candidate and blend) and one report row per (setting, blend).
    """
    report: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], float] | None = None
    for params, oof in zip(candidates, oofs, strict=True):
        for b in blends:
            score = cv_aiq(b * oof + (1.0 - b) * prior_oof, cost_pred, scores, costs)
            report.append({"params": params, "blend": b, "cv_aiq": score})
            if best is None or score > best[0] + 1e-12:
                best = (score, params, b)
    if best is None:
        raise ValueError("select_blend needs at least one candidate and one blend")
    return best[1], best[2], best[0], report


def simplex_grid(k: int, steps: int) -> list[tuple[float, ...]]:
    """All weight vectors of length ``k`` on the grid ``{0, 1/steps, ..., 1}`` summing to 1.

    Example:
        >>> simplex_grid(2, 2)
        [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    """
    out = []
    for combo in itertools.product(range(steps + 1), repeat=k):
        if sum(combo) == steps:
            out.append(tuple(c / steps for c in combo))
    return out


@dataclass(frozen=True)
class RoutedOutcomes:
    """What routing some queries over a sweep of cost weights achieved, per query: the
    measured cost and score of the chosen model at each point (``(n, points)``; the last point
    is the quality-seeking end, cost weight 0), and each model's measured costs."""

    cost: FloatArray
    score: FloatArray
    model_costs: FloatArray

    def aiq(self, weights: FloatArray | None = None) -> float:
        """AIQ of the mean outcomes (with query ``weights``, e.g. a bootstrap resample)."""
        w = np.full(self.cost.shape[0], 1.0 / self.cost.shape[0]) if weights is None else weights
        return _aiq_of(w @ self.cost, w @ self.score, w @ self.model_costs)


def _aiq_of(cost: FloatArray, score: FloatArray, model_costs: FloatArray) -> float:
    c_min, c_max = float(model_costs.min()), float(model_costs.max())
    points = list(zip(cost.tolist(), score.tolist(), strict=True))
    if c_max <= c_min:
        return float(max(p[1] for p in points))
    return float(aiq(points, c_min, c_max))


def routed_outcomes(
    quality: FloatArray,
    cost_pred: FloatArray,
    scores: FloatArray,
    costs: FloatArray,
    n_points: int = 33,
    anchor: Anchor | None = None,
) -> RoutedOutcomes:
    """Per-query outcomes of routing by ``(quality, cost_pred)`` (with an ``anchor``, if
    any) over the sweep of :func:`route_points` (whose means they are)."""
    rows = np.arange(scores.shape[0])
    picks = []
    for w in _weight_grid(cost_pred, n_points):
        ranked = quality if anchor is None else anchor.ranked(quality, cost_pred, float(w))
        picks.append(choose(ranked, cost_pred, float(w)))
    cost = np.stack([costs[rows, idx] for idx in picks], axis=1)
    score = np.stack([scores[rows, idx] for idx in picks], axis=1)
    return RoutedOutcomes(cost, score, costs)


@dataclass(frozen=True)
class Comparison:
    """How routing ``a`` compares with routing ``b`` on the same queries: the mean and the
    bootstrap standard deviation of the difference in AIQ and in the quality-seeking end's
    score (resampling queries, paired)."""

    aiq_diff: float
    aiq_sd: float
    top_diff: float
    top_sd: float

    def lower_bound(self, z: float) -> float:
        """``aiq_diff - z x aiq_sd``: an improvement that holds up to ``z`` standard errors."""
        return self.aiq_diff - z * self.aiq_sd

    def top_holds(self, z: float, tolerance: float) -> bool:
        """Whether ``a``'s quality-seeking end is, ``z`` standard errors down, within
        ``tolerance`` of ``b``'s."""
        return self.top_diff - z * self.top_sd >= -tolerance


def bootstrap_weights(n: int, n_boot: int, random_state: int, groups: Any = None) -> FloatArray:
    """``(n_boot, n)`` query weights of bootstrap resamples (each row sums to 1).

    With ``groups`` (e.g. each query's task), every group weighs the same in every resample
    and queries are resampled within their group: a router is then judged as if each group
    were equally frequent, whatever the training mix (a new user's mix may differ).
    """
    rng = np.random.default_rng(random_state)
    if groups is None:
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
        return np.asarray(counts / n, dtype=np.float64)
    labels = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1]
    out = np.zeros((n_boot, n))
    k = int(labels.max()) + 1
    for g in range(k):
        rows = np.flatnonzero(labels == g)
        size = rows.size
        counts = rng.multinomial(size, np.full(size, 1.0 / size), size=n_boot)
        out[:, rows] = counts / (size * k)
    return out


def balanced_weights(n: int, groups: Any = None) -> FloatArray:
    """Query weights summing to 1: uniform, or each group weighing the same."""
    if groups is None:
        return np.full(n, 1.0 / n)
    labels = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1]
    sizes = np.bincount(labels)
    return np.asarray(1.0 / (sizes[labels] * sizes.size), dtype=np.float64)


def compare(
    a: RoutedOutcomes, b: RoutedOutcomes, boot: FloatArray, weights: FloatArray | None = None
) -> Comparison:
    """``a`` against ``b`` (see :class:`Comparison`) on the queries weighted by ``weights``
    (default: uniform), resampled with the rows of ``boot``."""
    w_mean = np.full(a.cost.shape[0], 1.0 / a.cost.shape[0]) if weights is None else weights
    aiq_diff = a.aiq(w_mean) - b.aiq(w_mean)
    top_diff = float(w_mean @ (a.score[:, -1] - b.score[:, -1]))
    diffs = [a.aiq(w) - b.aiq(w) for w in boot]
    tops = boot @ (a.score[:, -1] - b.score[:, -1])
    return Comparison(aiq_diff, float(np.std(diffs)), top_diff, float(np.std(tops)))
