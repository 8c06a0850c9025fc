"""The default router: a cross-validated stack of scorers from several families and the prior.

:class:`AutoRouter` featurises once, gets out-of-fold predictions from each member family at
each of its candidate hyperparameters, keeps each member's best, then chooses the weights of
the members and of the per-model prior (the "best single model for the budget") on a simplex
grid by cross-validated AIQ. A dataset on which no scorer beats the single models gets weight
1 on the prior, i.e. exactly the best single model for each budget.

Members are registry names of supervised or zoo routers (kNN, ridge, IRT, matrix
factorisation, clusters, ...); the families that learn latent vectors share one dense
projection of the features. Costs come from the same per-query cost model as the zoo routers
(:class:`~llmrouter_core.routers._zoo.FeatureCostModel`), so the members are compared, and
combined, on the same cost predictions.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.routers._zoo import (
    Projector,
    ZooRouter,
    load_head,
    register_head,
    sub_arrays,
)
from llmrouter_core.routers.heads import Head, LinearHead, RowMatrix
from llmrouter_core.routers.registry import registered_router_class
from llmrouter_core.routers.selection import cv_aiq, kfold
from llmrouter_core.routers.supervised import SupervisedRouter

__all__ = ["DEFAULT_MEMBERS", "AutoRouter", "ZooStackHead", "simplex_grid"]

logger = logging.getLogger(__name__)

#: Members of the default stack.
DEFAULT_MEMBERS = ("linear", "irt", "mf", "cluster", "task")

# How a member reads the features: the embedder's output, or the shared projection
# (standardised, or only centred for geometry-based members such as k-means).
_SPARSE, _DENSE, _DENSE_RAW = 0, 1, 2


def simplex_grid(k: int, steps: int) -> list[tuple[float, ...]]:
    """All weight vectors of length ``k`` on the grid ``{0, 1/steps, ..., 1}`` summing to 1."""
    out = []
    for combo in itertools.product(range(steps + 1), repeat=k):
        if sum(combo) == steps:
            out.append(tuple(c / steps for c in combo))
    return out


@register_head
class ZooStackHead(Head):
    """Weighted average of member heads that read sparse features or one shared projection."""

    kind = "zoo-stack"

    def __init__(
        self,
        heads: list[Head],
        weights: list[float],
        modes: list[int],
        projector: Projector | None,
        n_outputs: int,
    ) -> None:
        self.heads = list(heads)
        self.weights = [float(w) for w in weights]
        self.modes = [int(m) for m in modes]
        self.projector = projector
        self.n_outputs = int(n_outputs)

    @cached_property
    def _members(self) -> list[tuple[Head, float, int]]:
        """``(head, weight, mode)`` as :meth:`predict` applies them: a linear member on the
        projection of sparse features is folded into one linear map of the sparse features
        (``((x @ P - shift) / scale) @ B = x @ (P @ B / scale) - shift / scale @ B``), so
        routing one query skips the projection when no other member needs it. Folded
        outputs agree with the two-step product to float32 rounding (about 1e-7)."""
        proj = self.projector
        sparse_proj = proj is not None and proj.cols_ is not None
        out: list[tuple[Head, float, int]] = []
        for head, w, mode in zip(self.heads, self.weights, self.modes, strict=True):
            if mode != _SPARSE and sparse_proj and type(head) is LinearHead:
                assert proj is not None
                head, mode = _fold_linear(proj, head, standardized=mode == _DENSE), _SPARSE
            out.append((head, w, mode))
        return out

    @cached_property
    def _projects(self) -> bool:
        """Whether a member (after folding) still reads the projection."""
        return self.projector is not None and any(m != _SPARSE for _, _, m in self._members)

    def predict(self, x: Any) -> FloatArray:
        out = np.zeros((x.shape[0], self.n_outputs))
        z = None
        if self._projects:
            assert self.projector is not None
            z = self.projector.transform(x)
        for head, w, mode in self._members:
            if mode == _SPARSE:
                out += w * head.predict(x)
            else:
                assert z is not None and self.projector is not None
                inp = z if mode == _DENSE else z * self.projector.scale_
                out += w * head.predict(inp)
        return out

    def row_matrices(self) -> list[RowMatrix]:
        out = []
        if self._projects:
            assert self.projector is not None
            out.extend(self.projector.row_matrices())
        for head, _, mode in self._members:
            if mode == _SPARSE:
                out.extend(head.row_matrices())
        return out

    def get_state(self) -> dict[str, Any]:
        kinds = ",".join(h.kind for h in self.heads)
        out: dict[str, Any] = {
            "weights": np.asarray(self.weights, dtype=np.float64),
            "modes": np.asarray(self.modes, dtype=np.int64),
            "kinds": np.frombuffer(kinds.encode("ascii"), dtype=np.uint8),
            "n_outputs": np.asarray([self.n_outputs]),
        }
        if self.projector is not None:
            out.update({f"proj/{k}": v for k, v in self.projector.get_state().items()})
        for i, head in enumerate(self.heads):
            out.update({f"{i}/{k}": v for k, v in head.get_state().items()})
        return out

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> ZooStackHead:
        raw = bytes(np.asarray(arrays["kinds"], dtype=np.uint8)).decode("ascii")
        kinds = raw.split(",") if raw else []
        heads = [load_head(kind, sub_arrays(arrays, f"{i}/")) for i, kind in enumerate(kinds)]
        proj = sub_arrays(arrays, "proj/")
        return cls(
            heads,
            [float(w) for w in arrays["weights"]],
            [int(m) for m in arrays["modes"]],
            Projector.from_state(proj) if proj else None,
            int(arrays["n_outputs"][0]),
        )


def _fold_linear(proj: Projector, head: LinearHead, *, standardized: bool) -> LinearHead:
    """``head`` applied to ``proj``'s output (standardised, or only centred), as one linear
    head on ``proj``'s sparse input; inference only (the stack saves its members as they
    are)."""
    assert proj.cols_ is not None
    coef = head.coef.toarray() if sp.issparse(head.coef) else np.asarray(head.coef)
    coef = np.asarray(coef, dtype=np.float64)
    if standardized:
        coef = coef / proj.scale_[:, None]
    folded = LinearHead.__new__(LinearHead)
    folded.coef = None  # never saved: the stack keeps the original member
    folded.intercept = np.asarray(head.intercept - proj.shift_ @ coef, dtype=np.float64)
    folded.link = head.link
    block = np.asarray(proj.components_, dtype=np.float64) @ coef
    folded.__dict__["_rows"] = RowMatrix(block, rows=proj.cols_, d=proj._rows.shape[0])
    return folded


class AutoRouter(ZooRouter):
    """Cross-validated stack of scorers from several families (default: kNN, ridge, IRT,
    matrix factorisation, clusters) and the per-model prior.

    Args:
        members: Registry names of the member routers (supervised or zoo routers).
        weight_steps: Resolution of the simplex grid of member weights.
        n_components: Dense dimensions shared by the latent-vector members.
        cost_model: ``"features"`` (per-query cost from the query features) or ``"tokens"``.
        embedder, embedder_params, cv, random_state: as :class:`SupervisedRouter`.

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
        members: Sequence[str] = DEFAULT_MEMBERS,
        weight_steps: int = 4,
        n_components: int = 64,
        cost_model: str = "features",
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            cost_model=cost_model,
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=None,
            random_state=random_state,
        )
        self.members = members
        self.weight_steps = weight_steps
        self.n_components = n_components

    def _member(self, name: str) -> SupervisedRouter:
        cls = registered_router_class(name)
        if not issubclass(cls, SupervisedRouter) or issubclass(cls, AutoRouter):
            raise ValueError(f"member {name!r} is not a supervised scorer")
        params: dict[str, Any] = {"cv": self.cv, "random_state": self.random_state}
        accepted = set(cls._param_names())
        member: SupervisedRouter = cls(**{k: v for k, v in params.items() if k in accepted})
        return member

    def _check_params(self) -> None:
        if isinstance(self.members, str) or not len(self.members):
            raise ValueError("members must be a non-empty sequence of router names")
        if int(self.weight_steps) < 1:
            raise ValueError("weight_steps must be >= 1")
        for name in self.members:
            self._member(name)

    @staticmethod
    def _mode(member: SupervisedRouter) -> int:
        if isinstance(member, ZooRouter) and member.dense_input:
            return _DENSE if member.standardize_inputs else _DENSE_RAW
        return _SPARSE

    def _fit_inputs(self, x: Any, data: RoutingData) -> None:
        from threadpoolctl import threadpool_limits

        # The members' problems are small (a few thousand rows, tens of dense columns): BLAS
        # and OpenMP threads (k-means) cost more than they save, and on a busy machine they
        # make each step several times slower.
        with threadpool_limits(limits=1):
            self._fit_members(x, data)

    def _fit_members(self, x: Any, data: RoutingData) -> None:
        # ZooRouter._fit passes the embedder output here (AutoRouter has no projector of its
        # own); the latent-vector members share one projection.
        members = [self._member(n) for n in self.members]
        modes = [self._mode(m) for m in members]
        projector = None
        if any(m != _SPARSE for m in modes):
            projector = Projector(int(self.n_components), random_state=self.random_state).fit(x)
        z = projector.transform(x) if projector is not None else None

        def inputs(mode: int) -> Any:
            if mode == _SPARSE:
                return x
            assert z is not None and projector is not None
            return z if mode == _DENSE else z * projector.scale_

        y = data.scores
        costs = data.require_costs()
        self.prior_ = y.mean(axis=0)
        cost_pred = self._train_cost_predictions(data)
        folds = list(kfold(data.n_queries, self.cv, self.random_state))
        report: list[dict[str, Any]] = []
        best: list[tuple[float, dict[str, Any], FloatArray]] = []
        prior_oof = np.empty_like(y)
        for name, member, mode in zip(self.members, members, modes, strict=True):
            member.models_ = list(self.models_)
            if isinstance(member, ZooRouter):
                member._prepare(data)
            candidates = member._candidates()
            oofs, prior_oof = member._oof_all(inputs(mode), y, candidates, folds)
            member_best: tuple[float, dict[str, Any], FloatArray] | None = None
            for params, oof in zip(candidates, oofs, strict=True):
                score = cv_aiq(oof, cost_pred, y, costs)
                report.append({"member": name, "params": params, "cv_aiq": score})
                if member_best is None or score > member_best[0] + 1e-12:
                    member_best = (score, params, oof)
            assert member_best is not None
            logger.info(
                "auto: member %s best %s (cv AIQ %.4f)", name, member_best[1], member_best[0]
            )
            best.append(member_best)
        top: tuple[float, tuple[float, ...]] | None = None
        for weights in simplex_grid(len(members) + 1, int(self.weight_steps)):
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
        head_modes: list[int] = []
        for w, member, mode, (_, params, _) in zip(weights[:-1], members, modes, best, strict=True):
            if w > 0:
                heads.append(member._fit_head(inputs(mode), y, params))
                head_weights.append(w)
                head_modes.append(mode)
        total = sum(head_weights)
        used_projector = projector if any(m != _SPARSE for m in head_modes) else None
        self.head_ = ZooStackHead(
            heads,
            [w / total for w in head_weights] if total else [],
            head_modes,
            used_projector,
            y.shape[1],
        )
        self.blend_ = float(1.0 - weights[-1])
        self.best_params_ = {
            "members": {n: b[1] for n, b in zip(self.members, best, strict=True)},
            "weights": dict(zip([*self.members, "prior"], weights, strict=True)),
        }
        self.cv_results_ = report
        self.cv_aiq_ = float(top[0])
        logger.info("auto: weights %s (cv AIQ %.4f)", self.best_params_["weights"], top[0])
