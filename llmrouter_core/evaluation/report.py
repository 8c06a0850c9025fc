"""Evaluate a trained router on measured outcomes, and compare routers.

:func:`evaluate` predicts once, sweeps the router's cost-quality knob, and reports the curve,
its AIQ, where it stands between the single models and the oracle, a per-task breakdown and,
for two-model pools, RouteLLM's APGR and CPT. :func:`leaderboard` ranks several evaluations.

Example:
    >>> import numpy as np
    >>> from llmrouter_core.data.core import RoutingData
    >>> class BestOnAverage:  # predicts every model's mean training score
    ...     models_ = ["small", "large"]
    ...     def predict(self, queries):
    ...         n = len(queries)
    ...         return np.tile([0.5, 0.9], (n, 1)), np.tile([1e-4, 1e-3], (n, 1))
    ...     def sweep(self, n_points):
    ...         return [0.0, float("inf")]
    >>> data = RoutingData(query_ids=["a", "b"], queries=["x", "y"], models=["small", "large"],
    ...                    scores=np.array([[1.0, 1.0], [0.0, 1.0]]),
    ...                    costs=np.array([[1e-4, 1e-3], [1e-4, 1e-3]]))
    >>> ev = evaluate(BestOnAverage(), data, name="mean")
    >>> round(ev.aiq, 3), ev.best_single
    (0.75, 'large')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import DataError, NotFittedError
from llmrouter_core.evaluation.curve import (
    CurvePoint,
    SimulatedOutcomes,
    ThresholdPoint,
    choices_for_weights,
    curve_from_choices,
    json_float,
    threshold_curve,
)
from llmrouter_core.evaluation.metrics import (
    CostScore,
    aiq,
    apgr,
    cost_at_score,
    cost_range,
    cpt,
    oracle_frontier,
    oracle_gap_closed,
    oracle_point,
    require_complete,
    single_model_points,
    upper_hull,
)

__all__ = [
    "RouterEvaluation",
    "SimulatingPolicy",
    "SupportsEvaluation",
    "SupportsSimulation",
    "TaskBreakdown",
    "TwoModelMetrics",
    "evaluate",
    "leaderboard",
    "two_model_metrics",
]

logger = logging.getLogger(__name__)


class SupportsEvaluation(Protocol):
    """What :func:`evaluate` needs from a router (any fitted llmrouter-core router has it)."""

    @property
    def models_(self) -> Sequence[str]: ...

    def predict(self, queries: Sequence[str]) -> tuple[Any, Any]: ...

    def sweep(self, n_points: int) -> Sequence[float]: ...


class SupportsSimulation(Protocol):
    """A router that may call several models per query (a cascade) and can replay what it
    would do on recorded data: its answers come from ``data.responses`` and its cost per
    query is the sum over every model it calls. :func:`evaluate` uses ``simulate`` when a
    router has it."""

    def simulate(self, data: RoutingData, cost_weights: Sequence[float]) -> SimulatedOutcomes: ...


class SimulatingPolicy(Protocol):
    """A router's trained policy (``router.policy_``, e.g. FrugalGPT's cascade) that replays
    on recorded data, given the router's predictions on the data's queries. :func:`evaluate`
    uses it when the router has one."""

    def simulate(
        self,
        data: RoutingData,
        cost_weights: Sequence[float],
        quality: FloatArray,
        cost: FloatArray,
    ) -> SimulatedOutcomes: ...


@dataclass(frozen=True)
class TaskBreakdown:
    """The router's curve restricted to the queries of one task.

    Attributes:
        task: Task name.
        n_queries: Queries of this task.
        points: The operating points (same cost weights as the whole curve), on this task only.
        aiq: AIQ over this task's single-model cost range (``None`` if all models cost the same
            on it).
        single_hull_aiq: AIQ of the single models' own hull on this task.
        oracle_aiq: AIQ of the oracle frontier on this task.
        oracle_gap_closed: Share of the single-to-oracle gap closed (``None`` if no gap).
        best_single: Best single model on this task.
        best_single_score: Its mean score.

    Example:
        >>> evaluate(router, test).per_task["mbpp"].aiq  # doctest: +SKIP
        0.71
    """

    task: str
    n_queries: int
    points: list[CurvePoint]
    aiq: float | None
    single_hull_aiq: float | None
    oracle_aiq: float | None
    oracle_gap_closed: float | None
    best_single: str
    best_single_score: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "task": self.task,
            "n_queries": self.n_queries,
            "aiq": self.aiq,
            "single_hull_aiq": self.single_hull_aiq,
            "oracle_aiq": self.oracle_aiq,
            "oracle_gap_closed": self.oracle_gap_closed,
            "best_single": self.best_single,
            "best_single_score": self.best_single_score,
            "points": [p.to_dict() for p in self.points],
        }


@dataclass(frozen=True)
class TwoModelMetrics:
    """RouteLLM's metrics for a strong/weak pair, from a threshold sweep.

    Attributes:
        weak: The weak model of the pair.
        strong: The strong model of the pair.
        weak_score: The weak model's mean score when always called.
        strong_score: The strong model's mean score when always called.
        apgr: Average performance gap recovered over 0-100% strong calls.
        cpt50: Smallest share of strong calls reaching 50% PGR (``None`` if never).
        cpt80: Smallest share of strong calls reaching 80% PGR (``None`` if never).
        points: The threshold sweep.

    Example:
        >>> m = two_model_metrics(quality, data, weak="mixtral", strong="gpt-4")  # doctest: +SKIP
        >>> m.apgr, m.cpt50  # doctest: +SKIP
        (0.58, 0.41)
    """

    weak: str
    strong: str
    weak_score: float
    strong_score: float
    apgr: float
    cpt50: float | None
    cpt80: float | None
    points: list[ThresholdPoint]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "weak": self.weak,
            "strong": self.strong,
            "weak_score": self.weak_score,
            "strong_score": self.strong_score,
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "points": [p.to_dict() for p in self.points],
        }


@dataclass(frozen=True)
class RouterEvaluation:
    """A router's cost-quality results on one evaluation set.

    Attributes:
        router: Router name.
        dataset: Dataset name.
        n_queries: Evaluation queries.
        models: Pool models (column order).
        curve: One operating point per swept cost weight.
        hull: Vertices of the curve's upper hull.
        aiq: Area under the hull over ``[c_min, c_max]``, normalised (see
            :func:`~llmrouter_core.evaluation.metrics.aiq`).
        c_min: Mean cost of the cheapest single model.
        c_max: Mean cost of the most expensive single model.
        single_models: Mean cost and score of each model called alone.
        single_hull_aiq: AIQ of the single models' own hull (the floor to beat).
        oracle: Mean cost and score of the per-query oracle.
        oracle_aiq: AIQ of the oracle frontier (best achievable at every cost).
        oracle_gap_closed: ``(aiq - single_hull_aiq) / (oracle_aiq - single_hull_aiq)``.
        best_single: The best-scoring single model (cheaper wins ties).
        best_score: Highest mean score among the curve's points.
        cost_at_best_single_score: Cheapest mean cost at which the hull reaches the best single
            model's score (``None`` if it never does).
        cost_share_of_best_single: That cost divided by the best single model's cost.
        per_task: Breakdown per task (empty if the data has no tasks).
        two_model: APGR / CPT for two-model pools, else ``None``.
        train_seconds: Training time, if given.
        route_latency_ms: Routing latency per query, if given.
        predict_seconds: Measured time of the one batch ``predict`` call.
        meta: Free-form extra fields.

    Example:
        >>> ev = evaluate(router, test)  # doctest: +SKIP
        >>> ev.aiq, ev.oracle_gap_closed, ev.cost_share_of_best_single  # doctest: +SKIP
        (0.853, 0.2, 0.79)
    """

    router: str
    dataset: str
    n_queries: int
    models: list[str]
    curve: list[CurvePoint]
    hull: list[CostScore]
    aiq: float
    c_min: float
    c_max: float
    single_models: dict[str, CostScore]
    single_hull_aiq: float
    oracle: CostScore
    oracle_aiq: float
    oracle_gap_closed: float | None
    best_single: str
    best_score: float
    cost_at_best_single_score: float | None
    cost_share_of_best_single: float | None
    per_task: dict[str, TaskBreakdown] = field(default_factory=dict)
    two_model: TwoModelMetrics | None = None
    train_seconds: float | None = None
    route_latency_ms: float | None = None
    predict_seconds: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``json.dumps(..., allow_nan=False)`` accepts it)."""
        return {
            "router": self.router,
            "dataset": self.dataset,
            "n_queries": self.n_queries,
            "models": list(self.models),
            "aiq": self.aiq,
            "c_min": self.c_min,
            "c_max": self.c_max,
            "single_hull_aiq": self.single_hull_aiq,
            "oracle_aiq": self.oracle_aiq,
            "oracle_gap_closed": self.oracle_gap_closed,
            "best_single": self.best_single,
            "best_score": self.best_score,
            "cost_at_best_single_score": self.cost_at_best_single_score,
            "cost_share_of_best_single": self.cost_share_of_best_single,
            "oracle": {"cost": self.oracle.cost, "score": self.oracle.score},
            "single_models": {
                m: {"cost": p.cost, "score": p.score} for m, p in self.single_models.items()
            },
            "curve": [p.to_dict() for p in self.curve],
            "hull": [{"cost": p.cost, "score": p.score} for p in self.hull],
            "per_task": {t: b.to_dict() for t, b in self.per_task.items()},
            "two_model": None if self.two_model is None else self.two_model.to_dict(),
            "train_seconds": json_float(self.train_seconds),
            "route_latency_ms": json_float(self.route_latency_ms),
            "predict_seconds": json_float(self.predict_seconds),
            "meta": _json_safe(self.meta),
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (float, np.floating)):
        return json_float(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def _best_single(points: Mapping[str, CostScore]) -> str:
    return min(points, key=lambda m: (-points[m].score, points[m].cost))


def _gap_closed(
    router_aiq: float | None, single: float | None, oracle: float | None
) -> float | None:
    if router_aiq is None or single is None or oracle is None or not oracle > single:
        return None
    return oracle_gap_closed(router_aiq, single, oracle)


def two_model_metrics(
    quality_pred: Any,
    data: RoutingData,
    *,
    weak: str | None = None,
    strong: str | None = None,
) -> TwoModelMetrics:
    """APGR, CPT(50%) and CPT(80%) of a router's predictions on a strong/weak pair.

    Args:
        quality_pred: Predicted quality, ``(n, m)`` in the column order of ``data.models``.
        data: Evaluation data.
        weak: The weak model (default: the cheaper of a two-model pool by mean cost).
        strong: The strong model (default: the costlier of a two-model pool).

    Raises:
        DataError: the models are not given and the data does not have exactly two models
            with costs, or the two models score the same on average.
    """
    if weak is None or strong is None:
        if data.n_models != 2 or data.costs is None:
            raise DataError(
                "name the weak and strong models (they can only be inferred from costs in a "
                "two-model pool)"
            )
        mc = data.mean_costs()
        lo, hi = (0, 1) if mc[0] <= mc[1] else (1, 0)
        weak = weak or data.models[lo]
        strong = strong or data.models[hi]
    points = threshold_curve(quality_pred, data, weak=weak, strong=strong)
    weak_score = float(data.scores[:, data.model_index(weak)].mean())
    strong_score = float(data.scores[:, data.model_index(strong)].mean())
    shares = [p.strong_share for p in points]
    scores = [p.mean_score for p in points]
    kw = {"weak_score": weak_score, "strong_score": strong_score}
    return TwoModelMetrics(
        weak=weak,
        strong=strong,
        weak_score=weak_score,
        strong_score=strong_score,
        apgr=apgr(shares, scores, **kw),
        cpt50=cpt(0.5, shares, scores, **kw),
        cpt80=cpt(0.8, shares, scores, **kw),
        points=points,
    )


def _task_breakdown(
    task: str,
    data: RoutingData,
    choices: np.ndarray[Any, Any],
    weights: Sequence[float],
    total_costs: np.ndarray[Any, Any] | None = None,
) -> TaskBreakdown:
    points = curve_from_choices(choices, data, weights, total_costs=total_costs)
    singles = single_model_points(data)
    c_min, c_max = cost_range(data)
    best = _best_single(singles)
    router_aiq = single_aiq = orc_aiq = None
    if c_max > c_min:
        router_aiq = aiq(points, c_min, c_max)
        single_aiq = aiq(list(singles.values()), c_min, c_max)
        orc_aiq = aiq(oracle_frontier(data), c_min, c_max)
    return TaskBreakdown(
        task=task,
        n_queries=data.n_queries,
        points=points,
        aiq=router_aiq,
        single_hull_aiq=single_aiq,
        oracle_aiq=orc_aiq,
        oracle_gap_closed=_gap_closed(router_aiq, single_aiq, orc_aiq),
        best_single=best,
        best_single_score=singles[best].score,
    )


def evaluate(
    router: SupportsEvaluation,
    data: RoutingData,
    *,
    n_points: int = 41,
    name: str | None = None,
    train_seconds: float | None = None,
    route_latency_ms: float | None = None,
    meta: Mapping[str, Any] | None = None,
) -> RouterEvaluation:
    """Evaluate a fitted router on measured outcomes.

    Calls ``router.predict(data.queries)`` once and ``router.sweep(n_points)`` for the cost
    weights, routes every query at each weight, and averages the *measured* scores and costs of
    the chosen models.

    A router with a ``simulate(data, cost_weights)`` method (see :class:`SupportsSimulation`),
    or whose trained policy ``router.policy_`` has one (a cascade, see
    :class:`SimulatingPolicy`), is replayed on the recorded answers instead: each point's
    score is that of the answer the cascade keeps, and its cost is the sum of the recorded
    costs of *every* model the cascade calls (``meta["mean_calls"]`` lists the mean number of
    calls per point).

    Args:
        router: A fitted router (``models_``, ``predict``, ``sweep``).
        data: Evaluation data with complete scores and costs for every pool model (extra
            models are ignored; columns are matched by name).
        n_points: Cost weights to sweep.
        name: Router name for reports (default: ``router.name`` or its class name).
        train_seconds: Training time to report.
        route_latency_ms: Per-query routing latency to report.
        meta: Extra JSON-safe fields to carry along.

    Raises:
        NotFittedError: the router has no ``models_``.
        UnknownModelError: a pool model is missing from ``data``.
        DataError: ``data`` is incomplete or the predictions are malformed.
    """
    label = name or str(getattr(router, "name", "") or type(router).__name__)
    try:
        models = [str(m) for m in router.models_]
    except AttributeError:
        raise NotFittedError(f"router {label!r} is not fitted; call fit(data) first") from None
    if data.models != models:
        data = data.select_models(models)
    costs = require_complete(data)
    weights = [float(w) for w in router.sweep(n_points)]
    simulate = getattr(router, "simulate", None)
    # A trained policy that replays (duck typing: this layer imports no router or policy).
    policy_simulate: Any = getattr(getattr(router, "policy_", None), "simulate", None)
    total_costs = None
    meta = dict(meta or {})
    start = time.perf_counter()
    if callable(simulate) or callable(policy_simulate):
        if callable(simulate):
            outcomes = simulate(data, weights)
        else:
            quality_pred, cost_pred = router.predict(data.queries)
            outcomes = policy_simulate(data, weights, quality_pred, cost_pred)
        if not isinstance(outcomes, SimulatedOutcomes):
            raise DataError(f"{label}.simulate() must return SimulatedOutcomes")
        predict_seconds = time.perf_counter() - start
        choices = np.asarray(outcomes.final, dtype=np.intp)
        total_costs = np.asarray(outcomes.cost, dtype=np.float64)
        if outcomes.calls is not None:
            meta.setdefault("mean_calls", [float(c) for c in np.mean(outcomes.calls, axis=1)])
        quality_pred = None
    else:
        quality_pred, cost_pred = router.predict(data.queries)
        predict_seconds = time.perf_counter() - start
        choices = choices_for_weights(quality_pred, cost_pred, data, weights)
        own = getattr(router, "choices", None)
        if callable(own):  # the router's own ranking (e.g. an anchor margin)
            choices = np.asarray(own(quality_pred, cost_pred, weights), dtype=np.intp)
    curve = curve_from_choices(choices, data, weights, total_costs=total_costs)

    singles = single_model_points(data)
    c_min, c_max = cost_range(data)
    if not c_max > c_min:
        raise DataError("AIQ needs pool models of different mean cost on the evaluation data")
    router_aiq = aiq(curve, c_min, c_max)
    single_aiq = aiq(list(singles.values()), c_min, c_max)
    orc_aiq = aiq(oracle_frontier(data), c_min, c_max)
    best = _best_single(singles)
    at_best = cost_at_score(curve, singles[best].score)
    best_cost = singles[best].cost

    per_task: dict[str, TaskBreakdown] = {}
    if data.tasks is not None:
        tasks = np.asarray(data.tasks, dtype=object)
        for task in sorted(set(data.tasks)):
            mask = tasks == task
            per_task[task] = _task_breakdown(
                task,
                data.subset(mask),
                choices[:, mask],
                weights,
                None if total_costs is None else total_costs[:, mask],
            )

    two = None
    if data.n_models == 2 and quality_pred is not None:
        mc = costs.mean(axis=0)
        ms = data.scores.mean(axis=0)
        if mc[0] != mc[1] and ms[0] != ms[1]:
            two = two_model_metrics(quality_pred, data)

    logger.info(
        "%s on %s: AIQ %.4f (single models %.4f, oracle %.4f)",
        label,
        data.name or "data",
        router_aiq,
        single_aiq,
        orc_aiq,
    )
    return RouterEvaluation(
        router=label,
        dataset=data.name,
        n_queries=data.n_queries,
        models=models,
        curve=curve,
        hull=[CostScore(float(c), float(s)) for c, s in upper_hull(curve)],
        aiq=router_aiq,
        c_min=c_min,
        c_max=c_max,
        single_models=singles,
        single_hull_aiq=single_aiq,
        oracle=oracle_point(data),
        oracle_aiq=orc_aiq,
        oracle_gap_closed=_gap_closed(router_aiq, single_aiq, orc_aiq),
        best_single=best,
        best_score=max(p.mean_score for p in curve),
        cost_at_best_single_score=at_best,
        cost_share_of_best_single=(
            None if at_best is None or best_cost <= 0 else at_best / best_cost
        ),
        per_task=per_task,
        two_model=two,
        train_seconds=train_seconds,
        route_latency_ms=route_latency_ms,
        predict_seconds=predict_seconds,
        meta=meta,
    )


def leaderboard(evaluations: Sequence[RouterEvaluation]) -> list[dict[str, Any]]:
    """One row per evaluation, best AIQ first (ties keep the given order).

    Each row has ``rank``, ``router``, ``aiq``, ``oracle_gap_closed``, ``best_score``,
    ``best_single``, ``cost_at_best_single_score``, ``pct_cost_of_best_single`` (percent of
    the best single model's cost at which its score is reached), ``train_seconds`` and
    ``route_latency_ms`` (``None`` where unknown).

    Example:
        >>> leaderboard([])
        []
    """
    ordered = sorted(evaluations, key=lambda e: -e.aiq)
    rows = []
    for rank, ev in enumerate(ordered, start=1):
        share = ev.cost_share_of_best_single
        rows.append(
            {
                "rank": rank,
                "router": ev.router,
                "aiq": ev.aiq,
                "oracle_gap_closed": ev.oracle_gap_closed,
                "best_score": ev.best_score,
                "best_single": ev.best_single,
                "cost_at_best_single_score": ev.cost_at_best_single_score,
                "pct_cost_of_best_single": None if share is None else 100.0 * share,
                "train_seconds": ev.train_seconds,
                "route_latency_ms": ev.route_latency_ms,
            }
        )
    return rows
