"""The default router: a cross-validated stack of supervised scorers and the prior.

:class:`AutoRouter` featurises once, gets out-of-fold predictions from each member family at
each of its candidate hyperparameters, keeps each member's best, then chooses the weights of
the members and of the per-model prior (the "best single model for the budget") on a simplex
grid by cross-validated AIQ. A dataset on which no scorer beats the single models gets weight
1 on the prior, i.e. exactly the best single model for each budget.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.routers.heads import Head, StackHead
from llmrouter_core.routers.registry import get_router_class
from llmrouter_core.routers.selection import cv_aiq, kfold
from llmrouter_core.routers.supervised import SupervisedRouter

__all__ = ["AutoRouter"]

logger = logging.getLogger(__name__)


def simplex_grid(k: int, steps: int) -> list[tuple[float, ...]]:
    """All weight vectors of length ``k`` on the grid ``{0, 1/steps, ..., 1}`` summing to 1."""
    out = []
    for combo in itertools.product(range(steps + 1), repeat=k):
        if sum(combo) == steps:
            out.append(tuple(c / steps for c in combo))
    return out


class AutoRouter(SupervisedRouter):
    """Cross-validated stack of supervised scorers (default: kNN + ridge) and the prior.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router().name   # the default router
        'auto'
    """

    name = "auto"
    family = "ensemble"

    def __init__(
        self,
        *,
        members: Sequence[str] = ("knn", "linear"),
        weight_steps: int = 4,
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=None,
            random_state=random_state,
        )
        self.members = members
        self.weight_steps = weight_steps

    def _member(self, name: str) -> SupervisedRouter:
        cls = get_router_class(name)
        if not issubclass(cls, SupervisedRouter) or cls is AutoRouter:
            raise ValueError(f"member {name!r} is not a supervised scorer")
        member: SupervisedRouter = cls(cv=self.cv, random_state=self.random_state)
        return member

    def _fit(self, data: RoutingData) -> None:
        members = [self._member(n) for n in self.members]
        self.embedder_ = self._make_embedder().fit(data.queries)
        x = self.embedder_.transform(data.queries)
        y = data.scores
        costs = data.require_costs()
        self.prior_ = y.mean(axis=0)
        cost_pred = self.cost_model_.predict(data.queries)
        folds = list(kfold(data.n_queries, self.cv, self.random_state))
        report: list[dict[str, Any]] = []
        best: list[tuple[float, dict[str, Any], FloatArray]] = []
        prior_oof = np.empty_like(y)
        for name, member in zip(self.members, members, strict=True):
            member_best: tuple[float, dict[str, Any], FloatArray] | None = None
            candidates = member._candidates()
            oofs, prior_oof = member._oof_all(x, y, candidates, folds)
            for params, oof in zip(candidates, oofs, strict=True):
                score = cv_aiq(oof, cost_pred, y, costs)
                report.append({"member": name, "params": params, "cv_aiq": score})
                if member_best is None or score > member_best[0] + 1e-12:
                    member_best = (score, params, oof)
            assert member_best is not None
            best.append(member_best)
        top: tuple[float, tuple[float, ...]] | None = None
        for weights in simplex_grid(len(members) + 1, self.weight_steps):
            q = weights[-1] * prior_oof
            for w, (_, _, oof) in zip(weights[:-1], best, strict=False):
                if w:
                    q = q + w * oof
            score = cv_aiq(q, cost_pred, y, costs)
            report.append({"weights": list(weights), "cv_aiq": score})
            if top is None or score > top[0] + 1e-12:
                top = (score, weights)
        assert top is not None
        weights = top[1]
        heads: list[Head] = []
        head_weights: list[float] = []
        for w, member, (_, params, _) in zip(weights[:-1], members, best, strict=True):
            if w > 0:
                heads.append(member._fit_head(x, y, params))
                head_weights.append(w)
        self.head_ = StackHead(heads, head_weights, y.shape[1])
        self.blend_ = float(1.0 - weights[-1])
        self.best_params_ = {
            "members": {n: b[1] for n, b in zip(self.members, best, strict=True)},
            "weights": dict(zip([*self.members, "prior"], weights, strict=True)),
        }
        self.cv_results_ = report
        logger.info("auto: weights %s (cv AIQ %.4f)", self.best_params_["weights"], top[0])
