"""Elo / Bradley-Terry routers: a global rating, and ratings conditioned on the query.

Every training query is a tournament between the pool models: for each pair, the model with
the higher score wins, equal scores are a draw (half a win each; for graded scores the outcome
is ``0.5 + (y_a - y_b) / 2``). Bradley-Terry strengths ``p_a`` (``P(a beats b) = p_a / (p_a +
p_b)``) are fitted to the wins by the minorisation-maximisation algorithm.

* ``elo``: one rating per model from all training battles (LLMRouter's Elo router). Its
  quality is the rating mapped to the score scale (one shared logistic calibration).
* ``sw_ranking``: RouteLLM's similarity-weighted ranking: for a new query, each training
  battle is weighted by ``10 ** (sharpness x sim / max_sim)`` (``sim`` = cosine similarity of
  the two queries, ``max_sim`` = the highest similarity of the new query to any training query;
  RouteLLM uses ``sharpness = 1``), and the ratings are fitted per query. Ratings are mapped to
  quality by a logistic calibration with a shared slope and one intercept per model, fitted on
  leave-one-out ratings of the training queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from llmrouter_core.data.core import FloatArray
from llmrouter_core.routers._zoo import (
    ZooRouter,
    minimize_lbfgs,
    register_head,
    soft_bce,
)
from llmrouter_core.routers.heads import Head, LinearHead, _pack_matrix, _unpack_matrix

__all__ = ["EloRouter", "SWRankingHead", "SWRankingRouter", "bradley_terry"]

_CHUNK = 512


def bradley_terry(mean_scores: FloatArray, n_iter: int = 60, prior: float = 0.05) -> FloatArray:
    """Log-strengths (centred) of the Bradley-Terry fit, one row per tournament.

    Args:
        mean_scores: ``(k, m)`` weighted mean score of each model over the battles of each
            tournament; with every model playing every battle, the wins of ``a`` over ``b``
            are ``0.5 + (mean_a - mean_b) / 2`` per unit of battle weight.
        n_iter: Minorisation-maximisation iterations.
        prior: Virtual draws against every other model (keeps strengths finite when a model
            always wins or always loses).
    """
    ms = np.atleast_2d(np.asarray(mean_scores, dtype=np.float64))
    k, m = ms.shape
    wins = 0.5 + 0.5 * (ms[:, :, None] - ms[:, None, :]) + 0.5 * prior  # (k, a, b)
    total = 1.0 + prior
    off = ~np.eye(m, dtype=bool)
    w_sum = np.where(off, wins, 0.0).sum(axis=2)
    p = np.ones((k, m))
    # The ufuncs' own reductions: ``np.add.reduce(a, axis) / m`` is exactly what
    # ``a.mean(axis)`` computes, without its Python wrappers (routing one query runs this
    # loop on an 11 x 11 array, where the wrappers cost more than the arithmetic).
    add, where = np.add.reduce, np.where
    for _ in range(n_iter):
        denom = add(where(off, total / (p[:, :, None] + p[:, None, :]), 0.0), axis=2)
        p = w_sum / np.maximum(denom, 1e-300)
        p /= np.exp(add(np.log(np.maximum(p, 1e-300)), axis=1, keepdims=True) / m)
    return np.asarray(np.log(np.maximum(p, 1e-300)), dtype=np.float64)


def _fit_calibration(beta: FloatArray, y: FloatArray, per_model: bool) -> tuple[float, FloatArray]:
    """``quality = sigmoid(gamma * beta + c)`` (c per model or shared), by logistic loss."""
    n, m = y.shape
    n_c = m if per_model else 1

    def fun(p: FloatArray) -> tuple[float, FloatArray]:
        gamma, c = p[0], p[1:]
        loss, g = soft_bce(gamma * beta + c, y)
        gc = g.sum(axis=0) if per_model else np.array([g.sum()])
        return loss / (n * m), np.concatenate([[float(np.sum(g * beta))], gc]) / (n * m)

    p = minimize_lbfgs(fun, np.concatenate([[1.0], np.zeros(n_c)]), 200)
    c = p[1:] if per_model else np.full(m, p[1])
    return float(p[0]), np.asarray(c, dtype=np.float64)


class EloRouter(ZooRouter):
    """Global Bradley-Terry (Elo) rating of each model over all training battles.

    Quality does not depend on the query: with the cost knob it picks the best-rated model
    the budget allows. A baseline of the rating family.

    Args:
        cost_model: ``"features"`` (per-query cost from the query features) or ``"tokens"``.
        embedder, embedder_params: Features of the cost model.
        random_state: Seed (folds of the cost model).

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("elo").family
        'elo'
    """

    name = "elo"
    family = "elo"

    def __init__(
        self,
        *,
        cost_model: str = "features",
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            cost_model=cost_model,
            embedder=embedder,
            embedder_params=embedder_params,
            cv=3,
            blend=1.0,
            random_state=random_state,
        )

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        beta = bradley_terry(y.mean(axis=0)[None, :])[0]
        gamma, c = _fit_calibration(np.repeat(beta[None, :], len(y), axis=0), y, per_model=False)
        self.ratings_ = beta
        # No query dependence: a linear head with zero weights.
        return LinearHead(
            np.zeros((x.shape[1], y.shape[1]), dtype=np.float32), gamma * beta + c, link="logistic"
        )

    def _extra_meta(self) -> dict[str, Any]:
        return {"ratings": dict(zip(self.models_, self.ratings_.tolist(), strict=True))}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        super()._set_state(meta, arrays)
        self.ratings_ = np.array([meta["ratings"][m] for m in self.models_])


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
        z = self.gamma * self.ratings(x) + self.c
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -35, 35))), dtype=np.float64)

    def get_state(self) -> dict[str, Any]:
        return {
            **_pack_matrix("x_train", self.x_train),
            "y": self.y,
            "params": np.asarray([self.sharpness, self.gamma]),
            "c": self.c,
        }

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> SWRankingHead:
        sharpness, gamma = (float(v) for v in arrays["params"])
        return cls(_unpack_matrix("x_train", arrays), arrays["y"], sharpness, gamma, arrays["c"])


class SWRankingRouter(ZooRouter):
    """RouteLLM's similarity-weighted ranking: Bradley-Terry ratings fitted per query on
    training battles weighted by query similarity, calibrated to quality.

    Args:
        sharpness: Exponent of the similarity weights (RouteLLM: 1; ``None``: chosen by CV).
        cost_model, embedder, embedder_params, cv, blend, random_state: as
            :class:`~llmrouter_core.routers.irt.IRTRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("sw_ranking", sharpness=1.0).sharpness
        1.0
    """

    name = "sw_ranking"
    family = "elo"
    search_space = {"sharpness": (1.0, 3.0, 10.0, 30.0)}

    def __init__(
        self,
        *,
        sharpness: float | None = None,
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
        self.sharpness = sharpness

    def _check_params(self) -> None:
        if self.sharpness is not None and not float(self.sharpness) >= 0:
            raise ValueError("sharpness must be >= 0")

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        head = SWRankingHead(x, y, float(params["sharpness"]))
        # Calibrate on leave-one-out ratings (a query never rates itself).
        beta = head.ratings(x, exclude=np.arange(x.shape[0]))
        head.gamma, head.c = _fit_calibration(beta, y, per_model=True)
        return head
