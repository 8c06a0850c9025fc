"""Matrix factorisation router: RouteLLM's bilinear model of (query, model) pairs.

RouteLLM scores model ``j`` on query ``x`` as ``s_j(x) = w . (v_j * W x)``: the query embedding
projected to a small latent space, multiplied element-wise by a learned model embedding, read
out by a linear layer. It is trained on pairwise outcomes (Bradley-Terry: P(a beats b) =
sigmoid(s_a - s_b)). Here:

* every pair of pool models whose scores differ on a training query is a comparison, weighted by
  the score gap (ties carry no preference, so they never become a "first best row" label);
* ``objective="pointwise"`` instead fits P(model answers well) directly (soft-label logistic);
* because pairwise scores are only defined up to a per-query shift, a final calibration maps
  them to expected quality: ``quality_j = sigmoid(gamma s_j(x) + c_j)``, fitted on all scores.

``w`` folds into ``v_j``, so the model is a rank-``dim`` linear map of the features, fitted by
L-BFGS with an L2 penalty; ``dim`` and the penalty are chosen by cross-validated AIQ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.routers._zoo import ZooRouter, logit, minimize_lbfgs, sigmoid, soft_bce
from llmrouter_core.routers.heads import Head, LinearHead

__all__ = ["MFRouter", "fit_bilinear"]

OBJECTIVES = ("pairwise", "pointwise")


def _pairwise_loss(s: FloatArray, pref: FloatArray) -> tuple[float, FloatArray]:
    """Weighted Bradley-Terry loss of scores ``s`` (n, m) given preference weights
    ``pref[i, a, b] = max(y_ia - y_ib, 0)``, and its gradient with respect to ``s``."""
    delta = s[:, :, None] - s[:, None, :]
    loss = float(np.sum(pref * np.logaddexp(0.0, -delta)))
    g = pref * sigmoid(-delta)
    return loss, g.sum(axis=1) - g.sum(axis=2)


def fit_bilinear(
    z: FloatArray,
    y: FloatArray,
    dim: int,
    l2: float,
    objective: str = "pairwise",
    random_state: int = 0,
    max_iter: int = 200,
) -> tuple[FloatArray, FloatArray]:
    """Fit ``s_j(z) = (z W) . v_j + b_j``; returns the calibrated logit as
    ``(coef (d, m), intercept (m,))``."""
    n, d = z.shape
    m = y.shape[1]
    rng = np.random.default_rng(random_state)
    w0 = rng.normal(0.0, 0.1 / np.sqrt(d), (d, dim))
    v0 = rng.normal(0.0, 0.1, (dim, m))
    b0 = logit(np.clip(y.mean(axis=0), 0.02, 0.98))
    x0 = np.concatenate([w0.ravel(), v0.ravel(), b0])
    split = [d * dim, d * dim + dim * m]
    if objective == "pairwise":
        pref = np.maximum(y[:, :, None] - y[:, None, :], 0.0)
        norm = 1.0 / max(float(pref.sum()), 1.0)
    else:
        norm = 1.0 / (n * m)

    def fun(p: FloatArray) -> tuple[float, FloatArray]:
        w = p[: split[0]].reshape(d, dim)
        v = p[split[0] : split[1]].reshape(dim, m)
        b = p[split[1] :]
        zw = z @ w
        s = zw @ v + b
        if objective == "pairwise":
            loss, g = _pairwise_loss(s, pref)
        else:
            loss, g = soft_bce(s, y)
        loss *= norm
        g *= norm
        gw = z.T @ (g @ v.T) + 2 * l2 * w
        gv = zw.T @ g + 2 * l2 * v
        gb = g.sum(axis=0)
        loss += l2 * (float(np.sum(w * w)) + float(np.sum(v * v)))
        return loss, np.concatenate([gw.ravel(), gv.ravel(), gb])

    p = minimize_lbfgs(fun, x0, max_iter)
    w = p[: split[0]].reshape(d, dim)
    v = p[split[0] : split[1]].reshape(dim, m)
    b = p[split[1] :]
    coef = w @ v
    if objective == "pointwise":
        return coef, b
    # Calibrate the pairwise scores to expected quality: logit = gamma * s + c_j.
    s = z @ coef + b

    def cal(q: FloatArray) -> tuple[float, FloatArray]:
        gamma, c = q[0], q[1:]
        loss, g = soft_bce(gamma * s + c, y)
        return loss / (n * m), np.concatenate([[float(np.sum(g * s))], g.sum(axis=0)]) / (n * m)

    q = minimize_lbfgs(cal, np.concatenate([[1.0], np.zeros(m)]), 100)
    return q[0] * coef, q[0] * b + q[1:]


class MFRouter(ZooRouter):
    """Matrix factorisation (RouteLLM's bilinear model), trained on pairwise score gaps.

    Args:
        dim: Latent dimensions (``None``: chosen by CV from 8, 32).
        l2: L2 penalty (``None``: chosen by CV).
        objective: ``"pairwise"`` (Bradley-Terry on score gaps, as RouteLLM) or
            ``"pointwise"`` (soft-label logistic on each score).
        n_components: Dense feature dimensions (projection of the embedding).
        max_iter: L-BFGS iterations.
        cost_model, embedder, embedder_params, cv, blend, random_state: as
            :class:`~llmrouter_core.routers.irt.IRTRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("mf", dim=16).objective
        'pairwise'
    """

    name = "mf"
    family = "matrix-factorization"
    dense_input = True
    search_space = {"dim": (8, 32), "l2": (1e-3, 1e-2, 1e-1)}

    def __init__(
        self,
        *,
        dim: int | None = None,
        l2: float | None = None,
        objective: str = "pairwise",
        n_components: int = 64,
        max_iter: int = 200,
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
        self.dim = dim
        self.l2 = l2
        self.objective = objective
        self.n_components = n_components
        self.max_iter = max_iter

    def _check_params(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.dim is not None and int(self.dim) < 1:
            raise ValueError("dim must be >= 1")

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        coef, intercept = fit_bilinear(
            x,
            y,
            int(params["dim"]),
            float(params["l2"]),
            self.objective,
            self.random_state,
            self.max_iter,
        )
        return LinearHead(coef, intercept, link="logistic")
