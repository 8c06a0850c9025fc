"""Supervised routers: one scikit-learn estimator per pool model predicts its score.

:class:`SupervisedRouter` is the shared machinery (featurise with an embedder, choose
hyperparameters by cross-validated AIQ on the training data, shrink toward the per-model prior
by a cross-validated weight, export the fitted estimators to array heads). The concrete
routers only say which estimator to fit:

=========  ==================================================  ===================
name       estimator                                           hyperparameters
=========  ==================================================  ===================
knn        similarity-weighted neighbours (cosine)             ``n_neighbors``
linear     ``sklearn.linear_model.Ridge``                      ``alpha``
logistic   ``sklearn.linear_model.LogisticRegression`` (soft)  ``C``
svm        ``sklearn.svm.LinearSVR``                           ``C``
mlp        ``sklearn.neural_network.MLPRegressor``             ``hidden_layer_sizes``, ``alpha``
=========  ==================================================  ===================

Every model's full score column is learned (ties included): a query on which three models
are all correct teaches all three, not "the first best row".
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.features import get_embedder
from llmrouter_core.features.base import Embedder
from llmrouter_core.routers.base import Arrays, Router
from llmrouter_core.routers.heads import Head, KNNHead, LinearHead, MLPHead, head_from_state
from llmrouter_core.routers.selection import cv_aiq, kfold

__all__ = [
    "KNNRouter",
    "LinearRouter",
    "LogisticRouter",
    "MLPRouter",
    "SVMRouter",
    "SupervisedRouter",
]

logger = logging.getLogger(__name__)

#: Candidate weights of the learned scorer against the per-model prior (1 = scorer only,
#: 0 = "best single model for the budget").
BLEND_GRID = (1.0, 0.75, 0.5, 0.25, 0.0)


class SupervisedRouter(Router):
    """Shared machinery of the per-model supervised routers (not registered itself).

    Args:
        embedder: Embedder name (``"hashing"``, ``"minilm"``, ...).
        embedder_params: Keyword arguments of the embedder.
        cv: Folds for hyperparameter selection on the training data.
        blend: Weight of the learned scorer against the per-model mean score; ``None``
            chooses it by cross-validation, so a scorer that does not beat the best single
            model for the budget falls back to it.
        random_state: Seed of the folds and of stochastic estimators.
    """

    family = "supervised"
    #: hyperparameter -> candidates tried by cross-validation when the value is ``None``.
    search_space: ClassVar[dict[str, Sequence[Any]]] = {}

    embedder_: Embedder
    head_: Head

    def __init__(
        self,
        *,
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        blend: float | None = None,
        random_state: int = 0,
    ) -> None:
        self.embedder = embedder
        self.embedder_params = embedder_params
        self.cv = cv
        self.blend = blend
        self.random_state = random_state

    # -- hooks -------------------------------------------------------------
    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:  # pragma: no cover
        raise NotImplementedError

    # -- training ----------------------------------------------------------
    def _make_embedder(self) -> Embedder:
        return get_embedder(self.embedder, **(self.embedder_params or {}))

    def _candidates(self) -> list[dict[str, Any]]:
        fixed = {k: getattr(self, k) for k in self.search_space}
        free = [k for k, v in fixed.items() if v is None]
        grids = [self.search_space[k] for k in free]
        out = []
        for combo in itertools.product(*grids):
            params = dict(fixed)
            params.update(zip(free, combo, strict=True))
            out.append(params)
        return out

    def _fit(self, data: RoutingData) -> None:
        if self.blend is not None and not 0.0 <= self.blend <= 1.0:
            raise ValueError("blend must be in [0, 1] or None")
        self.embedder_ = self._make_embedder().fit(data.queries)
        x = self.embedder_.transform(data.queries)
        y = data.scores
        self.prior_ = y.mean(axis=0)
        candidates = self._candidates()
        needs_cv = len(candidates) > 1 or self.blend is None
        if needs_cv and data.n_queries >= 2 * max(self.cv, 2):
            best_params, best_blend, report = self._select(x, data, candidates)
        else:
            best_params, best_blend, report = (
                candidates[0],
                (self.blend if self.blend is not None else 1.0),
                [],
            )
        self.best_params_ = best_params
        self.blend_ = float(best_blend)
        self.cv_results_ = report
        self.head_ = self._fit_head(x, y, best_params)

    def _oof_all(
        self, x: Any, y: FloatArray, candidates: list[dict[str, Any]], folds: list[Any]
    ) -> tuple[list[FloatArray], FloatArray]:
        """Out-of-fold predictions for each candidate, and of the per-model prior."""
        prior_oof = np.empty_like(y)
        for train, val in folds:
            prior_oof[val] = y[train].mean(axis=0)
        out = []
        for params in candidates:
            oof = np.empty_like(y)
            for train, val in folds:
                oof[val] = self._fit_head(x[train], y[train], params).predict(x[val])
            out.append(oof)
        return out, prior_oof

    def _select(
        self, x: Any, data: RoutingData, candidates: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
        y = data.scores
        costs = data.require_costs()
        cost_pred = self.cost_model_.predict(data.queries)
        blends = BLEND_GRID if self.blend is None else (float(self.blend),)
        folds = list(kfold(data.n_queries, self.cv, self.random_state))
        report: list[dict[str, Any]] = []
        best: tuple[float, dict[str, Any], float] | None = None
        oofs, prior_oof = self._oof_all(x, y, candidates, folds)
        for params, oof in zip(candidates, oofs, strict=True):
            for b in blends:
                q = b * oof + (1.0 - b) * prior_oof
                score = cv_aiq(q, cost_pred, y, costs)
                report.append({"params": params, "blend": b, "cv_aiq": score})
                if best is None or score > best[0] + 1e-12:
                    best = (score, params, b)
        assert best is not None
        logger.info("%s: chose %s, blend %.2f (cv AIQ %.4f)", self.name, best[1], best[2], best[0])
        return best[1], best[2], report

    # -- prediction --------------------------------------------------------
    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:
        x = self.embedder_.transform(queries)
        q = self.head_.predict(x)
        if self.blend_ < 1.0:
            q = self.blend_ * q + (1.0 - self.blend_) * self.prior_
        return q

    # -- persistence -------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        arrays: Arrays = {"prior": self.prior_}
        arrays.update({f"head/{k}": v for k, v in self.head_.get_state().items()})
        arrays.update({f"embedder/{k}": v for k, v in self.embedder_.get_state().items()})
        meta = {
            "head": self.head_.kind,
            "blend": self.blend_,
            "best_params": self.best_params_,
            "embedder": {"name": self.embedder_.name, "config": self.embedder_.get_config()},
        }
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        emb = meta["embedder"]
        self.embedder_ = get_embedder(emb["name"], **emb["config"])
        self.embedder_.set_state(
            {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("embedder/")}
        )
        self.head_ = head_from_state(
            meta["head"],
            {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("head/")},
        )
        self.prior_ = np.asarray(arrays["prior"], dtype=np.float64)
        self.blend_ = float(meta["blend"])
        self.best_params_ = dict(meta["best_params"])


def _per_model_linear(
    x: Any, y: FloatArray, make: Any, link: str, soft_labels: bool = False
) -> LinearHead:
    """Fit one linear estimator per model column and stack the coefficients."""
    import scipy.sparse as sp

    d, m = x.shape[1], y.shape[1]
    coef = np.zeros((d, m), dtype=np.float64)
    intercept = np.zeros(m)
    for j in range(m):
        col = y[:, j]
        lo, hi = float(col.min()), float(col.max())
        if hi - lo < 1e-12:  # constant column: nothing to learn
            p = min(max(lo, 1e-6), 1 - 1e-6)
            intercept[j] = np.log(p / (1 - p)) if link == "logistic" else lo
            continue
        est = make()
        if soft_labels:
            # Soft-label logistic regression: each query counts as a positive with weight
            # y and a negative with weight 1 - y (exact for 0/1 scores, faithful for partial).
            xx = sp.vstack([x, x]) if sp.issparse(x) else np.vstack([x, x])
            labels = np.concatenate([np.ones(len(col)), np.zeros(len(col))])
            weights = np.concatenate([col, 1.0 - col])
            keep = weights > 0
            est.fit(xx[keep], labels[keep], sample_weight=weights[keep])
        else:
            est.fit(x, col)
        coef[:, j] = np.ravel(est.coef_)
        intercept[j] = float(np.ravel(est.intercept_)[0])
    return LinearHead(coef, intercept, link=link)


class KNNRouter(SupervisedRouter):
    """k nearest training queries (cosine), similarity-weighted, shrunk to the model means.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("knn", n_neighbors=25).n_neighbors
        25
    """

    name = "knn"
    search_space = {"n_neighbors": (10, 25, 50, 100, 200)}

    def __init__(
        self,
        *,
        n_neighbors: int | None = None,
        shrinkage: float = 1.0,
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        blend: float | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=blend,
            random_state=random_state,
        )
        self.n_neighbors = n_neighbors
        self.shrinkage = shrinkage

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        return KNNHead(x, y, k=int(params["n_neighbors"]), alpha=self.shrinkage)

    def _oof_all(
        self, x: Any, y: FloatArray, candidates: list[dict[str, Any]], folds: list[Any]
    ) -> tuple[list[FloatArray], FloatArray]:
        # The similarities of a fold do not depend on k: compute them once per fold.
        prior_oof = np.empty_like(y)
        out = [np.empty_like(y) for _ in candidates]
        for train, val in folds:
            prior_oof[val] = y[train].mean(axis=0)
            head = KNNHead(x[train], y[train], k=1, alpha=self.shrinkage)
            sims = head.similarities(x[val])
            for oof, params in zip(out, candidates, strict=True):
                head.k = int(params["n_neighbors"])
                oof[val] = head.predict_from_similarities(sims)
        return out, prior_oof


class LinearRouter(SupervisedRouter):
    """Ridge regression of each model's score on the query features."""

    name = "linear"
    search_space = {"alpha": (1.0, 3.0, 10.0, 30.0, 100.0)}

    def __init__(
        self,
        *,
        alpha: float | None = None,
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        blend: float | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=blend,
            random_state=random_state,
        )
        self.alpha = alpha

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        from sklearn.linear_model import Ridge

        return _per_model_linear(
            x, y, lambda: Ridge(alpha=float(params["alpha"]), solver="auto"), "identity"
        )


class LogisticRouter(SupervisedRouter):
    """Logistic regression per model on soft labels (P(model answers well | query))."""

    name = "logistic"
    search_space = {"C": (0.3, 1.0, 3.0)}

    def __init__(
        self,
        *,
        C: float | None = None,
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        blend: float | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=blend,
            random_state=random_state,
        )
        self.C = C

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        from sklearn.linear_model import LogisticRegression

        def make() -> Any:
            return LogisticRegression(
                C=float(params["C"]),
                solver="liblinear",
                max_iter=200,
                random_state=self.random_state,
            )

        return _per_model_linear(x, y, make, "logistic", soft_labels=True)


class SVMRouter(SupervisedRouter):
    """Linear support-vector regression (epsilon-insensitive) of each model's score."""

    name = "svm"
    search_space = {"C": (0.03, 0.1, 0.3, 1.0)}

    def __init__(
        self,
        *,
        C: float | None = None,
        epsilon: float = 0.1,
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        blend: float | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=blend,
            random_state=random_state,
        )
        self.C = C
        self.epsilon = epsilon

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        from sklearn.svm import LinearSVR

        def make() -> Any:
            return LinearSVR(
                C=float(params["C"]),
                epsilon=self.epsilon,
                max_iter=5000,
                dual=True,
                random_state=self.random_state,
            )

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*converge.*")
            return _per_model_linear(x, y, make, "identity")


class MLPRouter(SupervisedRouter):
    """A small multi-output MLP predicting every model's score at once.

    Uses a compact hashing space (2**14 features) by default so the first layer stays small.
    """

    name = "mlp"
    search_space = {"alpha": (1e-3, 1e-2, 1e-1)}

    def __init__(
        self,
        *,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        alpha: float | None = None,
        max_iter: int = 60,
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        blend: float | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=blend,
            random_state=random_state,
        )
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter

    def _make_embedder(self) -> Embedder:
        params = dict(self.embedder_params or {})
        if self.embedder == "hashing":
            params.setdefault("n_features", 2**14)
        return get_embedder(self.embedder, **params)

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        from sklearn.neural_network import MLPRegressor

        est = MLPRegressor(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes),
            alpha=float(params["alpha"]),
            max_iter=self.max_iter,
            early_stopping=False,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*converge.*")
            est.fit(x, y)
        return MLPHead(est.coefs_, est.intercepts_)
