"""Solvers shared by every scorer: batched ridge and soft-label logistic paths, L-BFGS.

A scorer fits one model per pool model, for every candidate regularisation strength and every
cross-validation fold. Fitting them one scikit-learn estimator at a time repeats the same work
(input validation, centring, conversion of the sparse features) for each model, and generic
solvers spend most of their time on all ``2**18`` hashed columns, although only the columns
seen in the training rows can get a non-zero weight. Here:

* :class:`Design` keeps the training features once, restricted to the columns seen in
  training, in float64 CSR with its transpose (so both products are row-major);
* :func:`ridge_path` solves ridge regression for *all* models and *all* penalties at once:
  one block conjugate-gradient run on the dual (kernel) system, with the intercept
  unpenalised as in :class:`sklearn.linear_model.Ridge`;
* :func:`soft_logistic_path` solves L2-penalised soft-label logistic regression for all
  models at once with a truncated Newton method (the objective of scikit-learn's
  ``LogisticRegression(solver="liblinear")`` on the doubled, weighted data, intercept
  penalised like liblinear's bias feature, or unpenalised), warm-started along increasing
  ``C``;
* :func:`minimize_lbfgs` minimises the smooth losses of the latent-factor scorers (IRT,
  matrix factorisation, calibrations), and :func:`soft_bce` is their pointwise loss.

Ridge and logistic solve the same convex problems as the estimators they replace, to a
tighter tolerance, so the selected hyperparameters and predictions agree with them up to
solver tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from llmrouter_core._math import sigmoid
from llmrouter_core.data.core import FloatArray

__all__ = [
    "Design",
    "block_cg",
    "minimize_lbfgs",
    "ridge_path",
    "soft_bce",
    "soft_logistic_path",
]

IntArray = npt.NDArray[np.intp]


def _colsum(a: FloatArray, b: FloatArray) -> FloatArray:
    return np.asarray(np.einsum("ij,ij->j", a, b), dtype=np.float64)


class Design:
    """Training features for the batched solvers.

    Sparse input is restricted to the columns that occur in at least one row (a penalised
    linear model gives the others weight zero) and converted once to float64 CSR, with its
    transpose as CSR for the ``x.T @ r`` products.

    Args:
        x: ``(n, d)`` features, ``scipy.sparse`` or dense.
        bias: Append a constant column of ones (a penalised intercept, as liblinear's).
    """

    def __init__(self, x: Any, bias: bool = False) -> None:
        self.n_rows, self.n_features = int(x.shape[0]), int(x.shape[1])
        self.bias = bool(bias)
        if sp.issparse(x):
            csr = sp.csr_matrix(x)
            cols = np.unique(csr.indices)
            if cols.size < self.n_features:
                csr = csr[:, cols]
            self.cols: IntArray | None = cols.astype(np.intp)
            mat: Any = sp.csr_matrix(csr, dtype=np.float64)
            if self.bias:
                mat = sp.hstack([mat, np.ones((self.n_rows, 1))], format="csr")
            self.x: Any = mat
            self.xt: Any = mat.T.tocsr()
        else:
            self.cols = None
            dense = np.asarray(x, dtype=np.float64)
            if self.bias:
                dense = np.hstack([dense, np.ones((self.n_rows, 1))])
            self.x = np.ascontiguousarray(dense)
            self.xt = np.ascontiguousarray(dense.T)

    @property
    def dim(self) -> int:
        """Number of solver columns (kept features, plus the bias column if any)."""
        return int(self.x.shape[1])

    def dot(self, v: FloatArray) -> FloatArray:
        """``x @ v``."""
        return np.asarray(self.x @ v, dtype=np.float64)

    def tdot(self, r: FloatArray) -> FloatArray:
        """``x.T @ r``."""
        return np.asarray(self.xt @ r, dtype=np.float64)

    def unpack(self, w: FloatArray) -> tuple[Any, FloatArray]:
        """Solver weights ``(dim, m)`` -> ``(coef (n_features, m), bias (m,))``.

        The coefficients are CSR (rows of unseen columns are empty) for sparse input, dense
        otherwise; the bias is zero without a bias column.
        """
        m = w.shape[1]
        if self.bias:
            w, b = w[:-1], np.array(w[-1], dtype=np.float64)
        else:
            b = np.zeros(m)
        if self.cols is None:
            return np.array(w, dtype=np.float64), b
        indptr = np.zeros(self.n_features + 1, dtype=np.int64)
        indptr[self.cols + 1] = m
        np.cumsum(indptr, out=indptr)
        indices = np.tile(np.arange(m, dtype=np.int32), self.cols.size)
        coef = sp.csr_matrix(
            (np.array(w, dtype=np.float64).ravel(), indices, indptr),  # a copy
            shape=(self.n_features, m),
        )
        return coef, b


def block_cg(
    apply: Callable[[FloatArray, IntArray], FloatArray],
    b: FloatArray,
    *,
    rtol: float = 1e-6,
    max_iter: int = 500,
) -> FloatArray:
    """Conjugate gradients from zero for ``k`` independent symmetric positive definite systems.

    ``apply(v, cols)`` returns ``A_j v_j`` for the columns ``cols`` of the block (each column
    may have its own matrix, e.g. its own ridge penalty). Column ``j`` stops at
    ``||r_j|| <= rtol ||b_j||``; converged columns leave the working block, so later products
    only involve the others.
    """
    k = b.shape[1]
    out = np.zeros_like(b)
    idx = np.arange(k)
    target = rtol * np.sqrt(_colsum(b, b))
    r = np.array(b, dtype=np.float64)
    x = np.zeros_like(r)
    p = r.copy()
    rs = _colsum(r, r)
    live = np.sqrt(rs) > target
    for _ in range(int(max_iter)):
        if not live.all():
            out[:, idx[~live]] = x[:, ~live]
            idx, x, r, p, rs = idx[live], x[:, live], r[:, live], p[:, live], rs[live]
        if idx.size == 0:
            break
        ap = apply(p, idx)
        pap = _colsum(p, ap)
        ok = pap > 0
        alpha = np.where(ok, rs / np.where(ok, pap, 1.0), 0.0)
        x += alpha * p
        r -= alpha * ap
        rs_new = _colsum(r, r)
        beta = rs_new / np.where(rs > 0, rs, 1.0)
        p *= beta
        p += r
        rs = rs_new
        live = (np.sqrt(rs) > target[idx]) & ok
    out[:, idx] = x
    return out


def ridge_path(
    design: Design,
    y: FloatArray,
    alphas: Sequence[float],
    *,
    rtol: float = 1e-6,
    max_iter: int = 1000,
) -> list[tuple[Any, FloatArray]]:
    """Ridge regression with an unpenalised intercept, for every column of ``y`` and every
    penalty in ``alphas``: ``min ||y_j - x w_j - b_j||^2 + alpha ||w_j||^2``.

    Solves the dual system ``(Xc Xc^T + alpha I) a = y - mean(y)`` (``Xc``: centred features)
    for all penalties and outputs in one block CG, then ``w = X^T a``, ``b = mean(y) -
    mean(X w)``. With centred right-hand sides every iterate stays centred, so ``Xc`` is never
    formed.

    Returns:
        ``[(coef (n_features, m), intercept (m,)) for alpha in alphas]``, coef as
        :meth:`Design.unpack` gives it.
    """
    if design.bias:
        raise ValueError("ridge_path takes a design without a bias column")
    m = y.shape[1]
    ybar = y.mean(axis=0)
    shifts = np.repeat(np.asarray(alphas, dtype=np.float64), m)
    rhs = np.tile(y - ybar, (1, len(alphas)))

    def apply(v: FloatArray, cols: IntArray) -> FloatArray:
        kv = design.dot(design.tdot(v))
        kv -= kv.mean(axis=0)
        kv += shifts[cols] * v
        return kv

    a = block_cg(apply, rhs, rtol=rtol, max_iter=max_iter)
    w = design.tdot(a)
    intercept = np.tile(ybar, len(alphas)) - design.dot(w).mean(axis=0)
    out = []
    for i in range(len(alphas)):
        cols = slice(i * m, (i + 1) * m)
        coef, _ = design.unpack(w[:, cols])
        out.append((coef, np.array(intercept[cols])))
    return out


def _soft_logistic_loss(z: FloatArray, y: FloatArray) -> FloatArray:
    """Per-column sum of ``log(1 + e^z) - y z``."""
    return np.asarray(np.sum(np.logaddexp(0.0, z) - y * z, axis=0), dtype=np.float64)


def soft_logistic_path(
    design: Design,
    y: FloatArray,
    cs: Sequence[float],
    *,
    tol: float = 1e-5,
    max_newton: int = 100,
    cg_rtol: float = 0.1,
    max_cg: int = 200,
    penalize_bias: bool = True,
) -> list[tuple[Any, FloatArray]]:
    """Soft-label logistic regression for every column of ``y`` (targets in [0, 1]) and
    every ``C`` in ``cs``:

    ``min 0.5 ||w_j||^2 + C sum_i [log(1 + e^{z_ij}) - y_ij z_ij]``, ``z_ij = x_i . w_j``,

    where ``x`` includes the design's bias column if it has one. With the bias column this is
    the objective liblinear minimises for ``LogisticRegression(C=C)`` on each query duplicated
    as a positive of weight ``y`` and a negative of weight ``1 - y`` (its intercept is a
    penalised constant feature). With ``penalize_bias=False`` the bias column is left out of
    the penalty (the intercept of scikit-learn's other solvers); targets of one class only
    then have no finite solution, so give both. Solved by a truncated Newton method (conjugate
    gradients on the Newton system, Armijo line search) for all columns at once; a column
    stops when its gradient norm falls below ``tol`` times its norm at zero. The ``C`` values
    are visited in increasing order, each starting from the previous solution.

    Returns:
        ``[(coef (n_features, m), intercept (m,)) for C in cs]`` (in the order of ``cs``),
        coef as :meth:`Design.unpack` gives it.
    """
    m = y.shape[1]
    w = np.zeros((design.dim, m))
    # Penalty weight of each solver column (1, or 0 for an unpenalised bias column).
    penalty = np.ones((design.dim, 1))
    if design.bias and not penalize_bias:
        penalty[-1] = 0.0
    # Gradient of the loss part at zero (sigmoid(0) = 1/2): the per-column reference norms.
    g0 = design.tdot(0.5 - y)
    g0_norm = np.maximum(np.sqrt(_colsum(g0, g0)), 1e-300)
    results: dict[float, tuple[Any, FloatArray]] = {}
    for c in sorted({float(v) for v in cs}):
        target = tol * c * g0_norm
        z = design.dot(w)
        stalled = np.zeros(m, dtype=bool)
        for _ in range(int(max_newton)):
            p = sigmoid(z)
            grad = penalty * w + c * design.tdot(p - y)
            active = np.flatnonzero((np.sqrt(_colsum(grad, grad)) > target) & ~stalled)
            if active.size == 0:
                break
            curv = c * p[:, active] * (1.0 - p[:, active])

            def hess(v: FloatArray, cols: IntArray, curv: FloatArray = curv) -> FloatArray:
                out = design.tdot(curv[:, cols] * design.dot(v))
                out += penalty * v
                return out

            g = grad[:, active]
            step = block_cg(hess, -g, rtol=cg_rtol, max_iter=max_cg)
            zs = design.dot(step)
            wa, za, ya = w[:, active], z[:, active], y[:, active]
            rw, rs = penalty * wa, penalty * step
            f0 = 0.5 * _colsum(rw, wa) + c * _soft_logistic_loss(za, ya)
            slope = _colsum(g, step)
            ww, ws, ss = _colsum(rw, wa), _colsum(rw, step), _colsum(rs, step)
            t = np.ones(active.size)
            pending = np.ones(active.size, dtype=bool)
            for _ls in range(40):
                idx = np.flatnonzero(pending)
                if idx.size == 0:
                    break
                ti = t[idx]
                reg = 0.5 * (ww[idx] + 2 * ti * ws[idx] + ti * ti * ss[idx])
                fn = reg + c * _soft_logistic_loss(za[:, idx] + ti * zs[:, idx], ya[:, idx])
                ok = fn <= f0[idx] + 1e-4 * ti * slope[idx]
                pending[idx[ok]] = False
                t[idx[~ok]] *= 0.5
            # No decrease found: at this precision the column is as good as it gets.
            t[pending] = 0.0
            stalled[active[pending]] = True
            w[:, active] = wa + t * step
            z[:, active] = za + t * zs
        coef, bias = design.unpack(w)
        results[c] = (coef, bias)
    return [results[float(v)] for v in cs]


def soft_bce(z: FloatArray, y: FloatArray) -> tuple[float, FloatArray]:
    """Sum of soft-label logistic losses of logits ``z`` against targets ``y`` in [0, 1], and
    its gradient with respect to ``z``."""
    # log(1 + e^z) - y z, computed stably.
    loss = float(np.sum(np.logaddexp(0.0, z) - y * z))
    return loss, sigmoid(z) - y


def minimize_lbfgs(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    max_iter: int,
    memory: int = 10,
    tol: float = 1e-6,
) -> FloatArray:
    """Minimise a smooth function given as ``fun(x) -> (value, gradient)`` with L-BFGS.

    A small numpy implementation (two-loop recursion, backtracking Armijo line search): the
    problems here have a few hundred to a few thousand parameters, where the per-iteration
    overhead of a general-purpose optimiser dominates. Deterministic for a given ``x0``.
    """
    from threadpoolctl import threadpool_limits

    # Many small matrix products: BLAS threads cost more than they save (and on a shared
    # machine they can make each product several times slower).
    with threadpool_limits(limits=1, user_api="blas"):
        return _lbfgs(fun, x0, max_iter, memory, tol)


def _lbfgs(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    max_iter: int,
    memory: int,
    tol: float,
) -> FloatArray:
    x = np.array(x0, dtype=np.float64)
    f, g = fun(x)
    s_hist: list[FloatArray] = []
    y_hist: list[FloatArray] = []
    scale0 = max(1.0, abs(f))
    for _ in range(int(max_iter)):
        gnorm = float(np.max(np.abs(g))) if g.size else 0.0
        if gnorm <= tol:
            break
        # Two-loop recursion: d = -H g.
        q = g.copy()
        alphas = []
        for s_k, y_k in zip(reversed(s_hist), reversed(y_hist), strict=True):
            rho = 1.0 / float(y_k @ s_k)
            a = rho * float(s_k @ q)
            alphas.append((a, rho))
            q -= a * y_k
        if s_hist:
            q *= float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
        else:
            q /= max(gnorm, 1.0)
        for (a, rho), s_k, y_k in zip(reversed(alphas), s_hist, y_hist, strict=True):
            b = rho * float(y_k @ q)
            q += (a - b) * s_k
        d = -q
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            d = -g / max(gnorm, 1.0)
            slope = float(g @ d)
        step = 1.0
        for _ls in range(30):
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s_k = x_new - x
        y_k = g_new - g
        if float(s_k @ y_k) > 1e-12:
            s_hist.append(s_k)
            y_hist.append(y_k)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        improvement = f - f_new
        x, f, g = x_new, f_new, g_new
        if improvement <= 1e-10 * scale0:
            break
    return x
