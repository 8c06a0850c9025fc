"""Ranking by utility: the arithmetic every policy shares.

Every router predicts, for each query and pool model, a quality (0..1) and a cost (USD). The
*cost weight* ``lambda`` trades them off: utility = quality - lambda x cost (``lambda`` is the
inverse of the willingness to pay, in quality points per USD); ``lambda = 0`` seeks quality,
``lambda = inf`` takes the cheapest model.

Ties break toward the cheaper model, then toward the earlier pool position, so decisions are
deterministic.

Example:
    >>> import numpy as np
    >>> q = np.array([[0.6, 0.9]]); c = np.array([[0.001, 0.01]])
    >>> choose(q, c, 0.0).tolist(), choose(q, c, 100.0).tolist()
    ([1], [0])
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from llmrouter_core.errors import DataError

__all__ = [
    "TIE_TOLERANCE",
    "anchored",
    "choose",
    "rank",
    "rank_one",
    "rank_rows",
    "utilities",
]

# Utilities closer than this count as tied (then the cheaper model wins); guards against
# float noise deciding between models that the scorer cannot tell apart.
TIE_TOLERANCE = 1e-9


def utilities(
    quality: npt.NDArray[np.float64], cost: npt.NDArray[np.float64], cost_weight: float
) -> npt.NDArray[np.float64]:
    """``quality - cost_weight * cost``; with ``inf`` weight, ``-cost`` (cheapest first)."""
    if math.isinf(cost_weight):
        return -np.asarray(cost, dtype=np.float64)
    return np.asarray(quality - cost_weight * cost, dtype=np.float64)


def _allowed(mask: npt.NDArray[np.bool_] | None, shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    if mask is None:
        return np.ones(shape, dtype=bool)
    allowed = np.broadcast_to(np.asarray(mask, dtype=bool), shape)
    if not allowed.any(axis=-1).all():
        raise DataError("no eligible model for at least one query (all models excluded)")
    return allowed


def choose(
    quality: npt.NDArray[np.float64],
    cost: npt.NDArray[np.float64],
    cost_weight: float,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.intp]:
    """Index of the chosen model per query (rows of ``quality``/``cost``, shape ``(n, m)``).

    Args:
        quality: Predicted quality, ``(n, m)``.
        cost: Predicted cost, ``(n, m)``.
        cost_weight: ``lambda`` >= 0, or ``inf`` for the cheapest model.
        allowed: Optional boolean mask ``(m,)`` or ``(n, m)`` of eligible models.
    """
    q = np.atleast_2d(np.asarray(quality, dtype=np.float64))
    c = np.atleast_2d(np.asarray(cost, dtype=np.float64))
    u = utilities(q, c, cost_weight)
    ok = _allowed(allowed, u.shape)
    u = np.where(ok, u, -np.inf)
    best = u.max(axis=1, keepdims=True)
    tied = ok & (u >= best - TIE_TOLERANCE)
    # Among the tied, take the cheapest; argmin returns the first (earliest pool position).
    return np.asarray(np.argmin(np.where(tied, c, np.inf), axis=1), dtype=np.intp)


def anchored(
    quality: npt.NDArray[np.float64],
    cost: npt.NDArray[np.float64],
    cost_weight: float,
    prior: npt.NDArray[np.float64],
    margin: float,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float64]:
    """``quality`` (``(n, m)``) with ``margin`` added to each query's *anchor*: the model that
    ``prior`` (mean training quality per model, ``(m,)`` or ``(n, m)``) chooses at this cost
    weight, i.e. the best single model for the budget. Ranking the result leaves the anchor
    only for a predicted utility gain above ``margin``; a margin of 1 routes as the best
    single model at every cost weight.

    Example:
        >>> q = np.array([[0.60, 0.62]]); c = np.array([[0.001, 0.002]])
        >>> anchored(q, c, 0.0, np.array([0.7, 0.5]), 0.05).round(2).tolist()
        [[0.65, 0.62]]
    """
    q = np.atleast_2d(np.asarray(quality, dtype=np.float64))
    if margin <= 0:
        return q
    anchor = choose(np.broadcast_to(prior, q.shape), cost, cost_weight, allowed)
    out = q.copy()
    out[np.arange(q.shape[0]), anchor] += margin
    return out


def rank(
    quality: npt.NDArray[np.float64],
    cost: npt.NDArray[np.float64],
    cost_weight: float,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.intp]:
    """Eligible model indices of one query, best utility first (ties: cheaper first).

    ``rank(q, c, w)[0] == choose(q[None], c[None], w)[0]`` for every input.
    """
    q = np.asarray(quality, dtype=np.float64).ravel()
    c = np.asarray(cost, dtype=np.float64).ravel()
    u = utilities(q, c, cost_weight)
    ok = _allowed(allowed, u.shape)
    # Quantise utilities to the tie tolerance so near-ties order by cost, like `choose`.
    key = np.round(u / TIE_TOLERANCE) if not math.isinf(cost_weight) else u
    order = np.lexsort((np.arange(len(u)), c, -key))
    order = order[ok[order]]
    # Make the head agree exactly with `choose` (quantisation may split a near-tie).
    head = int(choose(q[None], c[None], cost_weight, ok[None])[0])
    return np.asarray(np.concatenate(([head], order[order != head])), dtype=np.intp)


def rank_one(
    quality: list[float],
    cost: list[float],
    cost_weight: float,
    allowed: list[bool] | None = None,
) -> list[int]:
    """:func:`rank` of one query given as Python lists (equal results, no numpy).

    Routing one query ranks a handful of models; in plain Python that is a few microseconds
    and touches little code, where a dozen numpy calls on tiny arrays cost far more
    (especially in a process whose caches other work, such as the LLM call, has just
    evicted).

    Example:
        >>> rank_one([0.9, 0.5], [2.0, 1.0], 0.0), rank_one([0.5, 0.5], [2.0, 1.0], 0.0)
        ([0, 1], [1, 0])
    """
    m = len(quality)
    ok = [True] * m if allowed is None else [bool(a) for a in allowed]
    if not any(ok):
        raise DataError("no eligible model for at least one query (all models excluded)")
    if math.isinf(cost_weight):
        u = [-float(c) for c in cost]
        key = u
    else:
        u = [float(q) - cost_weight * float(c) for q, c in zip(quality, cost, strict=True)]
        # A huge cost weight can make utilities infinite: those compare as they are.
        scaled = [v / TIE_TOLERANCE for v in u]
        key = [round(k) if math.isfinite(k) else k for k in scaled]
    order = sorted((j for j in range(m) if ok[j]), key=lambda j: (-key[j], cost[j], j))
    # The head as `choose` picks it: the cheapest (then earliest) within tolerance of the best.
    best = max(u[j] for j in range(m) if ok[j])
    head = min(
        (j for j in range(m) if ok[j] and u[j] >= best - TIE_TOLERANCE),
        key=lambda j: (cost[j], j),
    )
    if order[0] != head:
        order = [head, *(j for j in order if j != head)]
    return order


def rank_rows(
    quality: npt.NDArray[np.float64],
    cost: npt.NDArray[np.float64],
    cost_weight: float,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> list[npt.NDArray[np.intp]]:
    """:func:`rank` of every row of ``quality``/``cost`` (shape ``(n, m)``), vectorised.

    ``rank_rows(q, c, w, a)[i]`` equals ``rank(q[i], c[i], w, a[i])`` for every row.

    Example:
        >>> q = np.array([[0.9, 0.5], [0.5, 0.5]])
        >>> c = np.array([[2.0, 1.0], [2.0, 1.0]])
        >>> [r.tolist() for r in rank_rows(q, c, 0.0)]
        [[0, 1], [1, 0]]
    """
    q = np.atleast_2d(np.asarray(quality, dtype=np.float64))
    c = np.atleast_2d(np.asarray(cost, dtype=np.float64))
    u = utilities(q, c, cost_weight)
    ok = _allowed(allowed, u.shape)
    key = np.round(u / TIE_TOLERANCE) if not math.isinf(cost_weight) else u
    index = np.broadcast_to(np.arange(u.shape[1]), u.shape)
    order = np.lexsort((index, c, -key), axis=-1)
    head = choose(q, c, cost_weight, ok)
    order_ok = np.take_along_axis(ok, order, axis=1)
    rows: list[npt.NDArray[np.intp]] = []
    for i in range(u.shape[0]):
        row = order[i][order_ok[i]]
        h = head[i]
        if row[0] != h:
            row = np.concatenate(([h], row[row != h]))
        rows.append(np.asarray(row, dtype=np.intp))
    return rows
