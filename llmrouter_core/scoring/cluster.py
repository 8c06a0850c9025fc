"""Regions of query space: the best models per cluster, or per task.

* :class:`ClusterScorer`: k-means clusters of the training queries (on the centred dense
  projection of their features), each with its models' mean scores shrunk toward the
  pool-wide mean by ``shrinkage`` virtual queries; a new query gets its nearest cluster's. With
  few, well-separated clusters it recovers task-level routing without task labels.
* :class:`TaskScorer`: a linear classifier of the training data's task labels (text only at
  routing time) mixing each task's mean model scores by the predicted task probabilities.
  Without task labels, k-means clusters stand in for tasks.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from llmrouter_core._math import RowMatrix
from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, HeadScorer, Tags
from llmrouter_core.scoring.heads import Head, register_head
from llmrouter_core.training.costs import pack_matrix, unpack_matrix
from llmrouter_core.training.projection import Projector

__all__ = [
    "ClusterHead",
    "ClusterScorer",
    "TaskHead",
    "TaskScorer",
    "fit_clusters",
    "fit_task_head",
]


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


class ClusterScorer(HeadScorer):
    """k-means clusters of the training queries, each with its models' mean scores.

    Args:
        n_clusters: Number of clusters (``None``: chosen by CV).
        shrinkage: Virtual queries with the pool-wide mean scores added to each cluster.

    Example:
        >>> ClusterScorer(n_clusters=8).n_clusters
        8
    """

    input = "dense_raw"
    search_space = {"n_clusters": (3, 6, 12, 24, 48)}

    def __init__(self, n_clusters: int | None = None, shrinkage: float = 5.0) -> None:
        self.n_clusters = n_clusters
        self.shrinkage = shrinkage

    def check_params(self) -> None:
        if self.n_clusters is not None and int(self.n_clusters) < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters!r}")
        if not float(self.shrinkage) >= 0:
            raise ValueError(f"shrinkage must be >= 0, got {self.shrinkage!r}")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        return fit_clusters(
            X, Y, int(params["n_clusters"]), float(self.shrinkage), context.random_state
        )


@register_head
class TaskHead(Head):
    """Task probabilities from a linear classifier, mixing the tasks' mean scores.

    Probabilities are the softmax of the classifier's scores (for one-vs-rest logistic scores
    this ranks tasks as the normalised sigmoids do and keeps every task's weight positive).
    """

    kind = "task"

    def __init__(self, coef: Any, intercept: FloatArray, means: FloatArray) -> None:
        coef = np.asarray(coef.toarray() if sp.issparse(coef) else coef, dtype=np.float32)
        self.coef: Any = sp.csr_matrix(coef) if np.mean(coef == 0) > 0.5 else coef
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)

    @cached_property
    def _rows(self) -> RowMatrix:
        return RowMatrix(self.coef)

    def task_probabilities(self, x: Any) -> FloatArray:
        s = self._rows.rmatmul(x) + self.intercept
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        return np.asarray(p / p.sum(axis=1, keepdims=True), dtype=np.float64)

    def predict(self, x: Any) -> FloatArray:
        return np.asarray(self.task_probabilities(x) @ self.means, dtype=np.float64)

    def get_state(self) -> dict[str, Any]:
        return {**pack_matrix("coef", self.coef), "intercept": self.intercept, "means": self.means}

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> TaskHead:
        return cls(unpack_matrix("coef", arrays), arrays["intercept"], arrays["means"])


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


class TaskScorer(HeadScorer):
    """Task-aware routing: a classifier of the training queries' task labels, mixing each
    task's mean model scores by the predicted task probabilities.

    The task labels are read from the training data only (``data.tasks``); routing needs the
    query text alone. Without task labels, k-means clusters stand in for tasks.

    Args:
        alpha: L2 penalty of the task classifier (``None``: chosen by CV).
        shrinkage: Virtual queries with the pool-wide mean scores added to each task.
        n_clusters: Clusters used when the data has no task labels.

    Example:
        >>> TaskScorer(alpha=1e-5).alpha
        1e-05
    """

    search_space = {"alpha": (1e-6, 1e-5, 1e-4)}
    tags = Tags(needs=("tasks",))

    def __init__(
        self, alpha: float | None = None, shrinkage: float = 5.0, n_clusters: int = 12
    ) -> None:
        self.alpha = alpha
        self.shrinkage = shrinkage
        self.n_clusters = n_clusters

    def check_params(self) -> None:
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")
        if not float(self.shrinkage) >= 0:
            raise ValueError(f"shrinkage must be >= 0, got {self.shrinkage!r}")
        if int(self.n_clusters) < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters!r}")

    def _labels(self, x: Any, context: FitContext) -> np.ndarray:
        if context.tasks is not None:
            return np.asarray(context.tasks, dtype=object).astype(str)
        # No task labels: k-means clusters of a dense projection stand in for tasks.
        from sklearn.cluster import KMeans

        z = Projector(32, random_state=context.random_state, standardize=False).fit(x)
        k = max(1, min(int(self.n_clusters), x.shape[0]))
        km = KMeans(n_clusters=k, n_init=3, random_state=context.random_state)
        return np.asarray(km.fit_predict(z.transform(x)).astype(str))

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        return fit_task_head(
            X,
            Y,
            self._labels(X, context),
            float(params["alpha"]),
            float(self.shrinkage),
            context.random_state,
        )
