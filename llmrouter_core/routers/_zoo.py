"""Machinery shared by the router zoo (one module per algorithm family builds on it).

* :class:`FeatureCostModel` predicts each model's cost per query from the query's features
  (CARROT's separate cost predictor): the token-linear :class:`~.costs.CostModel` corrected by
  a ridge regression of the log-cost residual, per model, with the strength (or "no
  correction") chosen by cross-validation. Answer length differs by task (code answers are
  long, multiple-choice answers are one letter), which the prompt's length alone cannot tell.
* :class:`Projector` turns sparse hashed features into a few dense dimensions (truncated SVD
  over the features seen in at least two training queries) for the families that learn
  latent vectors (MF, IRT, graph, contrastive, bandit).
* :class:`ZooRouter` is the base of the zoo's routers: a :class:`SupervisedRouter` (embedder,
  cross-validated hyperparameters and prior blend, array heads) that featurises once per call,
  predicts cost with the feature cost model, and saves heads defined outside ``heads.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.routers.base import Arrays, _check_queries
from llmrouter_core.routers.costs import CostModel
from llmrouter_core.routers.heads import (
    Head,
    RowGroup,
    RowMatrix,
    _pack_matrix,
    _unpack_matrix,
    clip_inplace,
    head_from_state,
)
from llmrouter_core.routers.selection import kfold
from llmrouter_core.routers.supervised import SupervisedRouter

__all__ = [
    "COST_MODELS",
    "FeatureCostModel",
    "Projector",
    "ZooRouter",
    "import_torch",
    "load_head",
    "logit",
    "minimize_lbfgs",
    "register_head",
    "sigmoid",
    "soft_bce",
]

logger = logging.getLogger(__name__)

#: Values of the zoo routers' ``cost_model`` hyperparameter.
COST_MODELS = ("features", "tokens")

# -- heads defined by the zoo modules ------------------------------------------------------

_ZOO_HEADS: dict[str, type[Head]] = {}
# Kinds -> modules that define them, so a saved stack loads without importing every family.
_HEAD_MODULES = {
    "irt": "llmrouter_core.routers.irt",
    "mf": "llmrouter_core.routers.mf",
    "sw-ranking": "llmrouter_core.routers.elo",
    "graph": "llmrouter_core.routers.graph",
    "encoder": "llmrouter_core.routers.encoder",
    "contrastive": "llmrouter_core.routers.contrastive",
    "bandit": "llmrouter_core.routers.bandit",
    "cluster": "llmrouter_core.routers.cluster",
    "task": "llmrouter_core.routers.cluster",
    "hybrid": "llmrouter_core.routers.hybrid",
    "zoo-stack": "llmrouter_core.routers.ensemble",
    "projected": "llmrouter_core.routers._zoo",
}


def register_head(cls: type[Head]) -> type[Head]:
    """Class decorator: make a head kind loadable by :func:`load_head`."""
    _ZOO_HEADS[cls.kind] = cls
    return cls


def load_head(kind: str, arrays: dict[str, Any]) -> Head:
    """Rebuild a head of any kind (zoo or built-in) from its saved arrays."""
    if kind not in _ZOO_HEADS and kind in _HEAD_MODULES:
        import importlib

        importlib.import_module(_HEAD_MODULES[kind])
    if kind in _ZOO_HEADS:
        head: Head = _ZOO_HEADS[kind].from_state(arrays)  # type: ignore[attr-defined]
        return head
    return head_from_state(kind, arrays)


def sub_arrays(arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The arrays under ``prefix`` with the prefix removed."""
    n = len(prefix)
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix)}


# -- numerics --------------------------------------------------------------------------------


def sigmoid(z: npt.NDArray[Any]) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0))), dtype=np.float64)


def logit(p: npt.NDArray[Any] | float, eps: float = 1e-4) -> Any:
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p / (1.0 - p))


def soft_bce(z: FloatArray, y: FloatArray) -> tuple[float, FloatArray]:
    """Sum of soft-label logistic losses of logits ``z`` against targets ``y`` in [0, 1], and
    its gradient with respect to ``z``."""
    # log(1 + e^z) - y z, computed stably.
    loss = float(np.sum(np.logaddexp(0.0, z) - y * z))
    return loss, sigmoid(z) - y


def minimize_lbfgs(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    max_iter: int,
    memory: int = 10,
    tol: float = 1e-6,
) -> FloatArray:
    """Minimise a smooth function given as ``fun(x) -> (value, gradient)`` with L-BFGS.

    A small numpy implementation (two-loop recursion, backtracking Armijo line search): the
    problems here have a few hundred to a few thousand parameters, where the per-iteration
    overhead of a general-purpose optimiser dominates. Deterministic for a given ``x0``.
    """
    from threadpoolctl import threadpool_limits

    # Many small matrix products: BLAS threads cost more than they save (and on a shared
    # machine they can make each product several times slower).
    with threadpool_limits(limits=1, user_api="blas"):
        return _lbfgs(fun, x0, max_iter, memory, tol)


def _lbfgs(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    max_iter: int,
    memory: int,
    tol: float,
) -> FloatArray:
    x = np.array(x0, dtype=np.float64)
    f, g = fun(x)
    s_hist: list[FloatArray] = []
    y_hist: list[FloatArray] = []
    scale0 = max(1.0, abs(f))
    for _ in range(int(max_iter)):
        gnorm = float(np.max(np.abs(g))) if g.size else 0.0
        if gnorm <= tol:
            break
        # Two-loop recursion: d = -H g.
        q = g.copy()
        alphas = []
        for s_k, y_k in zip(reversed(s_hist), reversed(y_hist), strict=True):
            rho = 1.0 / float(y_k @ s_k)
            a = rho * float(s_k @ q)
            alphas.append((a, rho))
            q -= a * y_k
        if s_hist:
            q *= float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
        else:
            q /= max(gnorm, 1.0)
        for (a, rho), s_k, y_k in zip(reversed(alphas), s_hist, y_hist, strict=True):
            b = rho * float(y_k @ q)
            q += (a - b) * s_k
        d = -q
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            d = -g / max(gnorm, 1.0)
            slope = float(g @ d)
        step = 1.0
        for _ls in range(30):
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s_k = x_new - x
        y_k = g_new - g
        if float(s_k @ y_k) > 1e-12:
            s_hist.append(s_k)
            y_hist.append(y_k)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        improvement = f - f_new
        x, f, g = x_new, f_new, g_new
        if improvement <= 1e-10 * scale0:
            break
    return x


def import_torch(what: str, random_state: int, num_threads: int | None = 1) -> Any:
    """Import torch lazily (the ``torch`` extra), seed it and cap its threads.

    One thread by default: the networks here are small, and intra-op threads that spin while
    waiting make training many times slower on a busy machine.

    Raises:
        MissingExtraError: torch is not installed.
    """
    try:
        import torch
    except ImportError:
        from llmrouter_core.errors import MissingExtraError

        raise MissingExtraError("torch", "torch", what) from None
    torch.manual_seed(int(random_state))
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    return torch


# -- features --------------------------------------------------------------------------------


class Projector:
    """Sparse or wide features -> ``n_components`` standardised dense dimensions.

    Sparse input: truncated SVD over the columns that occur in at least ``min_df`` training
    rows (columns seen once carry no pattern to generalise from and would bloat the saved
    router). Dense input wider than ``n_components``: PCA; narrower: kept as is. Output columns
    are centred and scaled to unit variance on the training rows.
    """

    def __init__(
        self,
        n_components: int = 64,
        min_df: int = 2,
        random_state: int = 0,
        standardize: bool = True,
    ) -> None:
        self.n_components = int(n_components)
        self.min_df = int(min_df)
        self.random_state = int(random_state)
        self.standardize = bool(standardize)

    def fit(self, x: Any) -> Projector:
        n = x.shape[0]
        if sp.issparse(x):
            x = sp.csr_matrix(x)
            df = np.bincount(x.indices, minlength=x.shape[1])
            cols = np.flatnonzero(df >= self.min_df)
            if cols.size < 2:
                cols = np.flatnonzero(df >= 1)
            sub = x[:, cols]
            k = max(1, min(self.n_components, cols.size - 1, n - 1))
            from sklearn.decomposition import TruncatedSVD

            svd = TruncatedSVD(
                k, algorithm="randomized", n_iter=2, random_state=self.random_state
            ).fit(sub)
            self.cols_: npt.NDArray[np.int64] | None = cols.astype(np.int64)
            self.components_ = np.asarray(svd.components_.T, dtype=np.float32)  # (cols, k)
            self.mean_in_: FloatArray | None = None
        else:
            x = np.asarray(x, dtype=np.float64)
            self.cols_ = None
            if x.shape[1] > self.n_components and n > self.n_components:
                mean = x.mean(axis=0)
                _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
                self.components_ = np.asarray(vt[: self.n_components].T, dtype=np.float32)
                self.mean_in_ = mean
            else:
                self.components_ = np.eye(x.shape[1], dtype=np.float32)
                self.mean_in_ = None
        z = self._raw(x)
        self.shift_ = z.mean(axis=0)
        self.scale_ = np.maximum(z.std(axis=0), 1e-6)
        if not self.standardize:  # keep the geometry (e.g. for clustering); centre only
            self.scale_ = np.ones_like(self.scale_)
        return self

    @cached_property
    def _rows(self) -> RowMatrix:
        assert self.cols_ is not None
        d = int(self.cols_.max()) + 1 if self.cols_.size else 0
        return RowMatrix(self.components_, rows=self.cols_, d=d)

    def _raw(self, x: Any) -> FloatArray:
        if self.cols_ is not None:
            if not sp.issparse(x):
                x = sp.csr_matrix(x)
            return self._rows.rmatmul(x)
        x = np.asarray(x, dtype=np.float64)
        if self.mean_in_ is not None:
            x = x - self.mean_in_
        return np.asarray(x @ self.components_, dtype=np.float64)

    def transform(self, x: Any) -> FloatArray:
        out: FloatArray = self._raw(x) - self.shift_
        out /= self.scale_
        return out

    def row_matrices(self) -> list[RowMatrix]:
        """The sparse-input product's matrix (none for dense input)."""
        return [] if self.cols_ is None else [self._rows]

    @property
    def dim(self) -> int:
        return int(self.components_.shape[1])

    def get_state(self) -> Arrays:
        out: Arrays = {
            "components": self.components_,
            "shift": self.shift_,
            "scale": self.scale_,
        }
        if self.cols_ is not None:
            out["cols"] = self.cols_
        if self.mean_in_ is not None:
            out["mean_in"] = self.mean_in_
        return out

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> Projector:
        obj = cls(n_components=int(np.asarray(arrays["components"]).shape[1]))
        obj.components_ = np.asarray(arrays["components"], dtype=np.float32)
        obj.shift_ = np.asarray(arrays["shift"], dtype=np.float64)
        obj.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
        obj.cols_ = np.asarray(arrays["cols"], dtype=np.int64) if "cols" in arrays else None
        obj.mean_in_ = (
            np.asarray(arrays["mean_in"], dtype=np.float64) if "mean_in" in arrays else None
        )
        return obj


@register_head
class ProjectedHead(Head):
    """A head that reads :class:`Projector` output (lets a stack mix sparse and dense heads)."""

    kind = "projected"

    def __init__(self, projector: Projector, head: Head) -> None:
        self.projector = projector
        self.head = head

    def predict(self, x: Any) -> FloatArray:
        return self.head.predict(self.projector.transform(x))

    def row_matrices(self) -> list[RowMatrix]:
        return self.projector.row_matrices()

    def get_state(self) -> Arrays:
        out: Arrays = {f"proj/{k}": v for k, v in self.projector.get_state().items()}
        out.update({f"head/{k}": v for k, v in self.head.get_state().items()})
        out["kind"] = np.frombuffer(self.head.kind.encode("ascii"), dtype=np.uint8)
        return out

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> ProjectedHead:
        kind = bytes(np.asarray(arrays["kind"], dtype=np.uint8)).decode("ascii")
        return cls(
            Projector.from_state(sub_arrays(arrays, "proj/")),
            load_head(kind, sub_arrays(arrays, "head/")),
        )


# -- cost ---------------------------------------------------------------------------------------


class FeatureCostModel(CostModel):
    """Per-query cost per model from the query's features (CARROT's cost predictor).

    ``log cost = log(token-linear cost) + x @ w_model + b_model``: the residual of the
    :class:`CostModel` on the log scale, regressed on the router's query features by ridge. For
    each model the ridge strength, or no correction at all, is chosen by K-fold
    cross-validation of the mean absolute cost error on the training queries, so the correction
    is only used where it predicts better (e.g. never when costs follow the prompt length
    exactly). Predictions are clipped to the range of costs seen in training.

    Args:
        alphas: Ridge strengths to try.
        cv: Folds.
        random_state: Seed of the folds.
    """

    def __init__(
        self,
        alphas: Sequence[float] = (1.0, 10.0),
        cv: int = 3,
        random_state: int = 0,
    ) -> None:
        super().__init__(per_query=True)
        self.alphas = tuple(float(a) for a in alphas)
        self.cv = cv
        self.random_state = random_state

    @staticmethod
    def _ridge(x: Any, r: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
        """Multi-output ridge with intercept; returns (coef (d, m), intercept (m,))."""
        from sklearn.linear_model import Ridge

        est = Ridge(alpha=alpha, fit_intercept=True, solver="auto").fit(x, r)
        coef = np.asarray(est.coef_, dtype=np.float64).reshape(r.shape[1], -1).T
        return coef, np.asarray(est.intercept_, dtype=np.float64).reshape(-1)

    def fit_features(self, data: RoutingData, x: Any) -> FeatureCostModel:
        """Fit on the training data and the router's features ``x`` of its queries."""
        super().fit(data)
        costs = data.require_costs()
        base = super().predict(data.queries)
        floor = max(float(costs[costs > 0].min()) if np.any(costs > 0) else 1e-12, 1e-12) * 1e-3
        resid = np.log(np.maximum(costs, floor)) - np.log(np.maximum(base, floor))
        m = costs.shape[1]
        n = data.n_queries
        # Cross-validated mean absolute error per model: index 0 = no correction.
        errors = np.zeros((len(self.alphas) + 1, m))
        # Costs that follow the prompt length (and model) exactly leave nothing to learn.
        learnable = float(np.max(np.abs(resid - resid.mean(axis=0)))) > 1e-3
        if learnable and n >= 2 * max(self.cv, 2):
            for tr, va in kfold(n, self.cv, self.random_state):
                errors[0] += np.abs(base[va] - costs[va]).sum(axis=0)
                smear_base = None
                for a_i, alpha in enumerate(self.alphas, start=1):
                    coef, icpt = self._ridge(x[tr], resid[tr], alpha)
                    fit_tr = _dense(x[tr] @ coef) + icpt
                    smear_base = np.log(np.mean(np.exp(resid[tr] - fit_tr), axis=0))
                    pred = base[va] * np.exp(_dense(x[va] @ coef) + icpt + smear_base)
                    pred = np.clip(pred, self.low_, self.high_)
                    errors[a_i] += np.abs(pred - costs[va]).sum(axis=0)
        choice = np.argmin(errors, axis=0)  # ties (incl. too little data) -> no correction
        d = x.shape[1]
        coef_all = np.zeros((d, m))
        icpt_all = np.zeros(m)
        for a_i in sorted(set(choice.tolist()) - {0}):
            cols = np.flatnonzero(choice == a_i)
            coef, icpt = self._ridge(x, resid[:, cols], self.alphas[a_i - 1])
            fit = _dense(x @ coef) + icpt
            icpt = icpt + np.log(np.mean(np.exp(resid[:, cols] - fit), axis=0))
            coef_all[:, cols] = coef
            icpt_all[cols] = icpt
        self.alpha_choice_ = [None if c == 0 else self.alphas[c - 1] for c in choice]
        coef32 = coef_all.astype(np.float32)
        self.coef_: Any = sp.csr_matrix(coef32) if np.mean(coef32 == 0) > 0.5 else coef32
        self.resid_intercept_ = icpt_all
        return self

    def predict_features(self, queries: Sequence[str], x: Any) -> FloatArray:
        """Cost predictions given the queries and their features."""
        base = super().predict(queries)
        corr = self._rows.rmatmul(x) + self.resid_intercept_
        np.exp(corr, out=corr)
        corr *= base  # base * exp(corr)
        return clip_inplace(corr, self.low_, self.high_)

    @cached_property
    def _rows(self) -> RowMatrix:
        return RowMatrix(self.coef_)

    def extra_state(self) -> Arrays:
        return {**_pack_matrix("coef", self.coef_), "resid_intercept": self.resid_intercept_}

    @classmethod
    def from_parts(cls, base: CostModel, extra: dict[str, Any]) -> FeatureCostModel:
        obj = cls()
        obj.intercept_, obj.slope_ = base.intercept_, base.slope_
        obj.low_, obj.high_ = base.low_, base.high_
        obj.coef_ = _unpack_matrix("coef", extra)
        obj.resid_intercept_ = np.asarray(extra["resid_intercept"], dtype=np.float64)
        return obj


def _dense(a: Any) -> FloatArray:
    if sp.issparse(a):
        a = a.toarray()
    return np.asarray(a, dtype=np.float64)


# -- the base router ----------------------------------------------------------------------------


class ZooRouter(SupervisedRouter):
    """Base of the zoo routers (not registered itself).

    Adds to :class:`SupervisedRouter`: per-query costs from the query features
    (``cost_model="features"``, see :class:`FeatureCostModel`; ``"tokens"`` keeps the
    token-linear model), one featurisation per call shared by quality and cost, an optional
    dense projection of the features (:attr:`dense_input` families), and persistence of the
    zoo's own heads.
    """

    #: Families that learn latent vectors read :class:`Projector` output.
    dense_input: ClassVar[bool] = False
    #: Whether the projected dimensions are scaled to unit variance.
    standardize_inputs: ClassVar[bool] = True

    projector_: Projector | None

    def __init__(
        self,
        *,
        cost_model: str = "features",
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
        self.cost_model = cost_model

    # -- training ----------------------------------------------------------
    def _inputs(self, x: Any) -> Any:
        """Model input from embedder output (the projection for dense families)."""
        return x if self.projector_ is None else self.projector_.transform(x)

    def _fit(self, data: RoutingData) -> None:
        try:
            self._fit_all(data)
        except BaseException:
            # A failed fit leaves no half-fitted router behind (the base class has already
            # set models_ and the cost model).
            for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
                delattr(self, attr)
            raise

    def _fit_all(self, data: RoutingData) -> None:
        if self.cost_model not in COST_MODELS:
            raise ValueError(f"cost_model must be one of {COST_MODELS}, got {self.cost_model!r}")
        if self.blend is not None and not 0.0 <= self.blend <= 1.0:
            raise ValueError("blend must be in [0, 1] or None")
        self._check_params()
        self.embedder_ = self._make_embedder().fit(data.queries)
        x = self.embedder_.transform(data.queries)
        if self.cost_model == "features":
            self.cost_model_ = FeatureCostModel(random_state=self.random_state).fit_features(
                data, x
            )
        self.projector_ = None
        if self.dense_input:
            self.projector_ = Projector(
                int(getattr(self, "n_components", 64)),
                random_state=self.random_state,
                standardize=self.standardize_inputs,
            ).fit(x)
        z = self._inputs(x)
        self._train_cost: FloatArray | None = self._cost_from(data.queries, x)
        try:
            self._fit_inputs(z, data)
            # The knob's calibration (base class, right after this) runs on the training
            # queries: keep their predictions so they are not featurised a second time.
            assert self._train_cost is not None
            self._calibration_cache: tuple[FloatArray, FloatArray, list[str]] | None = (
                self._train_quality(z),
                self._train_cost,
                data.queries,
            )
        finally:
            self._train_cost = None

    def _train_quality(self, z: Any) -> FloatArray:
        """Predicted quality of the training queries, from their model inputs ``z``."""
        return self._quality_from_inputs(z)

    def _calibrate(self, queries: Sequence[str]) -> dict[str, list[float]]:
        cached = getattr(self, "_calibration_cache", None)
        self._calibration_cache = None
        if cached is not None and cached[2] is queries:
            self._predict_override: tuple[FloatArray, FloatArray] | None = (cached[0], cached[1])
        try:
            return super()._calibrate(queries)
        finally:
            self._predict_override = None

    def _check_params(self) -> None:
        """Validate hyperparameters (raise ``ValueError``); hook for subclasses."""

    def _prepare(self, data: RoutingData) -> None:
        """Learn data-level settings the heads need (hook; called before any head is fit,
        also when the router is a member of a stack)."""

    def _fit_inputs(self, z: Any, data: RoutingData) -> None:
        """Select hyperparameters and the prior blend by CV, then fit the head on ``z``."""
        self._prepare(data)
        y = data.scores
        self.prior_ = y.mean(axis=0)
        candidates = self._candidates()
        needs_cv = len(candidates) > 1 or self.blend is None
        if needs_cv and data.n_queries >= 2 * max(self.cv, 2):
            best_params, best_blend, report = self._select(z, data, candidates)
        else:
            best_params = candidates[0]
            best_blend = self.blend if self.blend is not None else 1.0
            report = []
        self.best_params_ = best_params
        self.blend_ = float(best_blend)
        self.cv_results_ = report
        self.head_ = self._fit_head(z, y, best_params)

    def _train_cost_predictions(self, data: RoutingData) -> FloatArray:
        cached = getattr(self, "_train_cost", None)
        if cached is not None and cached.shape == data.scores.shape:
            return np.asarray(cached)
        return self.predict_cost(data.queries)

    # -- prediction --------------------------------------------------------
    def _quality_from_inputs(self, z: Any) -> FloatArray:
        q = self.head_.predict(z)
        if self.blend_ < 1.0:
            q = self.blend_ * q + (1.0 - self.blend_) * self.prior_
        return clip_inplace(np.array(q, dtype=np.float64), 0.0, 1.0)

    def _cost_from(self, queries: Sequence[str], x: Any) -> FloatArray:
        if isinstance(self.cost_model_, FeatureCostModel):
            return self.cost_model_.predict_features(queries, x)
        return self.cost_model_.predict(queries)

    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:
        return self._quality_from_inputs(self._inputs(self.embedder_.transform(queries)))

    def predict_cost(self, queries: Sequence[str]) -> FloatArray:
        self._check_fitted()
        queries = _check_queries(queries)
        if isinstance(self.cost_model_, FeatureCostModel):
            return self._cost_from(queries, self.embedder_.transform(queries))
        return self.cost_model_.predict(queries)

    def predict(self, queries: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        self._check_fitted()
        override = getattr(self, "_predict_override", None)
        if override is not None:  # the training queries, during fit (see _calibrate)
            return override[0], override[1]
        queries = _check_queries(queries)
        if self.__dict__.get("_fused_head") is not self.head_:
            self._fuse_rows()
        x = self.embedder_.transform(queries)
        return self._quality_from_inputs(self._inputs(x)), self._cost_from(queries, x)

    def _fuse_rows(self) -> None:
        """Put the linear maps that :meth:`predict` applies to the embedder's output (the
        projection or the head's own, and the cost correction) into one :class:`RowGroup`,
        so one query's features go through one product instead of one per map."""
        mats = (
            self.projector_.row_matrices()
            if self.projector_ is not None
            else self.head_.row_matrices()
        )
        if isinstance(self.cost_model_, FeatureCostModel):
            mats = [*mats, self.cost_model_._rows]
        sparse = bool(getattr(self.embedder_, "sparse", False))
        if sparse and len({id(m) for m in mats}) == len(mats) > 1:
            # Frequent features (low IDF) first: the rows most queries read lie together.
            idf = getattr(self.embedder_, "idf_", None)
            d = max(m.shape[0] for m in mats)
            RowGroup(mats, priority=idf if idf is not None and len(idf) >= d else None)
        self._fused_head = self.head_

    # -- persistence -------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        meta, arrays = super()._get_state()
        if self.projector_ is not None:
            arrays.update({f"proj/{k}": v for k, v in self.projector_.get_state().items()})
        meta["feature_cost"] = isinstance(self.cost_model_, FeatureCostModel)
        if isinstance(self.cost_model_, FeatureCostModel):
            arrays.update({f"fcost/{k}": v for k, v in self.cost_model_.extra_state().items()})
        meta.update(self._extra_meta())
        return meta, arrays

    def _extra_meta(self) -> dict[str, Any]:
        """JSON-safe learned state beyond the head (hook for subclasses)."""
        return {}

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        from llmrouter_core.features import get_embedder

        emb = meta["embedder"]
        self.embedder_ = get_embedder(emb["name"], **emb["config"])
        self.embedder_.set_state(sub_arrays(arrays, "embedder/"))
        self.head_ = load_head(meta["head"], sub_arrays(arrays, "head/"))
        self.prior_ = np.asarray(arrays["prior"], dtype=np.float64)
        self.blend_ = float(meta["blend"])
        self.best_params_ = dict(meta["best_params"])
        proj = sub_arrays(arrays, "proj/")
        self.projector_ = Projector.from_state(proj) if proj else None
        if meta.get("feature_cost"):
            self.cost_model_ = FeatureCostModel.from_parts(
                self.cost_model_, sub_arrays(arrays, "fcost/")
            )
