"""Policies: how to route, given a router's predictions.

Every router predicts quality and cost per pool model; a policy turns them into decisions.
Any policy works with any router:

* the knob in three forms (:mod:`.knob`): :class:`UtilityPolicy` (utility = quality -
  cost_weight x cost), :class:`BudgetPolicy` (a target mean cost per query),
  :class:`ThresholdPolicy` (two-model pools, RouteLLM's threshold);
* request constraints, applied by the router to every policy: ``allowed`` models and a
  per-request ``max_cost`` (:func:`.base.eligible`);
* plans for the executor (:mod:`.plans`): :class:`FanOutPolicy` (top-k at once) and
  :class:`CascadePolicy` (cheap to expensive until an answer is accepted).

Write your own by implementing :class:`Policy` (``decide(quality, cost, context)``); a policy
with learned state also has ``fit(data, context)`` (:class:`TrainedPolicy`; FrugalGPT's and
AutoMix's, in :mod:`llmrouter_core.cascades`).
"""

from __future__ import annotations

from llmrouter_core.policy.base import (
    Anchor,
    Calibration,
    Policy,
    PolicyFitContext,
    RouteContext,
    TrainedPolicy,
    decisions,
    eligible,
)
from llmrouter_core.policy.knob import (
    BudgetPolicy,
    CostWeightPolicy,
    ThresholdPolicy,
    UtilityPolicy,
)
from llmrouter_core.policy.plans import CascadePolicy, FanOutPolicy
from llmrouter_core.policy.ranking import (
    anchored,
    choose,
    rank,
    rank_one,
    rank_rows,
    utilities,
)

__all__ = [
    "Anchor",
    "BudgetPolicy",
    "Calibration",
    "CascadePolicy",
    "CostWeightPolicy",
    "FanOutPolicy",
    "Policy",
    "PolicyFitContext",
    "RouteContext",
    "ThresholdPolicy",
    "TrainedPolicy",
    "UtilityPolicy",
    "anchored",
    "choose",
    "decisions",
    "eligible",
    "rank",
    "rank_one",
    "rank_rows",
    "utilities",
]
