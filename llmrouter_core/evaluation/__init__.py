"""Evaluation: cost-quality curves, AIQ, oracle gap, APGR / CPT, leaderboards and plots.

A router is evaluated on *measured* outcomes: its predictions pick a model per query at each
setting of the cost-quality knob, and the chosen models' recorded scores and costs give one
(mean cost, mean score) point per setting. See :mod:`llmrouter_core.evaluation.metrics` for the
exact metric definitions.

Example:
    >>> from llmrouter_core.evaluation import aiq, upper_hull
    >>> round(aiq([(1.0, 0.6), (3.0, 0.8)], 1.0, 3.0), 3)
    0.7
"""

from __future__ import annotations

from llmrouter_core.evaluation.curve import (
    CurvePoint,
    SimulatedOutcomes,
    ThresholdPoint,
    choices_for_weights,
    curve_from_choices,
    sweep_curve,
    threshold_curve,
)
from llmrouter_core.evaluation.metrics import (
    CostScore,
    aiq,
    apgr,
    cost_at_score,
    cost_range,
    cpt,
    hull_value,
    oracle_choice,
    oracle_frontier,
    oracle_gap_closed,
    oracle_point,
    pgr,
    require_complete,
    single_model_points,
    upper_hull,
)
from llmrouter_core.evaluation.plot import plot_curves
from llmrouter_core.evaluation.report import (
    RouterEvaluation,
    SupportsEvaluation,
    SupportsSimulation,
    TaskBreakdown,
    TwoModelMetrics,
    evaluate,
    leaderboard,
    two_model_metrics,
)

__all__ = [
    "CostScore",
    "CurvePoint",
    "RouterEvaluation",
    "SimulatedOutcomes",
    "SupportsEvaluation",
    "SupportsSimulation",
    "TaskBreakdown",
    "ThresholdPoint",
    "TwoModelMetrics",
    "aiq",
    "apgr",
    "choices_for_weights",
    "cost_at_score",
    "cost_range",
    "cpt",
    "curve_from_choices",
    "evaluate",
    "hull_value",
    "leaderboard",
    "oracle_choice",
    "oracle_frontier",
    "oracle_gap_closed",
    "oracle_point",
    "pgr",
    "plot_curves",
    "require_complete",
    "single_model_points",
    "sweep_curve",
    "threshold_curve",
    "two_model_metrics",
    "upper_hull",
]
