"""The stack: a cross-validated weighted average of scorers and the per-model prior.

:class:`StackScorer` (the default router, ``auto``) gets out-of-fold predictions from each
member at each of its candidate hyperparameters, keeps each member's best, then chooses the
weights of the members and of the per-model prior (the "best single model for the budget") on
a simplex grid by cross-validated AIQ. A dataset on which no scorer beats the single models
gets weight 1 on the prior, i.e. exactly the best single model for each budget.

Members are scorers of any kind; the ones that read a dense projection share one, fitted once
on the training features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from llmrouter_core.data.core import FloatArray
from llmrouter_core.policy.base import Anchor
from llmrouter_core.scoring.base import FitContext, Scorer, Selected, Selection, Tags
from llmrouter_core.scoring.heads import sub_arrays
from llmrouter_core.training.projection import Projector
from llmrouter_core.training.selection import (
    balanced_weights,
    bootstrap_weights,
    compare,
    routed_outcomes,
    simplex_grid,
)

__all__ = ["DEFAULT_MEMBERS", "StackScorer"]

logger = logging.getLogger(__name__)

_N_BOOT = 200  # bootstrap resamples of the guard
_TOP_TOLERANCE = 0.002  # how far the quality-seeking end may fall below the prior's
_TOP_Z = 2.0  # the quality-seeking end must hold up to twice as many standard errors
#: Candidate utility margins of the anchor (the best training model): routing leaves it only
#: for a predicted gain above the margin. When none holds the quality-seeking end, the router
#: routes as the best single model for each budget (a margin of 1 on that anchor).
MARGINS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)

#: Members of the default stack: ridge, IRT, RouteLLM's bilinear model (pairwise recipe),
#: clusters and tasks.
DEFAULT_MEMBERS = ("ridge", "irt", "bilinear", "cluster", "task")


def _member(spec: Any) -> Scorer:
    from llmrouter_core.scoring import resolve_scorer

    return resolve_scorer(spec if not isinstance(spec, Scorer) else clone(spec))


class StackScorer(Scorer):
    """Cross-validated simplex-weighted stack of scorers and the per-model prior.

    Args:
        members: The member scorers (names or scorer objects), each trained with its own
            default recipe.
        weight_steps: Resolution of the simplex grid of member weights.
        n_components: Dense dimensions of the projection shared by the latent members.
        guard: How sure the cross-validation must be before the stack leaves the prior (the
            best single model for each budget). Weights are chosen by the AIQ gain over the
            prior less ``guard`` bootstrap standard errors (resampling queries; with task
            labels, every task weighs the same). Then the router's anchor margin: routing
            leaves the best single model for the budget only for a predicted gain above it,
            the smallest margin whose quality-seeking end is, ``2 x guard`` standard errors
            down, within 0.002 of the prior's. ``0`` takes the highest cross-validated AIQ
            and no margin.

    Example:
        >>> StackScorer(members=("ridge", "knn")).members
        ('ridge', 'knn')
    """

    tags = Tags(needs=("tasks",))

    def __init__(
        self,
        members: Sequence[Any] = DEFAULT_MEMBERS,
        weight_steps: int = 4,
        n_components: int = 64,
        guard: float = 1.0,
    ) -> None:
        self.members = members
        self.weight_steps = weight_steps
        self.n_components = n_components
        self.guard = guard

    def check_params(self) -> None:
        if isinstance(self.members, str) or not len(self.members):
            raise ValueError("members must be a non-empty sequence of scorers")
        if int(self.weight_steps) < 1:
            raise ValueError(f"weight_steps must be >= 1, got {self.weight_steps!r}")
        if not float(self.guard) >= 0:
            raise ValueError(f"guard must be >= 0, got {self.guard!r}")
        for spec in self.members:
            member = _member(spec)
            if isinstance(member, StackScorer) or member.input == "text":
                raise ValueError(f"{type(member).__name__} cannot be a stack member")
            member.check_params()

    # -- inputs ----------------------------------------------------------------------------
    def _inputs(self, x: Any, mode: str, z: FloatArray | None) -> Any:
        if mode == "features":
            return x
        assert z is not None and self.projector_ is not None
        return z if mode == "dense" else self.projector_.centred(z)

    def _project(self, x: Any) -> FloatArray | None:
        return None if self.projector_ is None else self.projector_.transform(x)

    # -- selection -------------------------------------------------------------------------
    def select(
        self,
        X: Any,
        Y: FloatArray,
        context: FitContext,
        selection: Selection,
        blend: float | None = None,
    ) -> Selected:
        """Choose each member's hyperparameters and the members' and the prior's weights by
        cross-validated AIQ, then fit the members with positive weight on all of ``X``.
        (``blend`` is chosen here as the prior's weight; a fixed ``blend`` is not used.)"""
        from threadpoolctl import threadpool_limits

        self.check_params()
        # The members' problems are small (a few thousand rows, tens of dense columns): BLAS
        # and OpenMP threads (k-means) cost more than they save, and on a busy machine they
        # make each step several times slower.
        with threadpool_limits(limits=1):
            return self._select(X, Y, context, selection)

    def _select(self, X: Any, Y: FloatArray, context: FitContext, selection: Selection) -> Selected:
        members = [_member(spec) for spec in self.members]
        names = [_label(spec) for spec in self.members]
        fitted = clone(self)
        dense = any(m.input != "features" for m in members)
        fitted.projector_ = (
            Projector(int(self.n_components), random_state=context.random_state).fit(X)
            if dense
            else None
        )
        z = fitted._project(X)
        report: list[dict[str, Any]] = []
        best: list[tuple[float, dict[str, Any], FloatArray]] = []
        for name, member in zip(names, members, strict=True):
            ctx = _member_context(context, member)
            candidates = member.candidates()
            oofs = member.oof_predictions(
                fitted._inputs(X, member.input, z), Y, candidates, selection.folds, ctx
            )
            member_best: tuple[float, dict[str, Any], FloatArray] | None = None
            for params, oof in zip(candidates, oofs, strict=True):
                score = selection.score(oof)
                report.append({"member": name, "params": params, "cv_aiq": score})
                if member_best is None or score > member_best[0] + 1e-12:
                    member_best = (score, params, oof)
            assert member_best is not None
            logger.info(
                "stack: member %s best %s (cv AIQ %.4f)", name, member_best[1], member_best[0]
            )
            best.append(member_best)
        prior_oof = selection.prior_oof()
        judge = _Judge(selection, prior_oof, float(self.guard), context)
        top: tuple[float, tuple[float, ...], FloatArray] | None = None
        for weights in simplex_grid(len(members) + 1, int(self.weight_steps)):
            q = weights[-1] * prior_oof
            for w, (_, _, oof) in zip(weights[:-1], best, strict=False):
                if w:
                    q = q + w * oof
            score = judge(q, weights[-1] == 1.0)
            report.append({"weights": list(weights), "criterion": score})
            if top is None or score > top[0] + 1e-12:
                top = (score, weights, q)
        assert top is not None
        weights = top[1]
        margin, per_budget = judge.anchor(top[2], prior_oof) if weights[-1] < 1.0 else (0, False)
        report.append({"margin": margin, "anchor_per_budget": per_budget})
        cv_aiq = selection.score(top[2])
        kept: list[Scorer] = []
        kept_weights: list[float] = []
        for w, member, (_, params, _) in zip(weights[:-1], members, best, strict=True):
            if w > 0:
                one = clone(member).set_params(**params)
                one.fit(fitted._inputs(X, member.input, z), Y, _member_context(context, member))
                kept.append(one)
                kept_weights.append(w)
        total = sum(kept_weights)
        fitted.members_ = kept
        fitted.weights_ = [w / total for w in kept_weights] if total else []
        if not any(m.input != "features" for m in kept):
            fitted.projector_ = None  # no kept member reads it
        fitted.n_outputs_ = int(Y.shape[1])
        params = {
            "members": {n: b[1] for n, b in zip(names, best, strict=True)},
            "weights": dict(zip([*names, "prior"], weights, strict=True)),
        }
        params["margin"] = margin
        params["anchor_per_budget"] = per_budget
        logger.info("stack: weights %s, margin %g (cv AIQ %.4f)", params["weights"], margin, cv_aiq)
        return Selected(
            fitted, float(1.0 - weights[-1]), params, cv_aiq, report, margin, per_budget
        )

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        raise NotImplementedError(
            "a stack chooses its weights by cross-validation: fit it inside a Router "
            "(make_router('stack'))"
        )

    # -- prediction ------------------------------------------------------------------------
    def predict(self, X: Any) -> FloatArray:
        z = self._project(X)
        out = np.zeros((X.shape[0], self.n_outputs_))
        for member, w in zip(self.members_, self.weights_, strict=True):
            out += w * member.predict(self._inputs(X, member.input, z))
        return out

    # -- persistence -----------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from llmrouter_core.scoring import scorer_name

        arrays: dict[str, Any] = {}
        described = []
        for i, member in enumerate(self.members_):
            meta, own = member.get_state()
            name = scorer_name(member)
            if name is None:
                raise ValueError(f"{type(member).__name__} is not a registered scorer")
            described.append({"scorer": name, "params": member.get_params(), "state": meta})
            arrays.update({f"{i}/{k}": v for k, v in own.items()})
        if self.projector_ is not None:
            arrays.update({f"proj/{k}": v for k, v in self.projector_.get_state().items()})
        meta = {"members": described, "weights": self.weights_, "n_outputs": self.n_outputs_}
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        from llmrouter_core.scoring import get_scorer

        members = []
        for i, item in enumerate(meta["members"]):
            member = get_scorer(str(item["scorer"]), **item["params"])
            member.set_state(item["state"], sub_arrays(arrays, f"{i}/"))
            members.append(member)
        self.members_ = members
        self.weights_ = [float(w) for w in meta["weights"]]
        proj = sub_arrays(arrays, "proj/")
        self.projector_ = Projector.from_state(proj) if proj else None
        self.n_outputs_ = int(meta["n_outputs"])


def _label(spec: Any) -> str:
    return spec if isinstance(spec, str) else type(spec).__name__


def _member_context(context: FitContext, member: Scorer) -> FitContext:
    from dataclasses import replace

    return replace(context, recipe=member.tags.recipes[0])


class _Judge:
    """The criteria of the stack's choices.

    Weights: cross-validated AIQ (``guard`` 0), or the AIQ gain over the prior less ``guard``
    bootstrap standard errors (the prior alone scores 0). Then the anchor margin: the smallest
    of :data:`MARGINS` whose quality-seeking end holds up against the prior's (``_TOP_Z x
    guard`` standard errors down, within 0.002), among those with the best such AIQ bound.
    """

    def __init__(
        self, selection: Selection, prior_oof: FloatArray, guard: float, context: FitContext
    ) -> None:
        self.selection, self.guard = selection, guard
        if guard > 0:
            s, n = selection, selection.scores.shape[0]
            self.prior = routed_outcomes(prior_oof, s.cost_pred, s.scores, s.costs)
            # With task labels, every task weighs the same: the stack must beat the prior
            # whatever the mix of tasks a user sends.
            self.weights = balanced_weights(n, context.tasks)
            self.boot = bootstrap_weights(n, _N_BOOT, context.random_state, context.tasks)

    def _compare(self, quality: FloatArray, anchor: Anchor | None = None) -> Any:
        s = self.selection
        outcomes = routed_outcomes(quality, s.cost_pred, s.scores, s.costs, anchor=anchor)
        return compare(outcomes, self.prior, self.boot, self.weights)

    def __call__(self, quality: FloatArray, is_prior: bool) -> float:
        if self.guard <= 0:
            return self.selection.score(quality)
        if is_prior:
            return 0.0
        return float(self._compare(quality).lower_bound(self.guard))

    def anchor(self, quality: FloatArray, prior_oof: FloatArray) -> tuple[float, bool]:
        """The anchor (margin, per budget) for the chosen out-of-fold ``quality`` (each row's
        anchor: the best model of the folds that predicted it)."""
        if self.guard <= 0:
            return 0.0, False
        best: tuple[float, float] | None = None
        for margin in MARGINS:
            comparison = self._compare(quality, Anchor(prior_oof, margin))
            if not comparison.top_holds(_TOP_Z * self.guard, _TOP_TOLERANCE):
                continue
            bound = float(comparison.lower_bound(self.guard))
            if best is None or bound > best[0] + 1e-12:
                best = (bound, margin)
        # Routing as the prior at every cost weight always holds.
        return (1.0, True) if best is None else (best[1], False)
