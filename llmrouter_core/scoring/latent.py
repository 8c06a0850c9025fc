"""Latent-factor scorers on the dense projection: item response theory and RouteLLM's
bilinear model (matrix factorisation).

Both produce a logit per (query, model) that is linear in the query's projected features
``z``, fitted by L-BFGS with an L2 penalty under any training recipe they accept
(:mod:`llmrouter_core.training.recipes`): pointwise (``P(model answers well)``), pairwise
(Bradley-Terry on score gaps) or contrastive; pairwise and contrastive logits are then
calibrated to expected quality. The fitted model folds into one linear head.

* :class:`IRTScorer`: multidimensional IRT, ``P = sigmoid(a_i . theta_j + c_j - b_i)`` with the
  query's discrimination ``a_i = z_i A`` and difficulty ``b_i = z_i . w`` read from its
  features, so a new query gets its traits without refitting.
* :class:`BilinearScorer`: RouteLLM's ``s_j(x) = w . (v_j * W x)`` (``w`` folds into
  ``v_j``): a rank-``dim`` linear map of the features; the ``mf`` router trains it pairwise,
  as RouteLLM does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrouter_core._math import logit
from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, HeadScorer, Tags
from llmrouter_core.scoring.heads import Head, LinearHead
from llmrouter_core.training.recipes import calibrate_logits, needs_calibration, recipe_loss
from llmrouter_core.training.solvers import minimize_lbfgs

__all__ = ["BilinearScorer", "IRTScorer", "fit_bilinear", "fit_mirt"]

_RECIPES = ("pointwise", "pairwise", "contrastive")


def fit_mirt(
    z: FloatArray,
    y: FloatArray,
    n_dims: int,
    l2: float,
    random_state: int = 0,
    max_iter: int = 200,
    recipe: str = "pointwise",
) -> tuple[FloatArray, FloatArray]:
    """Fit the MIRT model; returns the equivalent ``(coef (d, m), intercept (m,))`` of the
    logit, which is linear in ``z``: ``z @ (A theta - w) + c``."""
    n, d = z.shape
    m = y.shape[1]
    k = int(n_dims)
    rng = np.random.default_rng(random_state)
    a0 = rng.normal(0.0, 0.01, (d, k))
    t0 = rng.normal(0.0, 0.01, (k, m))
    w0 = np.zeros(d)
    c0 = logit(np.clip(y.mean(axis=0), 0.02, 0.98))
    sizes = [d * k, k * m, d, m]
    x0 = np.concatenate([a0.ravel(), t0.ravel(), w0, c0])
    loss_of = recipe_loss(recipe, y, pointwise_norm=n)

    def unpack(p: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        parts = np.split(p, np.cumsum(sizes)[:-1])
        return parts[0].reshape(d, k), parts[1].reshape(k, m), parts[2], parts[3]

    def fun(p: FloatArray) -> tuple[float, FloatArray]:
        a, t, w, c = unpack(p)
        za = z @ a
        logits = za @ t - (z @ w)[:, None] + c
        loss, g = loss_of(logits)
        ga = z.T @ (g @ t.T) + 2 * l2 * a
        gt = za.T @ g + 2 * l2 * t
        gw = -(z.T @ g.sum(axis=1)) + 2 * l2 * w
        gc = g.sum(axis=0)
        loss += l2 * (float(np.sum(a * a)) + float(np.sum(t * t)) + float(np.sum(w * w)))
        return loss, np.concatenate([ga.ravel(), gt.ravel(), gw, gc])

    a, t, w, c = unpack(minimize_lbfgs(fun, x0, max_iter))
    coef, intercept = a @ t - w[:, None], c
    if not needs_calibration(recipe):
        return coef, intercept
    gamma, shift = calibrate_logits(z @ coef + intercept, y)
    return gamma * coef, gamma * intercept + shift


def fit_bilinear(
    z: FloatArray,
    y: FloatArray,
    dim: int,
    l2: float,
    recipe: str = "pairwise",
    random_state: int = 0,
    max_iter: int = 200,
) -> tuple[FloatArray, FloatArray]:
    """Fit ``s_j(z) = (z W) . v_j + b_j``; returns the (calibrated) logit as
    ``(coef (d, m), intercept (m,))``."""
    d = z.shape[1]
    m = y.shape[1]
    rng = np.random.default_rng(random_state)
    w0 = rng.normal(0.0, 0.1 / np.sqrt(d), (d, dim))
    v0 = rng.normal(0.0, 0.1, (dim, m))
    b0 = logit(np.clip(y.mean(axis=0), 0.02, 0.98))
    x0 = np.concatenate([w0.ravel(), v0.ravel(), b0])
    split = [d * dim, d * dim + dim * m]
    loss_of = recipe_loss(recipe, y)

    def fun(p: FloatArray) -> tuple[float, FloatArray]:
        w = p[: split[0]].reshape(d, dim)
        v = p[split[0] : split[1]].reshape(dim, m)
        b = p[split[1] :]
        zw = z @ w
        loss, g = loss_of(zw @ v + b)
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
    if not needs_calibration(recipe):
        return coef, b
    gamma, shift = calibrate_logits(z @ coef + b, y)
    return gamma * coef, gamma * b + shift


class IRTScorer(HeadScorer):
    """Multidimensional item response theory: model abilities x query traits from the text.

    Args:
        n_dims: Latent ability dimensions (``None``: chosen by CV from 1, 2, 4).
        l2: L2 penalty (``None``: chosen by CV).
        max_iter: L-BFGS iterations.

    Example:
        >>> IRTScorer(n_dims=2).n_dims
        2
    """

    input = "dense"
    search_space = {"n_dims": (1, 2, 4), "l2": (3e-3, 1e-2, 3e-2, 1e-1)}
    tags = Tags(recipes=_RECIPES)

    def __init__(self, n_dims: int | None = None, l2: float | None = None, max_iter: int = 200):
        self.n_dims = n_dims
        self.l2 = l2
        self.max_iter = max_iter

    def check_params(self) -> None:
        if self.n_dims is not None and int(self.n_dims) < 0:
            raise ValueError(f"n_dims must be >= 0, got {self.n_dims!r}")
        if self.l2 is not None and not float(self.l2) >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        coef, intercept = fit_mirt(
            X,
            Y,
            int(params["n_dims"]),
            float(params["l2"]),
            context.random_state,
            int(self.max_iter),
            context.recipe,
        )
        return LinearHead(coef, intercept, link="logistic")


class BilinearScorer(HeadScorer):
    """RouteLLM's bilinear model of (query, model) pairs (matrix factorisation).

    Args:
        dim: Latent dimensions (``None``: chosen by CV from 8, 32).
        l2: L2 penalty (``None``: chosen by CV).
        max_iter: L-BFGS iterations.

    Example:
        >>> BilinearScorer(dim=16).dim
        16
    """

    input = "dense"
    search_space = {"dim": (8, 32), "l2": (1e-3, 1e-2, 1e-1)}
    tags = Tags(recipes=("pairwise", "pointwise", "contrastive"))

    def __init__(self, dim: int | None = None, l2: float | None = None, max_iter: int = 200):
        self.dim = dim
        self.l2 = l2
        self.max_iter = max_iter

    def check_params(self) -> None:
        if self.dim is not None and int(self.dim) < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim!r}")
        if self.l2 is not None and not float(self.l2) >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        coef, intercept = fit_bilinear(
            X,
            Y,
            int(params["dim"]),
            float(params["l2"]),
            context.recipe,
            context.random_state,
            int(self.max_iter),
        )
        return LinearHead(coef, intercept, link="logistic")
