"""Online bandit router: a linear contextual bandit that keeps learning from feedback.

Each pool model is an arm with a Bayesian linear model of its score on the query features
``z`` (a dense projection of the embedding plus a constant): a ridge posterior with precision
``A_j = l2 I + sum z z^T`` and mean ``theta_j = A_j^-1 sum z (y - prior_j)``. Training data warm-
starts every arm with all of its measured scores (full information); after deployment,
:meth:`BanditRouter.feedback` adds one observed (query, model, score) at a time with a rank-one
update, so the router improves on the traffic it actually sees.

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
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import DataError, UnknownModelError
from llmrouter_core.routers._zoo import ZooRouter, register_head
from llmrouter_core.routers.base import _check_queries
from llmrouter_core.routers.heads import Head

__all__ = ["STRATEGIES", "BanditHead", "BanditRouter"]

STRATEGIES = ("ucb", "thompson")


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
        self.a_inv = np.asarray(a_inv, dtype=np.float64)  # (m, D, D)
        self.b = np.asarray(b, dtype=np.float64)  # (m, D)
        self.prior = np.asarray(prior, dtype=np.float64)
        self.strategy = strategy
        self.exploration = float(exploration)
        self.seed = int(seed)
        self.n_updates = int(n_updates)
        self._lock = threading.Lock()
        self._refresh()

    @classmethod
    def fit(cls, z: FloatArray, y: FloatArray, l2: float, **kwargs: Any) -> BanditHead:
        zb = _with_bias(z)
        prior = y.mean(axis=0)
        precision = zb.T @ zb + l2 * np.eye(zb.shape[1])
        a_inv = np.linalg.inv(precision)
        b = (y - prior).T @ zb  # (m, D)
        m = y.shape[1]
        return cls(np.repeat(a_inv[None], m, axis=0), b, prior, **kwargs)

    def _refresh(self) -> None:
        self.theta = np.einsum("mij,mj->mi", self.a_inv, self.b)

    def mean(self, z: FloatArray) -> FloatArray:
        return np.asarray(_with_bias(z) @ self.theta.T + self.prior, dtype=np.float64)

    def predict(self, x: Any) -> FloatArray:
        zb = _with_bias(x)
        mu = zb @ self.theta.T + self.prior
        if self.exploration > 0:
            if self.strategy == "ucb":
                var = np.einsum("ni,mij,nj->nm", zb, self.a_inv, zb)
                mu = mu + self.exploration * np.sqrt(np.maximum(var, 0.0))
            else:
                mu = mu + self._thompson_noise(zb)
        return np.asarray(np.clip(mu, 0.0, 1.0), dtype=np.float64)

    def _thompson_noise(self, zb: FloatArray) -> FloatArray:
        # z^T (theta~ - theta) with theta~ - theta ~ N(0, s^2 A^-1): a normal with variance
        # s^2 z^T A^-1 z, drawn from a generator seeded by the query's features and state.
        var = np.einsum("ni,mij,nj->nm", zb, self.a_inv, zb)
        out = np.empty_like(var)
        for i in range(zb.shape[0]):
            key = hashlib.sha256(
                np.round(zb[i], 6).tobytes() + f"{self.seed}:{self.n_updates}".encode()
            ).digest()
            rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
            out[i] = rng.standard_normal(var.shape[1])
        return np.asarray(self.exploration * np.sqrt(np.maximum(var, 0.0)) * out)

    def update(self, z: FloatArray, arm: int, score: float) -> None:
        """Rank-one posterior update of one arm (Sherman-Morrison)."""
        zb = _with_bias(np.atleast_2d(z))[0]
        with self._lock:
            a_inv = self.a_inv[arm]
            az = a_inv @ zb
            self.a_inv[arm] = a_inv - np.outer(az, az) / (1.0 + float(zb @ az))
            self.b[arm] += zb * (score - self.prior[arm])
            self.theta[arm] = self.a_inv[arm] @ self.b[arm]
            self.n_updates += 1

    def get_state(self) -> dict[str, Any]:
        return {
            "a_inv": self.a_inv,
            "b": self.b,
            "prior": self.prior,
            "params": np.asarray(
                [STRATEGIES.index(self.strategy), self.exploration, self.seed, self.n_updates],
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


class BanditRouter(ZooRouter):
    """LinUCB / Thompson-sampling contextual bandit, warm-started on the training data and
    updated online with :meth:`feedback`.

    Args:
        strategy: ``"ucb"`` (LinUCB) or ``"thompson"``.
        exploration: Width of the exploration bonus (UCB) or posterior draw (Thompson); 0 routes
            on the posterior mean.
        l2: Ridge strength of the arms' priors (``None``: chosen by CV).
        n_components: Dense feature dimensions.
        cost_model, embedder, embedder_params, cv, random_state: as
            :class:`~llmrouter_core.routers.irt.IRTRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("bandit", strategy="thompson").strategy
        'thompson'
    """

    name = "bandit"
    family = "bandit"
    dense_input = True
    search_space = {"l2": (10.0, 100.0, 1000.0, 10000.0)}

    head_: BanditHead

    def __init__(
        self,
        *,
        strategy: str = "ucb",
        exploration: float = 0.1,
        l2: float | None = None,
        n_components: int = 64,
        cost_model: str = "features",
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            cost_model=cost_model,
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=1.0,
            random_state=random_state,
        )
        self.strategy = strategy
        self.exploration = exploration
        self.l2 = l2
        self.n_components = n_components

    def _check_params(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not float(self.exploration) >= 0:
            raise ValueError("exploration must be >= 0")
        if self.l2 is not None and not float(self.l2) > 0:
            raise ValueError("l2 must be > 0")

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        return BanditHead.fit(
            x,
            y,
            float(params["l2"]),
            strategy=self.strategy,
            exploration=0.0,
            seed=self.random_state,
        )

    def _fit_inputs(self, z: Any, data: RoutingData) -> None:
        super()._fit_inputs(z, data)
        # Cross-validation judged the posterior mean; routing explores.
        self.head_.exploration = float(self.exploration)

    # -- online learning ---------------------------------------------------
    def feedback(self, query: str, model: str, score: float) -> None:
        """Learn from one observed outcome: ``model`` answered ``query`` with ``score``.

        The arm's posterior changes at once (routing reads it on the next call; updates are
        serialised by a lock). The knob's calibration for budgets and sweeps stays the one
        computed at training time; save the router to keep what it learned.

        Args:
            query: The routed text.
            model: The pool model that answered.
            score: Its measured quality in [0, 1] (e.g. a grader's verdict or user rating).

        Raises:
            UnknownModelError: ``model`` is not in the pool.
            DataError: ``score`` is not a number in [0, 1].
        """
        self.feedback_batch([query], [model], [score])

    def feedback_batch(
        self, queries: Sequence[str], models: Sequence[str], scores: Sequence[float]
    ) -> None:
        """:meth:`feedback` for several outcomes, applied in order."""
        self._check_fitted()
        queries = _check_queries(queries)
        if not len(queries) == len(models) == len(scores):
            raise DataError("queries, models and scores must have the same length")
        arms = []
        for model in models:
            if model not in self.models_:
                raise UnknownModelError(f"unknown model {model!r}; the router knows {self.models_}")
            arms.append(self.models_.index(model))
        values = []
        for s in scores:
            try:
                v = float(s)
            except (TypeError, ValueError):
                raise DataError(f"score must be a number in [0, 1], got {s!r}") from None
            if not 0.0 <= v <= 1.0:
                raise DataError(f"score must be a number in [0, 1], got {s!r}")
            values.append(v)
        z = self._inputs(self.embedder_.transform(queries))
        for i, (arm, v) in enumerate(zip(arms, values, strict=True)):
            self.head_.update(z[i], arm, v)

    @property
    def n_feedback_(self) -> int:
        """Outcomes learned since training."""
        self._check_fitted()
        return int(self.head_.n_updates)
