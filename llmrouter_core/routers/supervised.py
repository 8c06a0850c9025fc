"""Supervised routers: scorers of each pool model's score learned from the query features.

:class:`SupervisedRouter` is the shared machinery (featurise with an embedder, choose
hyperparameters by cross-validated AIQ on the training data, shrink toward the per-model prior
by a cross-validated weight, export the fitted estimators to array heads). The concrete
routers only say which estimator to fit:

=========  ==================================================  ===================
name       estimator                                           hyperparameters
=========  ==================================================  ===================
knn        similarity-weighted neighbours (cosine)             ``n_neighbors``
linear     ridge regression (``sklearn.linear_model.Ridge``)   ``alpha``
logistic   soft-label logistic regression (liblinear's)        ``C``
svm        ``sklearn.svm.LinearSVR``                           ``C``
mlp        ``sklearn.neural_network.MLPRegressor`` on an SVD   ``alpha``, ``n_components``
=========  ==================================================  ===================

Every model's full score column is learned (ties included): a query on which three models
are all correct teaches all three, not "the first best row".

Training cost: the features are computed once per fit and shared by every fold and candidate
(and by the knob's calibration). The ridge and logistic objectives are solved for all pool
models -- and for ridge all penalties -- at once by the batched solvers of
:mod:`~llmrouter_core.routers._solvers` (the same convex problems as the scikit-learn
estimators, to a tighter tolerance), the logistic one warm-started along increasing ``C``; the
per-model estimators (SVR) only see the feature columns that occur in training; the MLP reads a
truncated SVD of the features, fitted once.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.features import get_embedder
from llmrouter_core.features.base import Embedder
from llmrouter_core.routers._solvers import Design, Projection, ridge_path, soft_logistic_path
from llmrouter_core.routers.base import Arrays, Router
from llmrouter_core.routers.heads import Head, KNNHead, LinearHead, MLPHead, head_from_state
from llmrouter_core.routers.selection import kfold, select_blend

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
        # The knob's calibration (base class, right after _fit) predicts the training
        # queries: keep their features so they are not featurised a second time.
        self._train_features: tuple[Sequence[str], Any] | None = (data.queries, x)
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

    def _train_cost_predictions(self, data: RoutingData) -> FloatArray:
        """Predicted costs of the training queries, used to route in cross-validation."""
        return self.cost_model_.predict(data.queries)

    def _select(
        self, x: Any, data: RoutingData, candidates: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
        y = data.scores
        costs = data.require_costs()
        cost_pred = self._train_cost_predictions(data)
        blends = BLEND_GRID if self.blend is None else (float(self.blend),)
        folds = list(kfold(data.n_queries, self.cv, self.random_state))
        oofs, prior_oof = self._oof_all(x, y, candidates, folds)
        params, blend, score, report = select_blend(
            candidates, oofs, prior_oof, blends, cost_pred, y, costs
        )
        logger.info("%s: chose %s, blend %.2f (cv AIQ %.4f)", self.name, params, blend, score)
        return params, blend, report

    def _calibrate(self, queries: Sequence[str]) -> dict[str, list[float]]:
        try:
            return super()._calibrate(queries)
        finally:
            self._train_features = None

    # -- prediction --------------------------------------------------------
    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:
        cached = getattr(self, "_train_features", None)
        if cached is not None and _same_texts(cached[0], queries):
            q = self._predict_training(cached[1])
        else:
            q = self.head_.predict(self.embedder_.transform(queries))
        if self.blend_ < 1.0:
            q = self.blend_ * q + (1.0 - self.blend_) * self.prior_
        return q

    def _predict_training(self, x: Any) -> FloatArray:
        """Head predictions for the training features (the knob's calibration, during fit)."""
        return self.head_.predict(x)

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


def _same_texts(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether ``b`` holds the very same string objects as ``a`` (a copied list counts)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _per_model_linear(x: Any, y: FloatArray, make: Any) -> LinearHead:
    """Fit one scikit-learn linear regressor per model column and stack the coefficients.

    The estimators see only the feature columns that occur in the training rows (the others
    get weight zero anyway): with 2**18 hashed columns, most of a generic solver's time
    would go to columns no training query has.
    """
    design = Design(x)
    m = y.shape[1]
    w = np.zeros((design.dim, m))
    intercept = np.zeros(m)
    for j in range(m):
        col = y[:, j]
        lo, hi = float(col.min()), float(col.max())
        if hi - lo < 1e-12:  # constant column: nothing to learn
            intercept[j] = lo
            continue
        est = make().fit(design.x, col)
        w[:, j] = np.ravel(est.coef_)
        intercept[j] = float(np.ravel(est.intercept_)[0])
    coef, _ = design.unpack(w)
    return LinearHead(coef, intercept, link="identity")


def _ridge_heads(x: Any, y: FloatArray, alphas: Sequence[float]) -> list[LinearHead]:
    """Ridge heads (intercept unpenalised, as ``sklearn.linear_model.Ridge``) for every
    ``alpha``, all models and penalties solved together."""
    fits = ridge_path(Design(x), y, alphas)
    return [LinearHead(coef, intercept, link="identity") for coef, intercept in fits]


def _logistic_heads(x: Any, y: FloatArray, cs: Sequence[float]) -> list[LinearHead]:
    """Soft-label logistic heads for every ``C`` (the objective of liblinear's
    ``LogisticRegression(C=C)`` on each query counted as a positive with weight ``y`` and a
    negative with weight ``1 - y``), all models solved together along the ``C`` path."""
    m = y.shape[1]
    lo, hi = y.min(axis=0), y.max(axis=0)
    learn = np.flatnonzero(hi - lo >= 1e-12)
    # A constant column has nothing to learn: its mean, as a logit.
    p = np.clip(lo, 1e-6, 1 - 1e-6)
    const_logit = np.log(p / (1 - p))
    if learn.size == 0:
        empty = sp.csr_matrix((x.shape[1], m), dtype=np.float64)
        return [LinearHead(empty, const_logit, link="logistic") for _ in cs]
    heads = []
    for coef, bias in soft_logistic_path(Design(x, bias=True), y[:, learn], cs):
        intercept = const_logit.copy()
        intercept[learn] = bias
        if sp.issparse(coef):
            csr = sp.csr_matrix(coef)
            full: Any = sp.csr_matrix(
                (csr.data, learn[csr.indices], csr.indptr), shape=(x.shape[1], m)
            )
        else:
            full = np.zeros((x.shape[1], m))
            full[:, learn] = coef
        heads.append(LinearHead(full, intercept, link="logistic"))
    return heads


def _path_oof(
    fit_path: Any,
    x: Any,
    y: FloatArray,
    strengths: list[float],
    folds: list[Any],
) -> tuple[list[FloatArray], FloatArray]:
    """Out-of-fold predictions of heads fitted for all ``strengths`` at once per fold."""
    prior_oof = np.empty_like(y)
    out = [np.empty_like(y) for _ in strengths]
    for train, val in folds:
        prior_oof[val] = y[train].mean(axis=0)
        heads = fit_path(x[train], y[train], strengths)
        for oof, head in zip(out, heads, strict=True):
            oof[val] = head.predict(x[val])
    return out, prior_oof


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
            sims = head.similarities_many(x[val])
            for oof, params in zip(out, candidates, strict=True):
                head.k = int(params["n_neighbors"])
                oof[val] = head.predict_from_similarities(sims)
        return out, prior_oof

    def _predict_training(self, x: Any) -> FloatArray:
        # All training queries at once: the batched similarities (KNNHead.similarities_many).
        head = self.head_
        assert isinstance(head, KNNHead)
        return head.predict_from_similarities(head.similarities_many(x))


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
        return _ridge_heads(x, y, [float(params["alpha"])])[0]

    def _oof_all(
        self, x: Any, y: FloatArray, candidates: list[dict[str, Any]], folds: list[Any]
    ) -> tuple[list[FloatArray], FloatArray]:
        # One block solve per fold covers every model and every alpha.
        alphas = [float(p["alpha"]) for p in candidates]
        return _path_oof(_ridge_heads, x, y, alphas, folds)


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
        return _logistic_heads(x, y, [float(params["C"])])[0]

    def _oof_all(
        self, x: Any, y: FloatArray, candidates: list[dict[str, Any]], folds: list[Any]
    ) -> tuple[list[FloatArray], FloatArray]:
        # One Newton solve per fold and C covers every model, warm-started along C.
        cs = [float(p["C"]) for p in candidates]
        return _path_oof(_logistic_heads, x, y, cs, folds)


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
            return _per_model_linear(x, y, make)


class MLPRouter(SupervisedRouter):
    """A small multi-output MLP predicting every model's score at once.

    Uses a compact hashing space (2**14 features) by default so the first layer stays small.
    The network reads the top ``n_components`` singular directions of the training features
    (a truncated SVD fitted once, without labels, on all training queries and shared by the
    cross-validation folds and candidates); the projection is folded into the first layer
    afterwards, so the saved head reads the embedder's features directly. Training on a few
    hundred dense inputs instead of 2**14 sparse ones is what makes the search affordable.

    Args:
        hidden_layer_sizes: Hidden layers of the ``MLPRegressor``.
        alpha: L2 penalty (``None``: chosen by cross-validation).
        max_iter: Training epochs (Adam, mini-batches of 200).
        n_components: Singular directions the network reads (``None``: chosen by
            cross-validation; ``0``: the raw features, no projection).
        embedder, embedder_params, cv, blend, random_state: as :class:`SupervisedRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("mlp", alpha=0.01, n_components=128).n_components
        128
    """

    name = "mlp"
    search_space = {"alpha": (1e-3, 1e-2, 1e-1), "n_components": (128, 256)}

    def __init__(
        self,
        *,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        alpha: float | None = None,
        max_iter: int = 60,
        n_components: int | None = None,
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
        self.n_components = n_components

    def _make_embedder(self) -> Embedder:
        params = dict(self.embedder_params or {})
        if self.embedder == "hashing":
            params.setdefault("n_features", 2**14)
        return get_embedder(self.embedder, **params)

    def _projection(self, x: Any, n_components: int) -> Projection | None:
        """The projection of these training features onto ``n_components`` directions.

        One SVD per feature matrix, of the largest size any candidate needs: the folds of
        :meth:`_oof_all`, its candidates and the final :meth:`_fit_head` all share it.
        """
        if int(n_components) <= 0:
            return None
        cached = getattr(self, "_projection_cache", None)
        if cached is None or cached[0] is not x or cached[1].n_components < n_components:
            sizes = [int(c) for c in self.search_space["n_components"]]
            if self.n_components is not None:
                sizes = [int(self.n_components)]
            size = max([*sizes, int(n_components)])
            proj = Projection(size, random_state=self.random_state).fit(x)
            self._projection_cache: tuple[Any, Projection] | None = (x, proj)
            cached = (x, proj)
        return cached[1].truncated(int(n_components))

    def _train(self, z: Any, y: FloatArray, params: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        """Fit the network on model inputs ``z``; returns its weights and biases."""
        from sklearn.neural_network import MLPRegressor
        from threadpoolctl import threadpool_limits

        est = MLPRegressor(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes),
            alpha=float(params["alpha"]),
            max_iter=self.max_iter,
            early_stopping=False,
            random_state=self.random_state,
        )
        # Mini-batch products of a few hundred columns: BLAS threads cost more than they
        # save, and on a busy machine they make each step many times slower.
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*converge.*")
            est.fit(z, np.asarray(y, dtype=z.dtype))
        return list(est.coefs_), list(est.intercepts_)

    @staticmethod
    def _inputs(proj: Projection | None, x: Any) -> Any:
        if proj is None:
            return x
        return proj.transform(x).astype(np.float32)

    def _oof_all(
        self, x: Any, y: FloatArray, candidates: list[dict[str, Any]], folds: list[Any]
    ) -> tuple[list[FloatArray], FloatArray]:
        inputs: dict[int, Any] = {}
        for params in candidates:
            k = int(params["n_components"])
            if k not in inputs:
                inputs[k] = self._inputs(self._projection(x, k), x)
        prior_oof = np.empty_like(y)
        out = [np.empty_like(y) for _ in candidates]
        for train, val in folds:
            prior_oof[val] = y[train].mean(axis=0)
            for oof, params in zip(out, candidates, strict=True):
                z = inputs[int(params["n_components"])]
                coefs, intercepts = self._train(z[train], y[train], params)
                oof[val] = MLPHead(coefs, intercepts).predict(z[val])
        return out, prior_oof

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        proj = self._projection(x, int(params["n_components"]))
        self._projection_cache = None
        coefs, intercepts = self._train(self._inputs(proj, x), y, params)
        if proj is not None:
            coefs[0], intercepts[0] = proj.fold_into(
                np.asarray(coefs[0], dtype=np.float64), np.asarray(intercepts[0])
            )
        return MLPHead(coefs, intercepts)
