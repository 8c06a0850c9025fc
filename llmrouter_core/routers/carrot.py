"""CARROT: a plug-in router that predicts quality and cost separately.

CARROT (Somerstep et al., 2025, "a cost aware rate optimal router") estimates, for each pool
model, the expected quality *and* the expected cost of answering the query, each with its own
regressor on the query embedding, and picks the model with the best trade-off
``quality - lambda x cost``; with good estimators this plug-in rule is minimax rate-optimal.

Here the quality estimator is k nearest neighbours or ridge regression (the estimator and its
hyperparameter chosen together by cross-validated AIQ), and the cost estimator is
:class:`~llmrouter_core.routers._zoo.FeatureCostModel`: the prompt-length cost model corrected,
per model, by a ridge regression of the log-cost on the query features (code questions get
long answers, multiple-choice questions one letter). The cost estimator is the one every zoo
router uses by default; ``carrot`` is the family where it is the point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.routers._zoo import FeatureCostModel, ZooRouter
from llmrouter_core.routers.heads import Head, KNNHead, LinearHead

__all__ = ["CarrotRouter", "FeatureCostModel"]

ESTIMATORS = ("knn", "linear")
_KNN_GRID = (25, 50, 100, 200)
_RIDGE_GRID = (3.0, 10.0, 30.0)


class CarrotRouter(ZooRouter):
    """Separate quality and cost estimators, plug-in choice of the best trade-off.

    Args:
        estimator: Quality estimator, ``"knn"`` or ``"linear"`` (``None``: chosen by CV with
            its hyperparameter).
        n_neighbors: k of the kNN estimator (``None``: chosen by CV).
        alpha: Ridge strength of the linear estimator (``None``: chosen by CV).
        cost_model: ``"features"`` (CARROT's cost estimator) or ``"tokens"``.
        embedder, embedder_params, cv, blend, random_state: as
            :class:`~llmrouter_core.routers.irt.IRTRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("carrot", estimator="knn").cost_model
        'features'
    """

    name = "carrot"
    family = "carrot"

    def __init__(
        self,
        *,
        estimator: str | None = None,
        n_neighbors: int | None = None,
        alpha: float | None = None,
        cost_model: str = "features",
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        blend: float | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            cost_model=cost_model,
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=blend,
            random_state=random_state,
        )
        self.estimator = estimator
        self.n_neighbors = n_neighbors
        self.alpha = alpha

    def _check_params(self) -> None:
        if self.estimator is not None and self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")

    def _candidates(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.estimator in (None, "knn"):
            ks = _KNN_GRID if self.n_neighbors is None else (int(self.n_neighbors),)
            out += [{"estimator": "knn", "n_neighbors": k} for k in ks]
        if self.estimator in (None, "linear"):
            alphas = _RIDGE_GRID if self.alpha is None else (float(self.alpha),)
            out += [{"estimator": "linear", "alpha": a} for a in alphas]
        return out

    def _oof_all(
        self, x: Any, y: FloatArray, candidates: list[dict[str, Any]], folds: list[Any]
    ) -> tuple[list[FloatArray], FloatArray]:
        # kNN similarities of a fold do not depend on k: compute them once per fold.
        prior_oof = np.empty_like(y)
        out = [np.empty_like(y) for _ in candidates]
        for train, val in folds:
            prior_oof[val] = y[train].mean(axis=0)
            knn = [i for i, c in enumerate(candidates) if c["estimator"] == "knn"]
            if knn:
                head = KNNHead(x[train], y[train], k=1, alpha=1.0)
                sims = head.similarities(x[val])
                for i in knn:
                    head.k = int(candidates[i]["n_neighbors"])
                    out[i][val] = head.predict_from_similarities(sims)
            for i, params in enumerate(candidates):
                if params["estimator"] == "linear":
                    out[i][val] = self._fit_head(x[train], y[train], params).predict(x[val])
        return out, prior_oof

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        if params["estimator"] == "knn":
            return KNNHead(x, y, k=int(params["n_neighbors"]), alpha=1.0)
        from sklearn.linear_model import Ridge

        est = Ridge(alpha=float(params["alpha"])).fit(x, y)
        coef = np.asarray(est.coef_, dtype=np.float64).reshape(y.shape[1], -1).T
        return LinearHead(coef, np.asarray(est.intercept_).reshape(-1), link="identity")
