"""What every policy shares: the request context, the knob's calibration, the protocol.

A *policy* turns a router's predictions for a batch of queries (quality and cost per pool
model, ``(n, m)`` arrays) and the request context into one :class:`~llmrouter_core.Decision`
per query. The same policies serve every router, whatever its scorer.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from llmrouter_core.decision import Decision, Plan
from llmrouter_core.errors import DataError, UnknownModelError
from llmrouter_core.policy.ranking import anchored, choose, rank_one, rank_rows

__all__ = [
    "Anchor",
    "Calibration",
    "Policy",
    "PolicyFitContext",
    "RouteContext",
    "TrainedPolicy",
    "decisions",
    "eligible",
]

FloatArray = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Anchor:
    """The router's anchor: routing leaves the anchor model only for a predicted utility gain
    above ``margin``. The anchor is the best training model (by the per-model ``prior``, the
    mean training quality), or with ``per_budget`` the best single model *for the budget*
    (the prior's choice at the cost weight): a margin of 1 then routes as ``single``.

    Example:
        >>> a = Anchor(np.array([0.7, 0.5]), 0.05)
        >>> a.ranked(np.array([[0.60, 0.62]]), np.array([[0.001, 0.002]]), 0.0).round(2).tolist()
        [[0.65, 0.62]]
    """

    prior: FloatArray
    margin: float
    per_budget: bool = False

    def ranked(
        self, quality: FloatArray, cost: FloatArray, cost_weight: float, allowed: Any = None
    ) -> FloatArray:
        """``quality`` with the margin added to each query's anchor at ``cost_weight``."""
        at = cost_weight if self.per_budget else 0.0
        return anchored(quality, cost, at, self.prior, self.margin, allowed)


def _ranked(
    anchor: Anchor | None, quality: FloatArray, cost: FloatArray, w: float, allowed: Any = None
) -> FloatArray:
    return quality if anchor is None else anchor.ranked(quality, cost, w, allowed)


@dataclass(frozen=True)
class Calibration:
    """Mean predicted cost and quality of the chosen models on the training queries, over a
    grid of cost weights from ``inf`` (cheapest) down to 0: what resolves a budget to a cost
    weight and spreads sweep points along the router's own cost-quality curve.

    Example:
        >>> cal = Calibration.from_predictions(np.array([[0.5, 0.9]]), np.array([[1.0, 3.0]]))
        >>> cal.weight_for_budget(0.5), cal.weight_for_budget(5.0)
        (inf, 0.0)
    """

    cost_weight: tuple[float, ...]
    mean_cost: tuple[float, ...]
    mean_quality: tuple[float, ...]

    @classmethod
    def from_predictions(
        cls, quality: FloatArray, cost: FloatArray, anchor: Anchor | None = None
    ) -> Calibration:
        """The curve of routing ``quality`` / ``cost`` (``(n, m)``) over the weight grid (with
        the router's ``anchor``, if any)."""
        grid = cost_weight_grid(cost)
        rows = np.arange(quality.shape[0])
        mean_cost, mean_quality = [], []
        for w in grid:
            idx = choose(_ranked(anchor, quality, cost, w), cost, w)
            mean_cost.append(float(cost[rows, idx].mean()))
            mean_quality.append(float(quality[rows, idx].mean()))
        return cls(tuple(grid), tuple(mean_cost), tuple(mean_quality))

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "cost_weight": list(self.cost_weight),
            "mean_cost": list(self.mean_cost),
            "mean_quality": list(self.mean_quality),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Calibration:
        return cls(
            tuple(float(v) for v in raw["cost_weight"]),
            tuple(float(v) for v in raw["mean_cost"]),
            tuple(float(v) for v in raw["mean_quality"]),
        )

    def weight_for_budget(self, budget: float) -> float:
        """The smallest cost weight whose mean predicted cost is within ``budget`` USD per
        query (``inf`` if even the cheapest choice exceeds it)."""
        if not budget >= 0:  # also NaN
            raise ValueError(f"budget must be a number of USD per query >= 0, got {budget!r}")
        pairs = zip(reversed(self.cost_weight), reversed(self.mean_cost), strict=True)
        for weight, c in pairs:  # from lambda = 0 upward
            if c <= budget + 1e-15:
                return float(weight)
        return math.inf

    def point_for_quality(self, quality: float) -> int:
        """Index of the cheapest point of the curve whose mean predicted quality reaches
        ``quality`` (the last point, cost weight 0, if none does).

        Example:
            >>> cal = Calibration.from_predictions(np.array([[0.5, 0.9]]), np.array([[1.0, 3.0]]))
            >>> cal.cost_weight[cal.point_for_quality(0.7)]
            0.0
        """
        for k, q in enumerate(self.mean_quality):  # from lambda = inf downward
            if q >= quality - 1e-12:
                return k
        return len(self.mean_quality) - 1

    def sweep(self, n_points: int) -> list[float]:
        """``n_points`` cost weights: point 0 the cheapest, point ``n - 1`` the most
        quality-seeking; the others spread evenly along the curve (non-increasing)."""
        if n_points < 1:
            raise ValueError("n_points must be >= 1")
        if n_points == 1:
            return [0.0]
        w = np.asarray(self.cost_weight, dtype=np.float64)  # decreasing: inf ... 0
        cost = np.asarray(self.mean_cost)
        qual = np.asarray(self.mean_quality)
        c_span = max(cost.max() - cost.min(), 1e-300)
        q_span = max(qual.max() - qual.min(), 1e-300)
        steps = np.hypot(np.diff(cost) / c_span, np.diff(qual) / q_span)
        arc = np.concatenate(([0.0], np.cumsum(steps)))
        if arc[-1] <= 0:
            return [math.inf] + [0.0] * (n_points - 1)
        targets = np.linspace(0.0, arc[-1], n_points)
        out = []
        for k, t in enumerate(targets):
            if k == 0:
                out.append(math.inf)
            elif k == n_points - 1:
                out.append(0.0)
            else:
                i = int(np.searchsorted(arc, t, side="left"))
                out.append(float(w[min(i, len(w) - 1)]))
        # Non-increasing weights give non-decreasing cost (see ranking.choose).
        for k in range(1, n_points):
            out[k] = min(out[k], out[k - 1])
        return out


def cost_weight_grid(cost: FloatArray) -> list[float]:
    """Cost weights from ``inf`` (cheapest) down to 0, dense where choices change."""
    finite = cost[np.isfinite(cost)]
    pos = finite[finite > 0]
    if pos.size == 0:
        return [math.inf, 0.0]
    lo = 1e-4 / float(pos.max())
    hi = 1e4 / float(pos.min())
    grid = np.geomspace(hi, lo, 240).tolist()
    return [math.inf, *grid, 0.0]


@dataclass(frozen=True)
class RouteContext:
    """What a policy knows besides the predictions.

    Attributes:
        models: The pool models, in the order of the prediction columns.
        router: The deciding router's name (for the decisions).
        calibration: The router's knob calibration (resolves budgets), if fitted.
        default_cost_weight: The cost weight when a policy names none.
        mask: ``(n, m)`` eligible models per query (``allowed`` and ``max_cost``), or
            ``None`` when every model is eligible.
        anchor: The router's :class:`Anchor` (leave the best single model for the budget
            only for a predicted gain above a margin), or ``None``. Decisions report the
            predicted quality without it.
    """

    models: tuple[str, ...]
    router: str
    calibration: Calibration | None = None
    default_cost_weight: float = 0.0
    mask: Mask | None = None
    anchor: Anchor | None = None

    def row_mask(self, i: int) -> Mask | None:
        return None if self.mask is None else self.mask[i]


@runtime_checkable
class Policy(Protocol):
    """Predictions + request context -> one decision per query."""

    def decide(
        self, quality: FloatArray, cost: FloatArray, context: RouteContext
    ) -> list[Decision]: ...


@dataclass(frozen=True)
class PolicyFitContext:
    """What a trained policy's ``fit`` reads besides the training data: the router's own
    predictions on the training queries, and its cross-validation settings.

    Attributes:
        models: The pool models, in the order of the data's and the predictions' columns.
        quality: ``(r, m)`` predicted quality of the training rows ``rows``.
        cost: ``(r, m)`` predicted cost of the same rows.
        rows: The training rows predicted (``None``: every row, in order).
        cv: Folds of the router's cross-validation.
        random_state: The router's seed.
    """

    models: tuple[str, ...]
    quality: FloatArray
    cost: FloatArray
    rows: npt.NDArray[np.intp] | None = None
    cv: int = 3
    random_state: int = 0


@runtime_checkable
class TrainedPolicy(Policy, Protocol):
    """A policy with learned state (FrugalGPT's, AutoMix's): :class:`~llmrouter_core.Router`
    fits a copy of it after its scorer (``router.policy_``) and routes with it by default.
    It may also define ``calibration_`` (a :class:`Calibration` of its own, read by the
    router's sweep and budgets), ``simulate(data, cost_weights, quality, cost)`` (replay on
    recorded data, read by :func:`~llmrouter_core.evaluation.evaluate`) and
    ``acceptor(name)`` (the scorer of a cascade stage's answers)."""

    def fit(self, data: Any, context: PolicyFitContext) -> Any: ...


def check_cost_weight(value: float) -> float:
    """``value`` as a cost weight (a number >= 0, ``inf`` allowed), else ``ValueError``."""
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"cost_weight must be a number >= 0, got {value!r}") from None
    if math.isnan(weight) or weight < 0:
        raise ValueError(f"cost_weight must be >= 0 (math.inf = cheapest model), got {value!r}")
    return weight


def eligible(
    models: Sequence[str],
    cost: FloatArray,
    allowed: Collection[str] | None = None,
    max_cost: float | None = None,
) -> Mask | None:
    """The ``(n, m)`` mask of models a query may go to: those in ``allowed`` whose predicted
    cost is within ``max_cost``. Where nothing fits the cap, the cheapest allowed model stays
    eligible (the executor enforces hard caps; the router still returns a ranked decision).

    Raises:
        UnknownModelError: ``allowed`` names a model outside the pool.
        DataError: ``allowed`` is empty.
    """
    mask: Mask | None = None
    if allowed is not None:
        allowed_set = set(allowed)
        unknown = allowed_set.difference(models)
        if unknown:
            raise UnknownModelError(
                f"unknown models {sorted(unknown)}; the router knows {list(models)}"
            )
        if not allowed_set:
            raise DataError("no eligible model: 'allowed' is empty")
        row = np.array([m in allowed_set for m in models])
        mask = np.broadcast_to(row, cost.shape).copy()
    if max_cost is not None:
        if math.isnan(max_cost) or max_cost < 0:
            raise ValueError(f"max_cost must be a number >= 0, got {max_cost!r}")
        base = np.ones(cost.shape, dtype=bool) if mask is None else mask
        within = base & (cost <= max_cost)
        empty = ~within.any(axis=1)
        if empty.any():
            cheapest = np.argmin(np.where(base, cost, np.inf), axis=1)
            within[empty, cheapest[empty]] = True
        mask = within
    return mask


def decisions(
    quality: FloatArray,
    cost: FloatArray,
    weights: float | Sequence[float],
    context: RouteContext,
    *,
    reason: str = "",
    plans: Sequence[Plan | None] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Decision]:
    """One decision per row, ranked by utility at ``weights`` (one cost weight for the batch,
    or one per row). ``reason`` is appended to the default explanation."""
    models = context.models
    n = quality.shape[0]
    q_rows, c_rows = quality.tolist(), cost.tolist()
    per_row = not isinstance(weights, int | float)
    if per_row:
        row_weights = [float(w) for w in weights]  # type: ignore[union-attr]
        orders: list[Any] = []
        for i, w in enumerate(row_weights):
            row = slice(i, i + 1)
            ranked = _ranked(context.anchor, quality[row], cost[row], w, context.row_mask(i))
            orders.append(rank_one(ranked[0].tolist(), c_rows[i], w, _row(context, i)))
    else:
        w = float(weights)  # type: ignore[arg-type]
        row_weights = [w] * n
        ranked = _ranked(context.anchor, quality, cost, w, context.mask)
        if n == 1:  # one query: plain Python, same result as rank_rows
            orders = [rank_one(ranked[0].tolist(), c_rows[0], w, _row(context, 0))]
        else:
            orders = rank_rows(ranked, cost, w, context.mask)
    out = []
    for i in range(n):
        order = orders[i]
        chosen = models[int(order[0])]
        q = dict(zip(models, q_rows[i], strict=True))
        c = dict(zip(models, c_rows[i], strict=True))
        why = (
            f"{chosen}: predicted quality {q[chosen]:.3f} at ${c[chosen]:.6f} "
            f"(cost weight {row_weights[i]:g})"
        )
        out.append(
            Decision(
                model=chosen,
                ranked=tuple(models[int(j)] for j in order),
                quality=q,
                cost=c,
                cost_weight=row_weights[i],
                router=context.router,
                reason=f"{why}; {reason}" if reason else why,
                plan=None if plans is None else plans[i],
                extra=dict(extra or {}),
            )
        )
    return out


def _row(context: RouteContext, i: int) -> list[bool] | None:
    mask = context.row_mask(i)
    return None if mask is None else mask.tolist()
