"""The k-nearest-neighbours scorer: similar training queries vote with their scores."""

from __future__ import annotations

from typing import Any

from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, Folds, HeadScorer, Tags, fold_loop
from llmrouter_core.scoring.heads import Head, KNNHead

__all__ = ["KNNScorer"]


class KNNScorer(HeadScorer):
    """The ``k`` most cosine-similar training queries, similarity-weighted, shrunk toward
    each model's mean score by ``shrinkage`` virtual neighbours.

    Learns online: :meth:`partial_fit` adds an observed outcome as a new neighbour.

    Args:
        n_neighbors: ``k`` (``None``: chosen by cross-validation).
        shrinkage: Weight of the per-model mean, in units of similarity.

    Example:
        >>> KNNScorer(n_neighbors=25).n_neighbors
        25
    """

    search_space = {"n_neighbors": (10, 25, 50, 100, 200)}
    tags = Tags(online=False)

    def __init__(self, n_neighbors: int | None = None, shrinkage: float = 1.0) -> None:
        self.n_neighbors = n_neighbors
        self.shrinkage = shrinkage

    def check_params(self) -> None:
        if self.n_neighbors is not None and int(self.n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors!r}")
        if not float(self.shrinkage) >= 0:
            raise ValueError(f"shrinkage must be >= 0, got {self.shrinkage!r}")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        return KNNHead(X, Y, k=int(params["n_neighbors"]), alpha=float(self.shrinkage))

    def oof_predictions(
        self,
        X: Any,
        Y: FloatArray,
        candidates: list[dict[str, Any]],
        folds: Folds,
        context: FitContext,
    ) -> list[FloatArray]:
        # A fold's similarities do not depend on k: compute them once per fold.
        def fold(train: Any, val: Any) -> list[FloatArray]:
            head = KNNHead(X[train], Y[train], k=1, alpha=float(self.shrinkage))
            sims = head.similarities_many(X[val])
            out = []
            for params in candidates:
                head.k = int(params["n_neighbors"])
                out.append(head.predict_from_similarities(sims))
            return out

        return fold_loop(folds, Y, len(candidates), fold)

    def predict_many(self, X: Any) -> FloatArray:
        head = self.head_
        assert isinstance(head, KNNHead)
        return head.predict_from_similarities(head.similarities_many(X))
