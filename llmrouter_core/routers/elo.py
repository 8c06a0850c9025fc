"""Elo / Bradley-Terry routers: a global rating, and ratings conditioned on the query.

Every training query is a tournament between the pool models: for each pair, the model with
the higher score wins, equal scores are a draw (half a win each; for graded scores the outcome
is ``0.5 + (y_a - y_b) / 2``). Bradley-Terry strengths ``p_a`` (``P(a beats b) = p_a / (p_a +
p_b)``) are fitted to the wins by maximum likelihood (Newton's method).

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
