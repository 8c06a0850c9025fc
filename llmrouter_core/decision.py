"""Typed routing decisions: what a router chose, what it predicted, why, and the plan.

A :class:`Decision` names one model (``model``) and the fallback order (``ranked``). A policy
may also attach a *plan* that the executor carries out instead of one call:

* :class:`CascadePlan`: call the stages cheap to expensive and stop at the first answer an
  acceptor accepts (FrugalGPT, AutoMix, or a cascade over any router's predictions);
* :class:`FanOutPlan`: call several models at once and keep one answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CascadePlan", "CascadeStage", "Decision", "FanOutPlan", "Plan"]


@dataclass(frozen=True, slots=True)
class CascadeStage:
    """One stage of a cascade: call ``model``; accept its answer when the acceptor's score
    reaches ``threshold`` (``None``: the last stage, always accepted)."""

    model: str
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class CascadePlan:
    """Call the stages in order and stop at the first accepted answer.

    Attributes:
        stages: Cheapest first; the last stage has no threshold.
        acceptor: Name of the answer scorer that decides (``"frugalgpt"``: a trained scorer of
            the answer; ``"verify"``: the verifier model is asked, AutoMix style), resolved by
            the router (:meth:`~llmrouter_core.Router.acceptor`).

    Example:
        >>> plan = CascadePlan((CascadeStage("small", 0.7), CascadeStage("large")), "verify")
        >>> plan.models
        ('small', 'large')
    """

    stages: tuple[CascadeStage, ...]
    acceptor: str

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(s.model for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "cascade",
            "acceptor": self.acceptor,
            "stages": [s.to_dict() for s in self.stages],
        }


@dataclass(frozen=True, slots=True)
class FanOutPlan:
    """Call ``models`` at once and keep one answer.

    Attributes:
        models: The models to call (best ranked first).
        aggregate: ``"quality"`` keeps the answer of the model with the highest predicted
            quality among those that answered; ``"first"`` the first answer to arrive.
    """

    models: tuple[str, ...]
    aggregate: str = "quality"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "fan_out", "models": list(self.models), "aggregate": self.aggregate}


Plan = CascadePlan | FanOutPlan


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of routing one query.

    Attributes:
        model: The chosen pool model name.
        ranked: Every eligible model, best first (``ranked[0] == model``); the execution layer
            falls back down this list.
        quality: Predicted quality (0..1) per model.
        cost: Predicted cost (USD) per model.
        cost_weight: The willingness-to-pay knob ``lambda`` used (utility = quality -
            lambda x cost).
        router: Name of the router that decided.
        reason: One-line human-readable explanation.
        plan: What the executor carries out when it is more than one call (a
            :class:`CascadePlan` or :class:`FanOutPlan`), else ``None``.
        extra: Further JSON-safe details of a router (never needed to act on the decision).

    Example:
        >>> d = Decision(model="a", ranked=("a", "b"), quality={"a": .9, "b": .5},
        ...              cost={"a": .01, "b": .001}, cost_weight=0.0, router="demo")
        >>> d.fallbacks
        ('b',)
    """

    model: str
    ranked: tuple[str, ...]
    quality: Mapping[str, float]
    cost: Mapping[str, float]
    cost_weight: float
    router: str
    reason: str = ""
    plan: Plan | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fallbacks(self) -> tuple[str, ...]:
        """The ranked models after the chosen one."""
        return self.ranked[1:]

    def utility(self, model: str | None = None) -> float:
        """Predicted utility ``quality - lambda * cost`` of ``model`` (default: the chosen one)."""
        name = model or self.model
        return self.quality[name] - self.cost_weight * self.cost[name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "model": self.model,
            "ranked": list(self.ranked),
            "quality": dict(self.quality),
            "cost": dict(self.cost),
            "cost_weight": self.cost_weight,
            "router": self.router,
            "reason": self.reason,
            "plan": None if self.plan is None else self.plan.to_dict(),
            "extra": dict(self.extra),
        }
