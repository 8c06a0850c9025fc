"""Typed routing decisions: what a router chose, what it predicted, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Decision"]


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
            "extra": dict(self.extra),
        }
