"""Model selection on training data only: K-fold cross-validated AIQ.

Hyperparameters (and how far to trust a learned scorer over the per-model prior) are chosen by
the area under the cost-quality curve that out-of-fold predictions achieve on the training
queries' measured outcomes; test data is never looked at.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from llmrouter_core.data.core import FloatArray
from llmrouter_core.policy import choose

__all__ = ["cv_aiq", "kfold"]


def kfold(
    n: int, n_splits: int, random_state: int
) -> Iterator[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Shuffled K-fold (train, validation) index pairs."""
    n_splits = max(2, min(n_splits, n))
    perm = np.random.default_rng(random_state).permutation(n)
    folds = np.array_split(perm, n_splits)
    for i in range(n_splits):
        val = np.sort(folds[i])
        train = np.sort(np.concatenate([f for j, f in enumerate(folds) if j != i]))
        yield train, val


def cv_aiq(
    quality: FloatArray,
    cost_pred: FloatArray,
    scores: FloatArray,
    costs: FloatArray,
    n_points: int = 33,
) -> float:
    """AIQ of routing by ``(quality, cost_pred)`` judged on measured ``scores`` / ``costs``.

    The cost weights are log-spaced over the range where predicted choices change, plus 0 and
    ``inf``; the range is the single models' mean costs on the same queries.
    """
    from llmrouter_core.evaluation.metrics import aiq

    pos = cost_pred[cost_pred > 0]
    if pos.size:
        grid = [np.inf, *np.geomspace(1e3 / pos.min(), 1e-3 / pos.max(), n_points), 0.0]
    else:
        grid = [np.inf, 0.0]
    rows = np.arange(scores.shape[0])
    points = []
    for w in grid:
        idx = choose(quality, cost_pred, float(w))
        points.append((float(costs[rows, idx].mean()), float(scores[rows, idx].mean())))
    mean_costs = costs.mean(axis=0)
    c_min, c_max = float(mean_costs.min()), float(mean_costs.max())
    if c_max <= c_min:
        return max(p[1] for p in points)
    return float(aiq(points, c_min, c_max))
