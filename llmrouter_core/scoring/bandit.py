"""The bandit scorer: a linear contextual bandit that keeps learning from feedback.

Each pool model is an arm with a Bayesian linear model of its score on the query features
``z`` (a dense projection of the embedding plus a constant): a ridge posterior with precision
``A_j = l2 I + sum z z^T`` and mean ``theta_j = A_j^-1 sum z (y - prior_j)``. Training data warm-
starts every arm with all of its measured scores (full information); after deployment,
:meth:`Router.feedback <llmrouter_core.router.Router.feedback>` adds one observed (query,
model, score) at a time with a rank-one update, so the router improves on the traffic it
actually sees.

Exploration, applied when routing:

* ``strategy="ucb"`` (LinUCB): ``quality = mean + exploration x sqrt(z^T A_j^-1 z)``;
* ``strategy="thompson"``: a draw from the posterior, ``theta ~ N(theta_j, exploration^2
  A_j^-1)``, seeded by the query, the router's seed and the number of updates so far, so a
  given router state routes a given query reproducibly.

``exploration=0`` routes on the posterior mean. The ridge strength is chosen by cross-validated
AIQ on the training data (without exploration, which offline data cannot reward).
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, HeadScorer, Tags
from llmrouter_core.scoring.heads import Head, register_head

__all__ = ["STRATEGIES", "BanditHead", "BanditScorer"]

STRATEGIES = ("ucb", "thompson")


class _Posterior(NamedTuple):
    a_inv: FloatArray
    b: FloatArray
    theta: FloatArray
    n_updates: int


def _with_bias(z: FloatArray) -> FloatArray:
    return np.hstack([np.asarray(z, dtype=np.float64), np.ones((z.shape[0], 1))])


@register_head
class BanditHead(Head):
    """Per-arm ridge posteriors; predicts mean (+ exploration) clipped to [0, 1]."""

    kind = "bandit"

    def __init__(
        self,
        a_inv: FloatArray,
        b: FloatArray,
        prior: FloatArray,
        strategy: str = "ucb",
        exploration: float = 0.0,
        seed: int = 0,
        n_updates: int = 0,
    ) -> None:
        self.prior = np.asarray(prior, dtype=np.float64)
        self.strategy = strategy
        self.exploration = float(exploration)
        self.seed = int(seed)
        a_inv = np.asarray(a_inv, dtype=np.float64)  # (m, D, D)
        b = np.asarray(b, dtype=np.float64)  # (m, D)
        # One tuple, replaced whole by each update: a concurrent prediction reads either the
        # old posterior or the new one, never a mix.
        self._post = _Posterior(a_inv, b, np.einsum("mij,mj->mi", a_inv, b), int(n_updates))

    @classmethod
    def fit(cls, z: FloatArray, y: FloatArray, l2: float, **kwargs: Any) -> BanditHead:
        zb = _with_bias(z)
        prior = y.mean(axis=0)
        precision = zb.T @ zb + l2 * np.eye(zb.shape[1])
        a_inv = np.linalg.inv(precision)
        b = (y - prior).T @ zb  # (m, D)
        m = y.shape[1]
        return cls(np.repeat(a_inv[None], m, axis=0), b, prior, **kwargs)

    @property
    def n_updates(self) -> int:
        return self._post.n_updates

    def mean(self, z: FloatArray) -> FloatArray:
        return np.asarray(_with_bias(z) @ self._post.theta.T + self.prior, dtype=np.float64)

    def predict(self, x: Any) -> FloatArray:
        post = self._post
        zb = _with_bias(x)
        mu = zb @ post.theta.T + self.prior
        if self.exploration > 0:
            if self.strategy == "ucb":
                var = np.einsum("ni,mij,nj->nm", zb, post.a_inv, zb)
                mu = mu + self.exploration * np.sqrt(np.maximum(var, 0.0))
            else:
                mu = mu + self._thompson_noise(zb, post)
        return np.asarray(np.clip(mu, 0.0, 1.0), dtype=np.float64)

    def _thompson_noise(self, zb: FloatArray, post: _Posterior) -> FloatArray:
        # z^T (theta~ - theta) with theta~ - theta ~ N(0, s^2 A^-1): a normal with variance
        # s^2 z^T A^-1 z, drawn from a generator seeded by the query's features and state.
        var = np.einsum("ni,mij,nj->nm", zb, post.a_inv, zb)
        out = np.empty_like(var)
        for i in range(zb.shape[0]):
            key = hashlib.sha256(
                np.round(zb[i], 6).tobytes() + f"{self.seed}:{post.n_updates}".encode()
            ).digest()
            rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
            out[i] = rng.standard_normal(var.shape[1])
        return np.asarray(self.exploration * np.sqrt(np.maximum(var, 0.0)) * out)

    def update(self, z: FloatArray, arm: int, score: float) -> None:
        """Rank-one posterior update of one arm (Sherman-Morrison). Callers serialise updates;
        routing may run concurrently (it reads the posterior the update replaces)."""
        zb = _with_bias(np.atleast_2d(z))[0]
        post = self._post
        a_inv, b, theta = post.a_inv.copy(), post.b.copy(), post.theta.copy()
        az = a_inv[arm] @ zb
        a_inv[arm] = a_inv[arm] - np.outer(az, az) / (1.0 + float(zb @ az))
        b[arm] += zb * (score - self.prior[arm])
        theta[arm] = a_inv[arm] @ b[arm]
        self._post = _Posterior(a_inv, b, theta, post.n_updates + 1)

    def get_state(self) -> dict[str, Any]:
        post = self._post
        return {
            "a_inv": post.a_inv,
            "b": post.b,
            "prior": self.prior,
            "params": np.asarray(
                [STRATEGIES.index(self.strategy), self.exploration, self.seed, post.n_updates],
                dtype=np.float64,
            ),
        }

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> BanditHead:
        strategy, exploration, seed, n_updates = (float(v) for v in arrays["params"])
        return cls(
            arrays["a_inv"],
            arrays["b"],
            arrays["prior"],
            STRATEGIES[int(strategy)],
            exploration,
            int(seed),
            int(n_updates),
        )


class BanditScorer(HeadScorer):
    """LinUCB / Thompson-sampling contextual bandit, warm-started on the training data and
    updated online through :meth:`Router.feedback <llmrouter_core.router.Router.feedback>`.

    Args:
        strategy: ``"ucb"`` (LinUCB) or ``"thompson"``.
        exploration: Width of the exploration bonus (UCB) or posterior draw (Thompson); 0
            routes on the posterior mean.
        l2: Ridge strength of the arms' priors (``None``: chosen by CV).

    Example:
        >>> BanditScorer(strategy="thompson").strategy
        'thompson'
    """

    input = "dense"
    search_space = {"l2": (10.0, 100.0, 1000.0, 10000.0)}
    tags = Tags(online=True, deterministic=True, recipes=("online", "pointwise"))

    def __init__(self, strategy: str = "ucb", exploration: float = 0.1, l2: float | None = None):
        self.strategy = strategy
        self.exploration = exploration
        self.l2 = l2

    def check_params(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not float(self.exploration) >= 0:
            raise ValueError(f"exploration must be >= 0, got {self.exploration!r}")
        if self.l2 is not None and not float(self.l2) > 0:
            raise ValueError(f"l2 must be > 0, got {self.l2!r}")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        # Cross-validation judges the posterior mean (offline data cannot reward exploring).
        return BanditHead.fit(
            X,
            Y,
            float(params["l2"]),
            strategy=self.strategy,
            exploration=0.0,
            seed=context.random_state,
        )

    def fit(self, X: Any, Y: FloatArray, context: FitContext | None = None) -> BanditScorer:
        super().fit(X, Y, context)
        assert isinstance(self.head_, BanditHead)
        self.head_.exploration = float(self.exploration)  # routing explores
        return self

    def partial_fit(self, x: Any, model: int, score: float) -> None:
        assert isinstance(self.head_, BanditHead)
        self.head_.update(np.asarray(x)[0], model, score)

    @property
    def n_feedback_(self) -> int:
        """Outcomes learned since training."""
        assert isinstance(self.head_, BanditHead)
        return int(self.head_.n_updates)
