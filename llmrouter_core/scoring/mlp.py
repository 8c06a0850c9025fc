"""The MLP scorer: a small multi-output network on a truncated SVD of the features."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, Folds, HeadScorer, Tags, fold_loop
from llmrouter_core.scoring.heads import Head, MLPHead
from llmrouter_core.training.projection import Projector

__all__ = ["MLPScorer"]


class MLPScorer(HeadScorer):
    """A small multi-output MLP predicting every model's score at once.

    The network reads the top ``n_components`` singular directions of the training features
    (a truncated SVD fitted once, without labels, on all training queries and shared by the
    cross-validation folds and candidates); the projection is folded into the first layer
    afterwards, so the saved head reads the features directly. Training on a few hundred
    dense inputs instead of thousands of sparse ones is what makes the search affordable.

    Args:
        hidden_layer_sizes: Hidden layers of the ``MLPRegressor``.
        alpha: L2 penalty (``None``: chosen by cross-validation).
        max_iter: Training epochs (Adam, mini-batches of 200).
        n_components: Singular directions the network reads (``None``: chosen by
            cross-validation; ``0``: the raw features, no projection).

    Example:
        >>> MLPScorer(alpha=0.01, n_components=128).n_components
        128
    """

    search_space = {"alpha": (1e-3, 1e-2, 1e-1), "n_components": (128, 256)}
    # Each output unit starts from its own random weights: tied models differ slightly.
    tags = Tags(symmetric_ties=False)

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        alpha: float | None = None,
        max_iter: int = 60,
        n_components: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.n_components = n_components

    def check_params(self) -> None:
        if self.alpha is not None and not float(self.alpha) >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        if self.n_components is not None and int(self.n_components) < 0:
            raise ValueError(f"n_components must be >= 0, got {self.n_components!r}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter!r}")

    def _projector(self, x: Any, sizes: list[int], random_state: int) -> Projector | None:
        """One SVD of the largest size any candidate needs (others truncate it)."""
        size = max(sizes)
        if size <= 0:
            return None
        return Projector(size, random_state=random_state, standardize=False).fit(x)

    def _train(
        self, z: Any, y: FloatArray, alpha: float, random_state: int
    ) -> tuple[list[Any], list[Any]]:
        from sklearn.neural_network import MLPRegressor
        from threadpoolctl import threadpool_limits

        est = MLPRegressor(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes),
            alpha=float(alpha),
            max_iter=int(self.max_iter),
            early_stopping=False,
            random_state=random_state,
        )
        # Mini-batch products of a few hundred columns: BLAS threads cost more than they
        # save, and on a busy machine they make each step many times slower.
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*converge.*")
            est.fit(z, np.asarray(y, dtype=z.dtype))
        return list(est.coefs_), list(est.intercepts_)

    @staticmethod
    def _inputs(proj: Projector | None, k: int, x: Any) -> tuple[Projector | None, Any]:
        if proj is None or k <= 0:
            return None, x
        part = proj.truncated(k)
        return part, part.transform(x).astype(np.float32)

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        k = int(params["n_components"])
        # The SVD that the candidates were judged on (its top k directions).
        sizes = [int(c) for c in self.search_space["n_components"]]
        if self.n_components is not None:
            sizes = [int(self.n_components)]
        proj, z = self._inputs(self._projector(X, [*sizes, k], context.random_state), k, X)
        coefs, intercepts = self._train(z, Y, float(params["alpha"]), context.random_state)
        if proj is not None:
            coefs[0], intercepts[0] = proj.fold_into(
                np.asarray(coefs[0], dtype=np.float64), np.asarray(intercepts[0])
            )
        return MLPHead(coefs, intercepts)

    def oof_predictions(
        self,
        X: Any,
        Y: FloatArray,
        candidates: list[dict[str, Any]],
        folds: Folds,
        context: FitContext,
    ) -> list[FloatArray]:
        sizes = sorted({int(p["n_components"]) for p in candidates})
        proj = self._projector(X, sizes, context.random_state)
        inputs = {k: self._inputs(proj, k, X)[1] for k in sizes}

        def fold(train: Any, val: Any) -> list[FloatArray]:
            out = []
            for params in candidates:
                z = inputs[int(params["n_components"])]
                coefs, intercepts = self._train(
                    z[train], Y[train], float(params["alpha"]), context.random_state
                )
                out.append(MLPHead(coefs, intercepts).predict(z[val]))
            return out

        return fold_loop(folds, Y, len(candidates), fold)
