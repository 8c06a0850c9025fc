"""Rating scorers: Elo / Bradley-Terry strengths of the pool models.

* :class:`EloScorer`: one Bradley-Terry rating per model from all training battles (draws
  count half), mapped to the score scale. Quality does not depend on the query: with the cost
  knob it picks the best-rated model the budget allows. A baseline of the rating family.
* :class:`SWRankingScorer`: RouteLLM's similarity-weighted ranking: Bradley-Terry ratings
  fitted per query on the training battles weighted by ``10 ** (sharpness x sim / max_sim)``,
  calibrated to quality on leave-one-out ratings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from llmrouter_core._math import sigmoid
from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, HeadScorer, Tags
from llmrouter_core.scoring.heads import Head, LinearHead, register_head
from llmrouter_core.training.costs import pack_matrix, unpack_matrix
from llmrouter_core.training.recipes import calibrate_logits

__all__ = ["EloScorer", "SWRankingHead", "SWRankingScorer", "bradley_terry"]

_CHUNK = 512


def bradley_terry(mean_scores: FloatArray, max_iter: int = 50, prior: float = 0.05) -> FloatArray:
    """Log-strengths (centred) of the Bradley-Terry fit, one row per tournament.

    The maximum-likelihood strengths, by Newton's method on the log-strengths: the
    log-likelihood is concave, and the prior draws bound every pairwise win rate away from 0
    and 1, so the iterations converge from equal strengths in under ten steps (to a gradient at
    rounding level). The minorisation-maximisation algorithm reaches the same point, but on
    lopsided records (near-0/1 scores, as sharp similarity weights give) it needs hundreds of
    iterations.

    Args:
        mean_scores: ``(k, m)`` weighted mean score of each model over the battles of each
            tournament; with every model playing every battle, the wins of ``a`` over ``b``
            are ``0.5 + (mean_a - mean_b) / 2`` per unit of battle weight.
        max_iter: Most Newton steps (it stops once a step moves no log-strength by 1e-10).
        prior: Virtual draws against every other model (``> 0``; keeps strengths finite when a
            model always wins or always loses).
    """
    if not prior > 0:
        raise ValueError("prior must be > 0 (it keeps the strengths finite)")
    ms = np.atleast_2d(np.asarray(mean_scores, dtype=np.float64))
    k, m = ms.shape
    total = 1.0 + prior  # battles of each pair, prior draws included
    # a's wins over all the others: sum over b != a of 0.5 + (ms_a - ms_b) / 2 + prior / 2.
    others = ms.sum(axis=1, keepdims=True) - ms
    wins = (m - 1) * (0.5 + 0.5 * prior) + 0.5 * ((m - 1) * ms - others)
    theta = np.zeros((k, m))
    diag = np.arange(m)
    # Small arrays, many steps: the ufuncs and their reductions directly (routing one query
    # runs this on an 11-model row).
    add, exp, solve = np.add.reduce, np.exp, np.linalg.solve
    for _ in range(max_iter if k else 0):
        # s[a, b] = P(a beats b) = sigmoid(theta_a - theta_b); a model does not play itself.
        s = 1.0 / (1.0 + exp(theta[:, None, :] - theta[:, :, None]))
        s[:, diag, diag] = 0.0
        grad = wins - total * add(s, axis=2)
        # The negative Hessian is the Laplacian of the pair weights total x s x (1 - s); its
        # null space (a common shift of every strength) is closed by adding 1/m everywhere,
        # which keeps the step centred (the gradient sums to zero).
        lap = s * (s - 1.0)
        lap *= total
        lap[:, diag, diag] = -add(lap, axis=2)
        lap += 1.0 / m
        step = solve(lap, grad[:, :, None])[:, :, 0]
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    theta -= add(theta, axis=1, keepdims=True) / m
    return theta


class EloScorer(HeadScorer):
    """One Bradley-Terry (Elo) rating per model over all training battles.

    Example:
        >>> EloScorer().get_params()
        {}
    """

    tags = Tags(recipes=("pairwise",))

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        beta = bradley_terry(Y.mean(axis=0)[None, :])[0]
        gamma, c = calibrate_logits(
            np.repeat(beta[None, :], len(Y), axis=0), Y, per_model=False, max_iter=200
        )
        self.ratings_ = beta
        # No query dependence: a linear head with zero weights.
        return LinearHead(
            np.zeros((X.shape[1], Y.shape[1]), dtype=np.float32), gamma * beta + c, link="logistic"
        )

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        meta, arrays = super().get_state()
        return {**meta, "ratings": self.ratings_.tolist()}, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        super().set_state(meta, arrays)
        self.ratings_ = np.asarray(meta["ratings"], dtype=np.float64)


@register_head
class SWRankingHead(Head):
    """Per-query Bradley-Terry ratings from similarity-weighted training battles."""

    kind = "sw-ranking"

    def __init__(
        self,
        x_train: Any,
        y: FloatArray,
        sharpness: float,
        gamma: float = 1.0,
        c: FloatArray | None = None,
    ) -> None:
        self.x_train = x_train
        self.x_train_t = (
            x_train.T.tocsr()
            if sp.issparse(x_train)
            else np.ascontiguousarray(np.asarray(x_train).T)
        )
        self.y = np.asarray(y, dtype=np.float64)
        self.sharpness = float(sharpness)
        self.gamma = float(gamma)
        self.c = np.zeros(self.y.shape[1]) if c is None else np.asarray(c, dtype=np.float64)

    def ratings(self, x: Any, exclude: Any = None) -> FloatArray:
        """Centred log-strengths per query (``exclude[i]``: a training row to leave out)."""
        out = np.empty((x.shape[0], self.y.shape[1]))
        for start in range(0, x.shape[0], _CHUNK):
            xb = x[start : start + _CHUNK]
            sims = xb @ self.x_train_t
            sims = np.asarray(sims.toarray() if sp.issparse(sims) else sims, dtype=np.float64)
            rows = np.arange(sims.shape[0])
            if exclude is not None:
                sims[rows, exclude[start : start + _CHUNK]] = -np.inf
            top = np.max(sims, axis=1, keepdims=True)
            top = np.where(np.isfinite(top) & (top > 1e-12), top, 1.0)
            # RouteLLM: weight = 10 * 10 ** (sim / max_sim); the constant factor cancels.
            logw = np.log(10.0) * self.sharpness * (sims / top - 1.0)
            w = np.exp(logw)
            w /= w.sum(axis=1, keepdims=True)
            out[start : start + _CHUNK] = bradley_terry(w @ self.y)
        return out

    def predict(self, x: Any) -> FloatArray:
        return sigmoid(self.gamma * self.ratings(x) + self.c)

    def get_state(self) -> dict[str, Any]:
        return {
            **pack_matrix("x_train", self.x_train),
            "y": self.y,
            "params": np.asarray([self.sharpness, self.gamma]),
            "c": self.c,
        }

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> SWRankingHead:
        sharpness, gamma = (float(v) for v in arrays["params"])
        return cls(unpack_matrix("x_train", arrays), arrays["y"], sharpness, gamma, arrays["c"])


class SWRankingScorer(HeadScorer):
    """RouteLLM's similarity-weighted ranking, calibrated to quality.

    Args:
        sharpness: Exponent of the similarity weights (RouteLLM: 1; ``None``: chosen by CV).

    Example:
        >>> SWRankingScorer(sharpness=1.0).sharpness
        1.0
    """

    search_space = {"sharpness": (1.0, 3.0, 10.0, 30.0)}
    tags = Tags(recipes=("pairwise",))

    def __init__(self, sharpness: float | None = None) -> None:
        self.sharpness = sharpness

    def check_params(self) -> None:
        if self.sharpness is not None and not float(self.sharpness) >= 0:
            raise ValueError(f"sharpness must be >= 0, got {self.sharpness!r}")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        head = SWRankingHead(X, Y, float(params["sharpness"]))
        # Calibrate on leave-one-out ratings (a query never rates itself).
        beta = head.ratings(X, exclude=np.arange(X.shape[0]))
        head.gamma, head.c = calibrate_logits(beta, Y, per_model=True, max_iter=200)
        return head
