"""Model selection on training data only: K-fold cross-validated AIQ.

Hyperparameters (and how far to trust a learned scorer over the per-model prior) are chosen by
the area under the cost-quality curve that out-of-fold predictions achieve on the training
queries' measured outcomes; test data is never looked at.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core.data.core import FloatArray
from llmrouter_core.evaluation.metrics import aiq
from llmrouter_core.policy.ranking import choose

__all__ = ["BLEND_GRID", "cv_aiq", "kfold", "route_points", "select_blend", "simplex_grid"]

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
    pos = cost_pred[cost_pred > 0]
    if pos.size:
        grid = [np.inf, *np.geomspace(1e3 / pos.min(), 1e-3 / pos.max(), n_points), 0.0]
    else:
        grid = [np.inf, 0.0]
    rows = np.arange(scores.shape[0])
    points = []
    for w in grid:
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
