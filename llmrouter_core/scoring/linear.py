"""Linear scorers: one linear model per pool model on the query features.

=========  ===========================================================  ==================
scorer     estimator                                                    hyperparameters
=========  ===========================================================  ==================
ridge      ridge regression (``sklearn.linear_model.Ridge``'s problem)   ``alpha``
logistic   soft-label logistic regression (liblinear's problem)         ``C``
svm        ``sklearn.svm.LinearSVR``                                    ``C``, ``epsilon``
=========  ===========================================================  ==================

Every model's full score column is learned (ties included). Ridge and logistic are solved for
all pool models (and, in cross-validation, all penalties) at once by the batched solvers of
:mod:`llmrouter_core.training.solvers`; the SVR sees only the feature columns that occur in
training.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, Folds, HeadScorer, Tags, fold_loop
from llmrouter_core.scoring.heads import Head, LinearHead
from llmrouter_core.training.solvers import Design, ridge_path, soft_logistic_path

__all__ = ["LogisticScorer", "RidgeScorer", "SVMScorer", "logistic_heads", "ridge_heads"]


def ridge_heads(x: Any, y: FloatArray, alphas: Sequence[float]) -> list[LinearHead]:
    """Ridge heads (intercept unpenalised, as ``sklearn.linear_model.Ridge``) for every
    ``alpha``, all models and penalties solved together."""
    fits = ridge_path(Design(x), y, alphas)
    return [LinearHead(coef, intercept, link="identity") for coef, intercept in fits]


def logistic_heads(x: Any, y: FloatArray, cs: Sequence[float]) -> list[LinearHead]:
    """Soft-label logistic heads for every ``C`` (liblinear's ``LogisticRegression(C=C)`` on
    each query counted as a positive of weight ``y`` and a negative of weight ``1 - y``), all
    models solved together along the ``C`` path."""
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


class _PathScorer(HeadScorer):
    """A linear scorer fitted for every penalty of a path at once."""

    penalty: str = ""

    def _path(self, x: Any, y: FloatArray, values: list[float]) -> list[LinearHead]:
        raise NotImplementedError  # pragma: no cover - abstract

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        return self._path(X, Y, [float(params[self.penalty])])[0]

    def oof_predictions(
        self,
        X: Any,
        Y: FloatArray,
        candidates: list[dict[str, Any]],
        folds: Folds,
        context: FitContext,
    ) -> list[FloatArray]:
        # One solve per fold covers every model and every penalty.
        values = [float(p[self.penalty]) for p in candidates]

        def fold(train: Any, val: Any) -> list[FloatArray]:
            return [h.predict(X[val]) for h in self._path(X[train], Y[train], values)]

        return fold_loop(folds, Y, len(candidates), fold)


class RidgeScorer(_PathScorer):
    """Ridge regression of each model's score on the query features.

    Args:
        alpha: Ridge strength (``None``: chosen by cross-validation).

    Example:
        >>> RidgeScorer(alpha=3.0).alpha
        3.0
    """

    search_space = {"alpha": (1.0, 3.0, 10.0, 30.0, 100.0)}
    penalty = "alpha"

    def __init__(self, alpha: float | None = None) -> None:
        self.alpha = alpha

    def check_params(self) -> None:
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")

    def _path(self, x: Any, y: FloatArray, values: list[float]) -> list[LinearHead]:
        return ridge_heads(x, y, values)


class LogisticScorer(_PathScorer):
    """Logistic regression per model on soft labels (P(model answers well | query)).

    Args:
        C: Inverse regularisation strength (``None``: chosen by cross-validation).
    """

    search_space = {"C": (0.3, 1.0, 3.0)}
    penalty = "C"

    def __init__(self, C: float | None = None) -> None:
        self.C = C

    def check_params(self) -> None:
        if self.C is not None and not float(self.C) > 0:
            raise ValueError(f"C must be > 0, got {self.C!r}")

    def _path(self, x: Any, y: FloatArray, values: list[float]) -> list[LinearHead]:
        return logistic_heads(x, y, values)


class SVMScorer(HeadScorer):
    """Linear support-vector regression (epsilon-insensitive) of each model's score.

    Args:
        C: Inverse regularisation strength (``None``: chosen by cross-validation).
        epsilon: Width of the insensitive tube.
    """

    search_space = {"C": (0.03, 0.1, 0.3, 1.0)}
    tags = Tags(deterministic=True)

    def __init__(self, C: float | None = None, epsilon: float = 0.1) -> None:
        self.C = C
        self.epsilon = epsilon

    def check_params(self) -> None:
        if self.C is not None and not float(self.C) > 0:
            raise ValueError(f"C must be > 0, got {self.C!r}")
        if not float(self.epsilon) >= 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon!r}")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        from sklearn.svm import LinearSVR

        # Only the feature columns that occur in the training rows can get a weight: with
        # 2**18 hashed columns, a generic solver would spend most of its time on the others.
        design = Design(X)
        m = Y.shape[1]
        w = np.zeros((design.dim, m))
        intercept = np.zeros(m)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*converge.*")
            for j in range(m):
                col = Y[:, j]
                lo, hi = float(col.min()), float(col.max())
                if hi - lo < 1e-12:  # constant column: nothing to learn
                    intercept[j] = lo
                    continue
                est = LinearSVR(
                    C=float(params["C"]),
                    epsilon=float(self.epsilon),
                    max_iter=5000,
                    dual=True,
                    random_state=context.random_state,
                ).fit(design.x, col)
                w[:, j] = np.ravel(est.coef_)
                intercept[j] = float(np.ravel(est.intercept_)[0])
        coef, _ = design.unpack(w)
        return LinearHead(coef, intercept, link="identity")
