"""The per-user learner: query-conditioned offsets and willingness to pay, with shrinkage.

For a user, the personalized utility of pool model ``j`` on query ``q`` is

    u(q, j) = qhat(q, j) + a[j] + b[c(q), j] - (w + g / s) * cost(q, j)

where ``qhat`` and ``cost`` are the base router's predictions, ``c(q)`` the query's cluster
(regions of the base router's predicted-quality space, so the offsets depend on the query),
``w`` the request's cost weight, ``s`` the mean training cost and ``g`` the user's extra price
sensitivity (willingness to pay). ``theta = (a, b, g)`` is the maximum a posteriori estimate
from the user's own feedback:

* a rating ``r`` of model ``j``'s answer: ``r ~ Normal(u(q, j), noise^2)``;
* "``j`` preferred over ``k``": ``P = sigmoid(pair_scale * (u(q, j) - u(q, k)))``;

under zero-mean Gaussian priors (precisions ``model_prior``, ``cluster_prior``,
``cost_prior``). A user with no feedback has ``theta = 0`` exactly; a few events move it a
little (shrinkage), many move it to what they say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray

__all__ = ["Evidence", "OffsetLearner"]

#: The least information a pairwise choice adds to the posterior, as a share of the most.
PAIR_INFORMATION = 0.4


@dataclass(frozen=True)
class Evidence:
    """One user's feedback events with the base router's predictions at their queries.

    Attributes:
        quality: ``(n, m)`` predicted quality per event query.
        cost: ``(n, m)`` predicted cost (USD).
        cluster: ``(n,)`` cluster of each event query.
        model: ``(n,)`` index of the rated (or preferred) model.
        rating: ``(n,)`` rating in [0, 1], NaN where the event has none.
        other: ``(n,)`` index of the model it was preferred over, -1 where none.
    """

    quality: FloatArray
    cost: FloatArray
    cluster: Any
    model: Any
    rating: FloatArray
    other: Any

    @property
    def n(self) -> int:
        return int(self.model.shape[0])

    def take(self, rows: Any) -> Evidence:
        """The events at ``rows`` (indices or a mask)."""
        return Evidence(
            self.quality[rows],
            self.cost[rows],
            self.cluster[rows],
            self.model[rows],
            self.rating[rows],
            self.other[rows],
        )


@dataclass(frozen=True)
class OffsetLearner:
    """Per-user model offsets, per-cluster model offsets and price sensitivity (see the
    module docstring); deterministic Newton steps on a small convex problem."""

    n_models: int
    n_clusters: int
    cost_scale: float
    model_prior: float = 128.0
    cluster_prior: float = 256.0
    cost_prior: float = 4.0
    noise: float = 0.25
    pair_scale: float = 8.0
    max_iter: int = 30
    _dim: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_dim", self.n_models * (1 + self.n_clusters) + 1)

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, cluster: Any, model: Any, cost: FloatArray) -> FloatArray:
        """Rows of the design matrix for (event, model) pairs."""
        m = self.n_models
        x = np.zeros((len(model), self._dim))
        rows = np.arange(len(model))
        x[rows, model] = 1.0
        x[rows, m + cluster * m + model] = 1.0
        x[:, -1] = -cost / self.cost_scale
        return x

    def prior(self) -> FloatArray:
        m = self.n_models
        out = np.full(self._dim, self.cluster_prior)
        out[:m] = self.model_prior
        out[-1] = self.cost_prior
        return out

    def fit(self, ev: Evidence, cost_weight: float) -> tuple[FloatArray, FloatArray]:
        """``(theta, covariance)`` from one user's evidence: the MAP estimate (length
        :attr:`dim`) and the Laplace approximation of its posterior covariance. No evidence:
        zeros and the prior's covariance.

        ``cost_weight`` is the router's cost weight the feedback is read against."""
        theta = np.zeros(self._dim)
        lam = self.prior()
        if ev.n == 0:
            return theta, np.diag(1.0 / lam)
        rows = np.arange(ev.n)
        base = ev.quality - cost_weight * ev.cost  # the base router's utility
        c_own = ev.cost[rows, ev.model]
        x_own = self._features(ev.cluster, ev.model, c_own)
        rated = ~np.isnan(ev.rating)
        xr = x_own[rated]
        tr = ev.rating[rated] - base[rows, ev.model][rated]
        paired = ev.other >= 0
        pr = rows[paired]
        other = ev.other[paired]
        xp = x_own[paired] - self._features(ev.cluster[paired], other, ev.cost[pr, other])
        dp = base[pr, ev.model[paired]] - base[pr, other]
        inv_var = 1.0 / self.noise**2
        s = self.pair_scale
        h_fixed = np.diag(lam) + inv_var * (xr.T @ xr)
        g_fixed = inv_var * (xr.T @ tr)

        def hessian(at: FloatArray, floor: float = 0.0) -> tuple[FloatArray, FloatArray]:
            grad = lam * at - g_fixed + inv_var * (xr.T @ (xr @ at))
            hess = h_fixed
            if pr.size:
                z = s * (dp + xp @ at)
                p = 1.0 / (1.0 + np.exp(np.clip(z, -50.0, 50.0)))  # sigmoid(-z)
                grad = grad - s * (xp.T @ p)
                hess = hess + (s * s) * (xp.T * np.maximum(p * (1.0 - p), floor)) @ xp
            return grad, hess

        def loss(at: FloatArray) -> float:
            out = 0.5 * float(at @ (lam * at)) + 0.5 * inv_var * float(np.sum((xr @ at - tr) ** 2))
            if pr.size:
                out += float(np.sum(np.logaddexp(0.0, -s * (dp + xp @ at))))
            return out

        current = loss(theta)
        for _ in range(self.max_iter):
            grad, hess = hessian(theta)
            step = np.linalg.solve(hess, grad)
            if not pr.size:  # ratings only: one Newton step solves the quadratic exactly
                theta = theta - step
                break
            size = 1.0  # damped Newton: halve the step until the loss decreases
            while size > 1e-6:
                candidate = theta - size * step
                value = loss(candidate)
                if value <= current:
                    break
                size /= 2
            else:
                break
            theta, moved, current = candidate, size * float(np.max(np.abs(step))), value
            if moved < 1e-9:
                break
        # The posterior's curvature: a choice the profile already explains well would add
        # almost none (consistent choices would leave the router unsure for ever), so each
        # counts at least PAIR_INFORMATION of a maximally uncertain one.
        _, hess = hessian(theta, floor=PAIR_INFORMATION * 0.25)
        return theta, np.asarray(np.linalg.inv(hess), dtype=np.float64)

    def features(self, cluster: Any, model: Any, cost: FloatArray) -> FloatArray:
        """Rows of the design matrix for (query cluster, model index, cost) triples: the
        personalized utility is the base utility plus ``features @ theta``."""
        return self._features(np.asarray(cluster), np.asarray(model), np.asarray(cost))

    def adjust(
        self, theta: FloatArray, quality: FloatArray, cost: FloatArray, cluster: Any
    ) -> FloatArray:
        """The personalized quality ``qhat + a + b[cluster]`` for ``(n, m)`` predictions
        (``cost`` is not read: the user's price sensitivity is :meth:`weight_shift`)."""
        m = self.n_models
        b = theta[m:-1].reshape(self.n_clusters, m)
        return np.asarray(quality + theta[:m][None, :] + b[cluster], dtype=np.float64)

    def weight_shift(self, theta: FloatArray) -> float:
        """The user's extra cost weight (lambda, per USD) over the request's."""
        return float(theta[-1] / self.cost_scale)

    def gain_sd(
        self, covariance: FloatArray, cluster: int, models: tuple[int, int], cost: FloatArray
    ) -> float:
        """Posterior standard deviation of the personal utility difference of two models
        (``models``, with their predicted ``cost``) on a query of ``cluster``."""
        d = self._features(np.array([cluster, cluster]), np.array(models), cost)
        diff = d[0] - d[1]
        return float(np.sqrt(max(diff @ covariance @ diff, 0.0)))
