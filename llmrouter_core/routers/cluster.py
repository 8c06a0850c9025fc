"""Cluster router: the best models per region of query space.

Queries of one task or domain tend to favour the same models. The router clusters the training
queries (k-means on a dense projection of their features), keeps each cluster's mean score
per model, shrunk toward the pool-wide mean by ``shrinkage`` virtual queries, and routes a new
query by its nearest cluster centre. With few, well-separated clusters it recovers task-level
routing without task labels; the number of clusters is chosen by cross-validated AIQ.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.routers._zoo import ZooRouter, register_head
from llmrouter_core.routers.heads import Head, RowMatrix

__all__ = ["ClusterHead", "ClusterRouter", "TaskHead", "TaskRouter"]


@register_head
class ClusterHead(Head):
    """Nearest centre -> that cluster's (shrunk) mean scores."""

    kind = "cluster"

    def __init__(self, centers: FloatArray, means: FloatArray) -> None:
        self.centers = np.asarray(centers, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self._sq = np.sum(self.centers**2, axis=1)

    def assign(self, x: Any) -> Any:
        x = np.asarray(x, dtype=np.float64)
        return np.argmin(self._sq[None, :] - 2.0 * x @ self.centers.T, axis=1)

    def predict(self, x: Any) -> FloatArray:
        return np.asarray(self.means[self.assign(x)], dtype=np.float64)

    def get_state(self) -> dict[str, Any]:
        return {"centers": self.centers, "means": self.means}

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> ClusterHead:
        return cls(arrays["centers"], arrays["means"])


def fit_clusters(
    z: FloatArray, y: FloatArray, n_clusters: int, shrinkage: float, random_state: int
) -> ClusterHead:
    """k-means on ``z``; per-cluster mean scores shrunk toward the overall means."""
    from sklearn.cluster import KMeans

    k = max(1, min(int(n_clusters), z.shape[0]))
    km = KMeans(n_clusters=k, n_init=3, random_state=random_state).fit(z)
    labels = km.labels_
    prior = y.mean(axis=0)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros((k, y.shape[1]))
    np.add.at(sums, labels, y)
    means = (sums + shrinkage * prior) / (counts[:, None] + shrinkage)
    return ClusterHead(km.cluster_centers_, means)


class ClusterRouter(ZooRouter):
    """k-means clusters of the training queries, each with its models' mean scores.

    Args:
        n_clusters: Number of clusters (``None``: chosen by CV).
        shrinkage: Virtual queries with the pool-wide mean scores added to each cluster.
        n_components: Dense feature dimensions the clusters live in.
        cost_model, embedder, embedder_params, cv, blend, random_state: as
            :class:`~llmrouter_core.routers.irt.IRTRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("cluster", n_clusters=8).n_clusters
        8
    """

    name = "cluster"
    family = "cluster"
    dense_input = True
    standardize_inputs = False
    search_space = {"n_clusters": (3, 6, 12, 24, 48)}

    def __init__(
        self,
        *,
        n_clusters: int | None = None,
        shrinkage: float = 5.0,
        n_components: int = 64,
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
        self.n_clusters = n_clusters
        self.shrinkage = shrinkage
        self.n_components = n_components

    def _check_params(self) -> None:
        if self.n_clusters is not None and int(self.n_clusters) < 1:
            raise ValueError("n_clusters must be >= 1")
        if not float(self.shrinkage) >= 0:
            raise ValueError("shrinkage must be >= 0")

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        return fit_clusters(
            x, y, int(params["n_clusters"]), float(self.shrinkage), self.random_state
        )


@register_head
class TaskHead(Head):
    """Task probabilities from a linear classifier, mixing the tasks' mean scores.

    Probabilities are the softmax of the classifier's scores (for one-vs-rest logistic scores
    this ranks tasks as the normalised sigmoids do and keeps every task's weight positive).
    """

    kind = "task"

    def __init__(self, coef: Any, intercept: FloatArray, means: FloatArray) -> None:
        import scipy.sparse as sp

        coef = np.asarray(coef.toarray() if sp.issparse(coef) else coef, dtype=np.float32)
        self.coef: Any = sp.csr_matrix(coef) if np.mean(coef == 0) > 0.5 else coef
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)

    @cached_property
    def _rows(self) -> RowMatrix:
        return RowMatrix(self.coef)

    def row_matrices(self) -> list[RowMatrix]:
        return [self._rows]

    def task_probabilities(self, x: Any) -> FloatArray:
        s = self._rows.rmatmul(x) + self.intercept
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        return np.asarray(p / p.sum(axis=1, keepdims=True), dtype=np.float64)

    def predict(self, x: Any) -> FloatArray:
        return np.asarray(self.task_probabilities(x) @ self.means, dtype=np.float64)

    def get_state(self) -> dict[str, Any]:
        from llmrouter_core.routers.heads import _pack_matrix

        return {**_pack_matrix("coef", self.coef), "intercept": self.intercept, "means": self.means}

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> TaskHead:
        from llmrouter_core.routers.heads import _unpack_matrix

        return cls(_unpack_matrix("coef", arrays), arrays["intercept"], arrays["means"])


def fit_task_head(
    x: Any, y: FloatArray, tasks: np.ndarray, alpha: float, shrinkage: float, random_state: int
) -> TaskHead:
    """Task classifier (logistic loss, SGD) + per-task mean scores shrunk toward the overall
    means."""
    from sklearn.linear_model import SGDClassifier

    names, codes = np.unique(tasks, return_inverse=True)
    k, m = len(names), y.shape[1]
    prior = y.mean(axis=0)
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    sums = np.zeros((k, m))
    np.add.at(sums, codes, y)
    means = (sums + shrinkage * prior) / (counts[:, None] + shrinkage)
    if k == 1:
        return TaskHead(np.zeros((x.shape[1], 1)), np.zeros(1), means)
    clf = SGDClassifier(
        loss="log_loss", alpha=alpha, max_iter=20, tol=None, random_state=random_state
    ).fit(x, codes)
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    if k == 2:  # binary: one score column for class 1
        coef = np.vstack([-coef, coef]) / 2.0
        intercept = np.concatenate([-intercept, intercept]) / 2.0
    return TaskHead(coef.T, intercept, means)


class TaskRouter(ZooRouter):
    """Task-aware routing: a classifier of the training queries' task labels, mixing each
    task's mean model scores by the predicted task probabilities.

    The task labels are read from the training data only (``data.tasks``); routing needs the
    query text alone. Without task labels, the k-means clusters of :class:`ClusterRouter`
    stand in for tasks.

    Args:
        alpha: L2 penalty of the task classifier (``None``: chosen by CV).
        shrinkage: Virtual queries with the pool-wide mean scores added to each task.
        n_clusters: Clusters used when the data has no task labels.
        cost_model, embedder, embedder_params, cv, blend, random_state: as
            :class:`~llmrouter_core.routers.irt.IRTRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("task", alpha=1e-5).alpha
        1e-05
    """

    name = "task"
    family = "cluster"
    search_space = {"alpha": (1e-6, 1e-5, 1e-4)}

    def __init__(
        self,
        *,
        alpha: float | None = None,
        shrinkage: float = 5.0,
        n_clusters: int = 12,
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
        self.alpha = alpha
        self.shrinkage = shrinkage
        self.n_clusters = n_clusters

    def _check_params(self) -> None:
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ValueError("alpha must be > 0")
        if not float(self.shrinkage) >= 0:
            raise ValueError("shrinkage must be >= 0")

    def _prepare(self, data: Any) -> None:
        if data.tasks is not None:
            self._tasks: np.ndarray | None = np.asarray(data.tasks, dtype=object).astype(str)
        else:
            self._tasks = None
        self._n_rows = data.n_queries

    def _labels(self, x: Any, rows: Any) -> np.ndarray:
        if self._tasks is not None:
            return np.asarray(self._tasks[rows])
        # No task labels: k-means clusters of a dense projection stand in for tasks.
        from sklearn.cluster import KMeans

        from llmrouter_core.routers._zoo import Projector

        z = Projector(32, random_state=self.random_state, standardize=False).fit(x[rows])
        k = max(1, min(int(self.n_clusters), len(rows)))
        km = KMeans(n_clusters=k, n_init=3, random_state=self.random_state)
        return np.asarray(km.fit_predict(z.transform(x[rows])).astype(str))

    def _fit_rows(self, x: Any, y: FloatArray, rows: Any, params: dict[str, Any]) -> Head:
        return fit_task_head(
            x[rows],
            y[rows],
            self._labels(x, rows),
            float(params["alpha"]),
            float(self.shrinkage),
            self.random_state,
        )

    def _oof_all(
        self, x: Any, y: FloatArray, candidates: list[dict[str, Any]], folds: list[Any]
    ) -> tuple[list[FloatArray], FloatArray]:
        prior_oof = np.empty_like(y)
        out = [np.empty_like(y) for _ in candidates]
        for train, val in folds:
            prior_oof[val] = y[train].mean(axis=0)
            for i, params in enumerate(candidates):
                out[i][val] = self._fit_rows(x, y, train, params).predict(x[val])
        return out, prior_oof

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        if x.shape[0] != self._n_rows:
            raise ValueError("the task router fits heads on the whole training data only")
        return self._fit_rows(x, y, np.arange(x.shape[0]), params)
