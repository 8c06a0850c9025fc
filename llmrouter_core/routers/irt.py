"""Item-response-theory router: multidimensional IRT with query traits read from the text.

Item response theory models the probability that a respondent answers an item correctly from
the respondent's ability and the item's difficulty. Here the pool models are the respondents
and the queries are the items (as in MIRT-based LLM routers). With query features ``z``
(a dense projection of the query embedding):

.. math::

    P(\\text{model } j \\text{ answers query } i \\text{ well})
    = \\sigma\\big(a_i \\cdot \\theta_j + c_j - b_i\\big),
    \\quad a_i = z_i A,\\; b_i = z_i \\cdot w

``theta_j`` (``n_dims`` latent abilities) and ``c_j`` (overall ability) belong to the model;
the query's discrimination ``a_i`` and difficulty ``b_i`` are linear in its features, so a new
query gets its traits without refitting. All parameters are fitted jointly by L-BFGS on the
soft-label logistic loss over *every* (query, model) score, ties included, with an L2 penalty.
``n_dims`` and the penalty are chosen by cross-validated AIQ on the training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.routers._zoo import ZooRouter, logit, minimize_lbfgs, soft_bce
from llmrouter_core.routers.heads import Head, LinearHead

__all__ = ["IRTRouter", "fit_mirt"]


def fit_mirt(
    z: FloatArray,
    y: FloatArray,
    n_dims: int,
    l2: float,
    random_state: int = 0,
    max_iter: int = 200,
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
    inv_n = 1.0 / n

    def unpack(p: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        parts = np.split(p, np.cumsum(sizes)[:-1])
        return parts[0].reshape(d, k), parts[1].reshape(k, m), parts[2], parts[3]

    def fun(p: FloatArray) -> tuple[float, FloatArray]:
        a, t, w, c = unpack(p)
        za = z @ a
        logits = za @ t - (z @ w)[:, None] + c
        loss, g = soft_bce(logits, y)
        g *= inv_n
        loss *= inv_n
        ga = z.T @ (g @ t.T) + 2 * l2 * a
        gt = za.T @ g + 2 * l2 * t
        gw = -(z.T @ g.sum(axis=1)) + 2 * l2 * w
        gc = g.sum(axis=0)
        loss += l2 * (float(np.sum(a * a)) + float(np.sum(t * t)) + float(np.sum(w * w)))
        return loss, np.concatenate([ga.ravel(), gt.ravel(), gw, gc])

    a, t, w, c = unpack(minimize_lbfgs(fun, x0, max_iter))
    return a @ t - w[:, None], c


class IRTRouter(ZooRouter):
    """Multidimensional item response theory: model abilities x query traits from the text.

    Args:
        n_dims: Latent ability dimensions (``None``: chosen by CV from 1, 2, 4).
        l2: L2 penalty (``None``: chosen by CV).
        n_components: Dense feature dimensions (projection of the embedding).
        max_iter: L-BFGS iterations.
        cost_model: ``"features"`` (per-query cost from the query features) or ``"tokens"``.
        embedder, embedder_params, cv, blend, random_state: as :class:`SupervisedRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("irt", n_dims=2).family
        'irt'
    """

    name = "irt"
    family = "irt"
    dense_input = True
    search_space = {"n_dims": (1, 2, 4), "l2": (3e-3, 1e-2, 3e-2, 1e-1)}

    def __init__(
        self,
        *,
        n_dims: int | None = None,
        l2: float | None = None,
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
        self.n_dims = n_dims
        self.l2 = l2
        self.n_components = n_components
        self.max_iter = max_iter

    def _check_params(self) -> None:
        if self.n_dims is not None and int(self.n_dims) < 0:
            raise ValueError("n_dims must be >= 0")
        if self.l2 is not None and float(self.l2) < 0:
            raise ValueError("l2 must be >= 0")

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        coef, intercept = fit_mirt(
            x, y, int(params["n_dims"]), float(params["l2"]), self.random_state, self.max_iter
        )
        return LinearHead(coef, intercept, link="logistic")
