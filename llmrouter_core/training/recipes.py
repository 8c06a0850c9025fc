"""Training recipes: how a scorer learns from the score matrix.

A recipe is the training objective, separate from the scorer's form, so a scorer that
declares it can take several recipes (``Tags.recipes``) is trained with whichever the router
names. For scorers that produce a logit per (query, model) (IRT, the bilinear model of matrix
factorisation), a recipe gives the loss of the logits ``s`` (``(n, m)``) against the scores
``y`` and its gradient:

* ``pointwise``: soft-label logistic loss of every score (``P(model answers well)``);
* ``pairwise``: Bradley-Terry on every pair of models whose scores differ, weighted by the
  gap (RouteLLM's matrix factorisation); ties carry no preference;
* ``contrastive``: RouterDC's sample-LLM loss, InfoNCE over the pool with every model tied
  at the query's best score as a positive.

Pairwise and contrastive logits are defined only up to a shift per query, so a scorer trained
with them maps logits to quality with :func:`calibrate_logits` afterwards.

``online`` is the recipe of scorers that keep learning from feedback after training
(:meth:`~llmrouter_core.router.Router.feedback`); they are warm-started on the score matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from llmrouter_core._math import sigmoid
from llmrouter_core.data.core import FloatArray
from llmrouter_core.training.solvers import minimize_lbfgs, soft_bce

__all__ = [
    "RECIPES",
    "Loss",
    "calibrate_logits",
    "contrastive_loss",
    "needs_calibration",
    "pairwise_loss",
    "recipe_loss",
]

#: Every recipe a router can name.
RECIPES = ("pointwise", "pairwise", "contrastive", "online")

#: A recipe's loss: ``loss(s) -> (value, d value / d s)`` for logits ``s`` of the training
#: rows (the scores are bound in when the loss is made), normalised per recipe.
Loss = Callable[[FloatArray], tuple[float, FloatArray]]


def pairwise_loss(y: FloatArray) -> Loss:
    """Bradley-Terry loss of score gaps: ``sum pref[i, a, b] log(1 + e^{s_b - s_a})`` over
    the pairs with ``pref = max(y_ia - y_ib, 0)``, divided by the total preference."""
    pref = np.maximum(y[:, :, None] - y[:, None, :], 0.0)
    norm = 1.0 / max(float(pref.sum()), 1.0)

    def loss(s: FloatArray) -> tuple[float, FloatArray]:
        delta = s[:, :, None] - s[:, None, :]
        value = float(np.sum(pref * np.logaddexp(0.0, -delta)))
        g = pref * sigmoid(-delta)
        return value * norm, (g.sum(axis=1) - g.sum(axis=2)) * norm

    return loss


def pointwise_loss(y: FloatArray, norm: float | None = None) -> Loss:
    """Soft-label logistic loss of every score, divided by ``norm`` (default ``n x m``)."""
    scale = 1.0 / (float(y.size) if norm is None else float(norm))

    def loss(s: FloatArray) -> tuple[float, FloatArray]:
        value, g = soft_bce(s, y)
        return value * scale, g * scale

    return loss


def contrastive_loss(y: FloatArray, temperature: float = 1.0, tol: float = 1e-9) -> Loss:
    """InfoNCE over the pool per query: the models tied at the query's best score are the
    positives (a query on which every model scores 0 teaches nothing and is skipped)."""
    best = y.max(axis=1, keepdims=True)
    pos = (y >= best - tol) & (best > 0)
    rows = pos.any(axis=1)
    n = max(int(rows.sum()), 1)
    t = float(temperature)

    def loss(s: FloatArray) -> tuple[float, FloatArray]:
        z = s / t
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        all_sum = e.sum(axis=1, keepdims=True)
        pos_sum = np.where(pos, e, 0.0).sum(axis=1, keepdims=True)
        value = float(np.sum((np.log(all_sum) - np.log(np.maximum(pos_sum, 1e-300)))[rows]))
        g = e / all_sum - np.where(pos, e, 0.0) / np.maximum(pos_sum, 1e-300)
        g[~rows] = 0.0
        return value / n, g / (t * n)

    return loss


def recipe_loss(recipe: str, y: FloatArray, pointwise_norm: float | None = None) -> Loss:
    """The loss of ``recipe`` on scores ``y`` (see the module docstring)."""
    if recipe == "pointwise" or recipe == "online":
        return pointwise_loss(y, pointwise_norm)
    if recipe == "pairwise":
        return pairwise_loss(y)
    if recipe == "contrastive":
        return contrastive_loss(y)
    raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")


def needs_calibration(recipe: str) -> bool:
    """Whether logits trained with ``recipe`` must be mapped to quality afterwards."""
    return recipe in ("pairwise", "contrastive")


def calibrate_logits(
    s: FloatArray, y: FloatArray, per_model: bool = True, max_iter: int = 100
) -> tuple[float, FloatArray]:
    """``quality = sigmoid(gamma s + c)`` fitted by soft-label logistic loss on all scores;
    returns ``(gamma, c)`` (``c`` per model, or one shared value repeated)."""
    n, m = y.shape
    n_c = m if per_model else 1

    def fun(p: FloatArray) -> tuple[float, FloatArray]:
        gamma, c = p[0], p[1:]
        value, g = soft_bce(gamma * s + c, y)
        gc = g.sum(axis=0) if per_model else np.array([g.sum()])
        return value / (n * m), np.concatenate([[float(np.sum(g * s))], gc]) / (n * m)

    p = minimize_lbfgs(fun, np.concatenate([[1.0], np.zeros(n_c)]), max_iter)
    c = p[1:] if per_model else np.full(m, p[1])
    return float(p[0]), np.asarray(c, dtype=np.float64)
