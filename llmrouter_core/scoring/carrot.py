"""CARROT: a plug-in router that predicts quality and cost separately.

CARROT (Somerstep et al., 2025, "a cost aware rate optimal router") estimates, for each pool
model, the expected quality *and* the expected cost of answering the query, each with its own
regressor on the query embedding, and picks the model with the best trade-off
``quality - lambda x cost``; with good estimators this plug-in rule is minimax rate-optimal.

Here the quality estimator is k nearest neighbours or ridge regression (the estimator and its
hyperparameter chosen together by cross-validated AIQ), and the cost estimator is
:class:`~llmrouter_core.training.costs.FeatureCostModel`: the prompt-length cost model corrected,
per model, by a ridge regression of the log-cost on the query features (code questions get
long answers, multiple-choice questions one letter). The cost estimator is the one every zoo
router uses by default; ``carrot`` is the family where it is the point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, Folds, HeadScorer
from llmrouter_core.scoring.heads import Head, KNNHead, LinearHead

__all__ = ["CarrotScorer"]

ESTIMATORS = ("knn", "linear")
_KNN_GRID = (25, 50, 100, 200)
_RIDGE_GRID = (3.0, 10.0, 30.0)


class CarrotScorer(HeadScorer):
    """CARROT's quality estimator: kNN or ridge, chosen with its hyperparameter by CV (its
    cost estimator is the router's ``cost_model="features"``).

    Args:
        estimator: ``"knn"`` or ``"linear"`` (``None``: chosen by CV).
        n_neighbors: k of the kNN estimator (``None``: chosen by CV).
        alpha: Ridge strength of the linear estimator (``None``: chosen by CV).

    Example:
        >>> CarrotScorer(estimator="knn").estimator
        'knn'
    """

    def __init__(
        self,
        estimator: str | None = None,
        n_neighbors: int | None = None,
        alpha: float | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_neighbors = n_neighbors
        self.alpha = alpha

    def check_params(self) -> None:
        if self.estimator is not None and self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.n_neighbors is not None and int(self.n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors!r}")
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")

    def candidates(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.estimator in (None, "knn"):
            ks = _KNN_GRID if self.n_neighbors is None else (int(self.n_neighbors),)
            out += [{"estimator": "knn", "n_neighbors": k} for k in ks]
        if self.estimator in (None, "linear"):
            alphas = _RIDGE_GRID if self.alpha is None else (float(self.alpha),)
            out += [{"estimator": "linear", "alpha": a} for a in alphas]
        return out

    def oof_predictions(
        self,
        X: Any,
        Y: FloatArray,
        candidates: list[dict[str, Any]],
        folds: Folds,
        context: FitContext,
    ) -> list[FloatArray]:
        # kNN similarities of a fold do not depend on k: compute them once per fold.
        out = [np.empty_like(Y) for _ in candidates]
        for train, val in folds:
            knn = [i for i, c in enumerate(candidates) if c["estimator"] == "knn"]
            if knn:
                head = KNNHead(X[train], Y[train], k=1, alpha=1.0)
                sims = head.similarities(X[val])
                for i in knn:
                    head.k = int(candidates[i]["n_neighbors"])
                    out[i][val] = head.predict_from_similarities(sims)
            for i, params in enumerate(candidates):
                if params["estimator"] == "linear":
                    out[i][val] = self.fit_head(X[train], Y[train], params, context).predict(X[val])
        return out

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        if params["estimator"] == "knn":
            return KNNHead(X, Y, k=int(params["n_neighbors"]), alpha=1.0)
        from sklearn.linear_model import Ridge

        est = Ridge(alpha=float(params["alpha"])).fit(X, Y)
        coef = np.asarray(est.coef_, dtype=np.float64).reshape(Y.shape[1], -1).T
        return LinearHead(coef, np.asarray(est.intercept_).reshape(-1), link="identity")
