"""Cost-quality metrics: single models, oracle, upper hull, AIQ, APGR, CPT.

All functions here are plain numpy over (mean cost, mean score) points or measured outcome
matrices, so they apply to any router's results and to results computed elsewhere.

Definitions:

* **Upper hull.** The non-decreasing concave envelope of a set of (cost, score) points: the
  upper convex hull, made non-decreasing by a running maximum (so it stays flat to the right of
  the best point). Every point on it is achievable by mixing two operating points at random, so
  it is the curve a router *can* deliver at each cost.
* **AIQ** (average improvement in quality, RouterBench's area metric). The area under the upper
  hull over ``[c_min, c_max]`` divided by ``c_max - c_min``, where ``c_min`` / ``c_max`` are the
  mean costs of the cheapest and the most expensive single model on the same data. Left of the
  curve's cheapest point the hull has no value: a router cannot deliver anything at a cost it
  never reaches, so that stretch counts as score 0. Right of the curve's most expensive point the
  hull stays flat (spending more never has to lower the score). Points beyond ``c_max`` still
  shape the hull; the area is only taken over the range.
* **PGR / APGR / CPT** (RouteLLM, two-model pools). The performance gap recovered at a share
  ``x`` of calls to the strong model is ``(score(x) - weak) / (strong - weak)``; APGR is its
  average over the swept share range (trapezoidal); ``CPT(p)`` is the smallest share of strong
  calls at which the piecewise-linear score curve reaches PGR ``p``.

Example:
    >>> pts = [(1.0, 0.5), (2.0, 0.6), (3.0, 0.9)]
    >>> upper_hull(pts).tolist()
    [[1.0, 0.5], [3.0, 0.9]]
    >>> round(aiq(pts, 1.0, 3.0), 3)
    0.7
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError

__all__ = [
    "CostScore",
    "aiq",
    "apgr",
    "cost_at_score",
    "cost_range",
    "cpt",
    "hull_value",
    "oracle_choice",
    "oracle_frontier",
    "oracle_gap_closed",
    "oracle_point",
    "pgr",
    "require_complete",
    "single_model_points",
    "upper_hull",
]

FloatArray = npt.NDArray[np.float64]

# Relative tolerance under which three hull points count as collinear.
_COLLINEAR_RTOL = 1e-9


class CostScore(NamedTuple):
    """One operating point: mean cost (USD per query) and mean score.

    Example:
        >>> p = CostScore(cost=0.005, score=0.88)
        >>> p.score, tuple(p)
        (0.88, (0.005, 0.88))
    """

    cost: float
    score: float


# -- outcome data ------------------------------------------------------------------------------
def require_complete(data: RoutingData) -> FloatArray:
    """Check that every score and cost of ``data`` is measured; return the cost matrix.

    Evaluation averages realized outcomes, so a missing entry cannot be skipped without
    biasing the result.

    Raises:
        DataError: ``data`` has no costs, or a score or cost is ``nan``/infinite.
    """
    if data.n_queries == 0:
        raise DataError(f"{data!r} has no queries to evaluate on")
    costs = data.require_costs()
    for label, arr in (("scores", data.scores), ("costs", costs)):
        bad = ~np.isfinite(arr)
        if bad.any():
            rows, cols = np.nonzero(bad)
            examples = ", ".join(
                f"{data.query_ids[r]!r}/{data.models[c]}"
                for r, c in zip(rows[:5], cols[:5], strict=True)
            )
            raise DataError(
                f"evaluation data must be complete: {int(bad.sum())} {label} are missing in "
                f"{data!r} (e.g. {examples}); drop those queries or models first"
            )
    return costs


def single_model_points(data: RoutingData) -> dict[str, CostScore]:
    """Mean cost and mean score of always calling each model, in pool order.

    Raises:
        DataError: ``data`` is incomplete (see :func:`require_complete`).
    """
    costs = require_complete(data)
    mc = costs.mean(axis=0)
    ms = data.scores.mean(axis=0)
    return {name: CostScore(float(mc[j]), float(ms[j])) for j, name in enumerate(data.models)}


def cost_range(data: RoutingData) -> tuple[float, float]:
    """``(c_min, c_max)``: mean cost of the cheapest and of the most expensive single model."""
    costs = [p.cost for p in single_model_points(data).values()]
    return min(costs), max(costs)


def oracle_choice(data: RoutingData) -> npt.NDArray[np.intp]:
    """Per query, the column of the best-scoring model; ties go to the cheapest, then the first.

    Raises:
        DataError: ``data`` is incomplete.
    """
    costs = require_complete(data)
    best = data.scores.max(axis=1, keepdims=True)
    tied = data.scores >= best
    return np.asarray(np.argmin(np.where(tied, costs, np.inf), axis=1), dtype=np.intp)


def oracle_point(data: RoutingData) -> CostScore:
    """Mean score and cost of the per-query oracle (best model, cheapest among ties)."""
    costs = require_complete(data)
    idx = oracle_choice(data)
    rows = np.arange(data.n_queries)
    return CostScore(float(costs[rows, idx].mean()), float(data.scores[rows, idx].mean()))


def oracle_frontier(data: RoutingData) -> FloatArray:
    """The best (mean cost, mean score) curve any router could reach on ``data``.

    With hindsight of every outcome, the best policy for a cost weight ``lambda`` takes, per
    query, the model maximising ``score - lambda * cost``. Sweeping ``lambda`` from ``inf`` to 0
    traces this frontier exactly: it is the Minkowski sum of the queries' own upper hulls, so
    its vertices are the per-query hull segments merged in order of decreasing slope. It starts
    at the per-query cheapest models and ends at :func:`oracle_point`.

    Returns:
        ``(k, 2)`` vertices (cost, score), costs increasing, scores non-decreasing.
    """
    costs = require_complete(data)
    n = data.n_queries
    start = np.zeros(2)
    seg_dc: list[FloatArray] = []
    seg_ds: list[FloatArray] = []
    for i in range(n):
        hull = upper_hull(np.column_stack((costs[i], data.scores[i])))
        start += hull[0]
        if len(hull) > 1:
            d = np.diff(hull, axis=0)
            seg_dc.append(d[:, 0])
            seg_ds.append(d[:, 1])
    if not seg_dc:
        return np.asarray((start / n)[None, :], dtype=np.float64)
    dc = np.concatenate(seg_dc)
    ds = np.concatenate(seg_ds)
    order = np.argsort(-(ds / dc), kind="stable")
    steps = np.column_stack((dc[order], ds[order]))
    vertices = np.vstack((start[None, :], start[None, :] + np.cumsum(steps, axis=0))) / n
    return upper_hull(vertices)


# -- hull and areas ----------------------------------------------------------------------------
def _as_xy(points: Any) -> FloatArray:
    """(k, 2) float array of (cost, score) from pairs, CostScore or objects with mean_cost."""
    if isinstance(points, np.ndarray):
        arr = np.asarray(points, dtype=np.float64)
    else:
        rows: list[tuple[float, float]] = []
        for p in points:
            if hasattr(p, "mean_cost") and hasattr(p, "mean_score"):
                rows.append((float(p.mean_cost), float(p.mean_score)))
            else:
                c, s = p
                rows.append((float(c), float(s)))
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"points must have shape (k, 2) of (cost, score); got {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError("no points given")
    if not np.isfinite(arr).all():
        raise DataError("points must be finite (cost, score) pairs")
    return arr


def upper_hull(points: Iterable[Any] | FloatArray) -> FloatArray:
    """The non-decreasing upper (concave) hull of (cost, score) points.

    Args:
        points: ``(k, 2)`` array or iterable of ``(cost, score)`` pairs (or objects with
            ``mean_cost`` / ``mean_score``).

    Returns:
        ``(h, 2)`` hull vertices sorted by cost: costs strictly increasing, scores
        non-decreasing, slopes non-increasing. The last vertex is the cheapest best point
        (the hull is flat to its right).
    """
    xy = _as_xy(points)
    # Sort by cost, highest score first among equal costs, and keep one point per cost.
    order = np.lexsort((-xy[:, 1], xy[:, 0]))
    xy = xy[order]
    keep = np.concatenate(([True], np.diff(xy[:, 0]) > 0))
    xy = xy[keep]
    # Andrew's monotone chain, upper part: pop while the turn is not clockwise. Turns within
    # float noise of collinear count as collinear, so sums of equal steps leave no spurious
    # vertices.
    hull: list[tuple[float, float]] = []
    for x, y in xy:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            a, b = (x2 - x1) * (y - y1), (y2 - y1) * (x - x1)
            if a - b >= -_COLLINEAR_RTOL * (abs(a) + abs(b)):
                hull.pop()
            else:
                break
        hull.append((float(x), float(y)))
    # Cut the hull at its (cheapest) best vertex; to the right it is flat.
    arr = np.asarray(hull, dtype=np.float64)
    top = int(np.argmax(arr[:, 1]))
    return np.asarray(arr[: top + 1], dtype=np.float64)


def hull_value(hull: FloatArray, cost: float | FloatArray) -> FloatArray:
    """Score of a hull (from :func:`upper_hull`) at ``cost``; 0 left of its first vertex."""
    c = np.asarray(cost, dtype=np.float64)
    values = np.interp(c, hull[:, 0], hull[:, 1])  # flat beyond both ends
    return np.asarray(np.where(c < hull[0, 0], 0.0, values), dtype=np.float64)


def aiq(points: Iterable[Any] | FloatArray, c_min: float, c_max: float) -> float:
    """Normalised area under the upper hull of ``points`` over ``[c_min, c_max]``.

    Left of the cheapest point the hull counts as 0; right of the best point it is flat.

    Args:
        points: (cost, score) pairs (see :func:`upper_hull`).
        c_min: Mean cost of the cheapest single model on the same data.
        c_max: Mean cost of the most expensive single model on the same data.

    Raises:
        DataError: ``c_max <= c_min`` or non-finite bounds.

    Example:
        >>> aiq([(2.0, 1.0)], 0.0, 4.0)  # nothing below cost 2, then 1.0
        0.5
    """
    if not (math.isfinite(c_min) and math.isfinite(c_max)) or c_max <= c_min:
        raise DataError(f"AIQ needs c_min < c_max (finite); got [{c_min}, {c_max}]")
    hull = upper_hull(points)
    # The hull is 0 left of its first vertex and continuous piecewise-linear from there on, so
    # the area is exact with trapezoids over the range ends and the vertices in between.
    start = max(c_min, float(hull[0, 0]))
    if start >= c_max:
        return 0.0
    inner = hull[(hull[:, 0] > start) & (hull[:, 0] < c_max), 0]
    xs = np.concatenate(([start], inner, [c_max]))
    ys = np.interp(xs, hull[:, 0], hull[:, 1])
    area = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))
    return area / (c_max - c_min)


def cost_at_score(points: Iterable[Any] | FloatArray, target_score: float) -> float | None:
    """The cheapest mean cost at which the upper hull of ``points`` reaches ``target_score``.

    Returns:
        The cost (interpolated along the hull), or ``None`` if the hull never reaches it.

    Example:
        >>> round(cost_at_score([(1.0, 0.5), (3.0, 0.9)], 0.7), 6)
        2.0
    """
    hull = upper_hull(points)
    if hull[-1, 1] < target_score:
        return None
    if hull[0, 1] >= target_score:
        return float(hull[0, 0])
    k = int(np.argmax(hull[:, 1] >= target_score))  # first vertex at or above the target
    (x1, y1), (x2, y2) = hull[k - 1], hull[k]
    return float(x1 + (target_score - y1) * (x2 - x1) / (y2 - y1))


def oracle_gap_closed(router_aiq: float, single_hull_aiq: float, oracle_aiq: float) -> float:
    """Share of the AIQ gap between the single models' hull and the oracle that a router closes.

    1.0 = as good as the oracle, 0.0 = no better than picking the best single model per budget,
    negative = worse than that.

    Raises:
        DataError: the oracle is not above the single models' hull (no gap to close).
    """
    gap = oracle_aiq - single_hull_aiq
    if not gap > 0:
        raise DataError(
            f"no oracle gap to close (oracle AIQ {oracle_aiq} <= single-model AIQ "
            f"{single_hull_aiq})"
        )
    return (router_aiq - single_hull_aiq) / gap


# -- two-model pools (RouteLLM) ----------------------------------------------------------------
def pgr(score: float | FloatArray, weak_score: float, strong_score: float) -> FloatArray:
    """Performance gap recovered: ``(score - weak) / (strong - weak)``.

    Raises:
        DataError: ``strong_score == weak_score`` (no gap).
    """
    gap = strong_score - weak_score
    if gap == 0 or not math.isfinite(gap):
        raise DataError(f"strong and weak scores must differ (both {weak_score})")
    return np.asarray((np.asarray(score, dtype=np.float64) - weak_score) / gap, dtype=np.float64)


def _share_curve(
    strong_shares: Sequence[float] | FloatArray, scores: Sequence[float] | FloatArray
) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(strong_shares, dtype=np.float64).ravel()
    y = np.asarray(scores, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise DataError("strong_shares and scores must be non-empty and of equal length")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("strong_shares and scores must be finite")
    if (x < 0).any() or (x > 1).any():
        raise DataError("strong_shares are fractions of calls, in [0, 1]")
    order = np.lexsort((y, x))
    return x[order], y[order]


def apgr(
    strong_shares: Sequence[float] | FloatArray,
    scores: Sequence[float] | FloatArray,
    *,
    weak_score: float,
    strong_score: float,
) -> float:
    """Average performance gap recovered over the swept share of strong-model calls.

    Trapezoidal area under PGR vs. share, divided by the share range (1 for a full 0..100%
    sweep), as in RouteLLM's evaluation. The points come from a threshold sweep
    (:func:`~llmrouter_core.evaluation.threshold_curve`) or from a cost-weight curve of a
    two-model pool (``[p.model_shares[strong] for p in curve]``, ``[p.mean_score ...]``).

    Args:
        strong_shares: Fraction of queries sent to the strong model at each operating point.
        scores: Mean realized score at each operating point.
        weak_score: Mean score of always calling the weak model.
        strong_score: Mean score of always calling the strong model.

    Example:
        >>> apgr([0.0, 1.0], [0.4, 0.8], weak_score=0.4, strong_score=0.8)  # a straight line
        0.5
    """
    x, y = _share_curve(strong_shares, scores)
    gain = pgr(y, weak_score, strong_score)
    width = float(x[-1] - x[0])
    if width <= 0:
        raise DataError("APGR needs operating points at two or more strong-call shares")
    return float(np.sum(np.diff(x) * (gain[1:] + gain[:-1]) / 2.0)) / width


def cpt(
    pgr_target: float,
    strong_shares: Sequence[float] | FloatArray,
    scores: Sequence[float] | FloatArray,
    *,
    weak_score: float,
    strong_score: float,
) -> float | None:
    """Call-performance threshold: the smallest strong-call share reaching ``pgr_target``.

    The operating points are joined linearly in order of share (RouteLLM interpolates the
    same way); e.g. ``cpt(0.5, ...)`` is CPT(50%).

    Returns:
        The share in [0, 1], or ``None`` if the curve never reaches the target.

    Example:
        >>> cpt(0.5, [0.0, 1.0], [0.4, 0.8], weak_score=0.4, strong_score=0.8)
        0.5
    """
    x, y = _share_curve(strong_shares, scores)
    gain = pgr(y, weak_score, strong_score)
    hit = np.flatnonzero(gain >= pgr_target)
    if hit.size == 0:
        return None
    k = int(hit[0])
    if k == 0:
        return float(x[0])
    x1, x2, g1, g2 = x[k - 1], x[k], gain[k - 1], gain[k]
    return float(x1 + (pgr_target - g1) * (x2 - x1) / (g2 - g1))
