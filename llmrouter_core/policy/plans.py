"""Policies whose decisions carry a plan for the executor: fan-out and cascades.

* :class:`FanOutPolicy`: call the ``k`` best-ranked models at once and keep one answer
  (:class:`~llmrouter_core.decision.FanOutPlan`).
* :class:`CascadePolicy`: call models cheap to expensive and stop at the first answer an
  acceptor accepts (:class:`~llmrouter_core.decision.CascadePlan`). It works on any router's
  predictions: the chain is the query's predicted cost-quality frontier below the model the
  knob picks, and a stage's answer is accepted when the acceptor's confidence reaches what
  escalating is predicted to bring, ``quality(next) - cost_weight x cost(next)`` (AutoMix's
  rule).

Both wrap an inner policy (default: the knob) that ranks the models.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from llmrouter_core.decision import CascadePlan, CascadeStage, Decision, FanOutPlan
from llmrouter_core.policy.base import FloatArray, Policy, RouteContext
from llmrouter_core.policy.knob import UtilityPolicy

__all__ = ["CascadePolicy", "FanOutPolicy", "frontier_chain"]

AGGREGATES = ("quality", "first")


@dataclass(frozen=True)
class FanOutPolicy:
    """Send the request to the ``k`` best-ranked models and keep one answer.

    Args:
        k: How many models answer (fewer when fewer are eligible).
        aggregate: ``"quality"`` keeps the answer of the model with the highest predicted
            quality among those that answered; ``"first"`` keeps the first to arrive.
        inner: The policy that ranks the models (default: the knob at the router's weight).

    Example:
        >>> ctx = RouteContext(models=("a", "b", "c"), router="demo")
        >>> q, c = np.array([[0.5, 0.9, 0.7]]), np.array([[1.0, 3.0, 2.0]])
        >>> FanOutPolicy(k=2).decide(q, c, ctx)[0].plan.models
        ('b', 'c')
    """

    k: int = 2
    aggregate: str = "quality"
    inner: Policy = field(default_factory=UtilityPolicy)

    def __post_init__(self) -> None:
        if int(self.k) < 1:
            raise ValueError("k must be >= 1")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")

    def decide(
        self, quality: FloatArray, cost: FloatArray, context: RouteContext
    ) -> list[Decision]:
        out = []
        for d in self.inner.decide(quality, cost, context):
            plan = FanOutPlan(tuple(d.ranked[: int(self.k)]), self.aggregate)
            reason = f"{d.reason}; fan out to {', '.join(plan.models)}"
            out.append(replace(d, plan=plan, reason=reason))
        return out


def frontier_chain(
    quality: list[float], cost: list[float], target: int, eligible: list[bool] | None = None
) -> list[int]:
    """Models cheaper than ``target`` that each predict a higher quality than every cheaper
    one (the query's cost-quality frontier), cheapest first, then ``target``.

    Example:
        >>> frontier_chain([0.5, 0.4, 0.8, 0.9], [1.0, 2.0, 3.0, 4.0], target=3)
        [0, 2, 3]
    """
    order = sorted(range(len(cost)), key=lambda j: (cost[j], -quality[j], j))
    chain: list[int] = []
    best = -np.inf
    for j in order:
        if j == target or cost[j] > cost[target] or (eligible is not None and not eligible[j]):
            continue
        if quality[j] > best and quality[j] < quality[target]:
            chain.append(j)
            best = quality[j]
    return [*chain, target]


@dataclass(frozen=True)
class CascadePolicy:
    """Call models cheap to expensive; stop at the first answer the acceptor accepts.

    Args:
        acceptor: The answer scorer the executor asks at each stage but the last
            (``"verify"``: the verifier model judges the answer, AutoMix style;
            ``"frugalgpt"``: a scorer trained on recorded answers, see
            :mod:`llmrouter_core.cascades`).
        max_stages: Most models called for one query (the last is the one the inner policy
            picks).
        inner: The policy that picks the last stage and gives the cost weight.

    Example:
        >>> ctx = RouteContext(models=("s", "m", "l"), router="demo")
        >>> q, c = np.array([[0.5, 0.7, 0.9]]), np.array([[1.0, 2.0, 3.0]])
        >>> plan = CascadePolicy(max_stages=2).decide(q, c, ctx)[0].plan
        >>> [(s.model, s.threshold) for s in plan.stages]
        [('s', 0.9), ('l', None)]
    """

    acceptor: str = "verify"
    max_stages: int = 3
    inner: UtilityPolicy = field(default_factory=UtilityPolicy)

    def __post_init__(self) -> None:
        if int(self.max_stages) < 1:
            raise ValueError("max_stages must be >= 1")

    def decide(
        self, quality: FloatArray, cost: FloatArray, context: RouteContext
    ) -> list[Decision]:
        weight = self.inner.weight(context)
        out = []
        for i, d in enumerate(self.inner.decide(quality, cost, context)):
            q, c = quality[i].tolist(), cost[i].tolist()
            mask = context.row_mask(i)
            target = context.models.index(d.model)
            chain = frontier_chain(q, c, target, None if mask is None else mask.tolist())
            if len(chain) > int(self.max_stages):  # keep the cheapest ones and the target
                chain = [*chain[: int(self.max_stages) - 1], target]
            stages = []
            for s, j in enumerate(chain):
                if s == len(chain) - 1:
                    stages.append(CascadeStage(context.models[j]))
                    continue
                nxt = chain[s + 1]
                gain = q[nxt] - (0.0 if np.isinf(weight) else weight * c[nxt])
                stages.append(CascadeStage(context.models[j], float(np.clip(gain, 0.0, 1.0))))
            plan = CascadePlan(tuple(stages), self.acceptor)
            ranked = (*plan.models, *(m for m in d.ranked if m not in plan.models))
            out.append(
                replace(
                    d,
                    model=plan.models[0],
                    ranked=ranked,
                    plan=plan,
                    reason=f"cascade {' -> '.join(plan.models)} ({self.acceptor}); {d.reason}",
                )
            )
        return out
