"""Batched solvers (and a feature projection) for the heads of the supervised routers.

A supervised router fits one linear scorer per pool model, for every candidate regularisation
strength and every cross-validation fold. Fitting them one scikit-learn estimator at a time
repeats the same work (input validation, centring, conversion of the sparse features) for
each model, and the generic solvers spend most of their time on all ``2**18`` hashed columns,
although only the columns seen in the training rows can get a non-zero weight. Here:

* :class:`Design` keeps the training features once, restricted to the columns seen in
  training, in float64 CSR with its transpose (so both products are row-major);
* :func:`ridge_path` solves ridge regression for *all* models and *all* penalties at once:
  one block conjugate-gradient run on the dual (kernel) system, with the intercept
  unpenalised as in :class:`sklearn.linear_model.Ridge`;
* :func:`soft_logistic_path` solves L2-penalised soft-label logistic regression for all
  models at once with a truncated Newton method (the objective of scikit-learn's
  ``LogisticRegression(solver="liblinear")`` on the doubled, weighted data, intercept
  penalised like liblinear's bias feature), warm-started along increasing ``C``.

Both solve the same convex problems as the estimators they replace, to a tighter tolerance,
so the selected hyperparameters and predictions agree with them up to solver tolerance.

:class:`Projection` (a truncated SVD that can be folded into the first layer of a network)
gives the MLP router a few hundred dense inputs instead of thousands of sparse ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from llmrouter_core.data.core import FloatArray

__all__ = ["Design", "Projection", "ridge_path", "soft_logistic_path"]

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


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def soft_logistic_path(
    design: Design,
    y: FloatArray,
    cs: Sequence[float],
    *,
    tol: float = 1e-5,
    max_newton: int = 100,
    cg_rtol: float = 0.1,
    max_cg: int = 200,
) -> list[tuple[Any, FloatArray]]:
    """Soft-label logistic regression for every column of ``y`` (targets in [0, 1]) and
    every ``C`` in ``cs``:

    ``min 0.5 ||w_j||^2 + C sum_i [log(1 + e^{z_ij}) - y_ij z_ij]``, ``z_ij = x_i . w_j``,

    where ``x`` includes the design's bias column if it has one. With the bias column this is
    the objective liblinear minimises for ``LogisticRegression(C=C)`` on each query duplicated
    as a positive of weight ``y`` and a negative of weight ``1 - y`` (its intercept is a
    penalised constant feature). Solved by a truncated Newton method (conjugate gradients on
    the Newton system, Armijo line search) for all columns at once; a column stops when its
    gradient norm falls below ``tol`` times its norm at zero. The ``C`` values are visited in
    increasing order, each starting from the previous solution.

    Returns:
        ``[(coef (n_features, m), intercept (m,)) for C in cs]`` (in the order of ``cs``),
        coef as :meth:`Design.unpack` gives it.
    """
    m = y.shape[1]
    w = np.zeros((design.dim, m))
    # Gradient of the loss part at zero (sigmoid(0) = 1/2): the per-column reference norms.
    g0 = design.tdot(0.5 - y)
    g0_norm = np.maximum(np.sqrt(_colsum(g0, g0)), 1e-300)
    results: dict[float, tuple[Any, FloatArray]] = {}
    for c in sorted({float(v) for v in cs}):
        target = tol * c * g0_norm
        z = design.dot(w)
        stalled = np.zeros(m, dtype=bool)
        for _ in range(int(max_newton)):
            p = _sigmoid(z)
            grad = w + c * design.tdot(p - y)
            active = np.flatnonzero((np.sqrt(_colsum(grad, grad)) > target) & ~stalled)
            if active.size == 0:
                break
            curv = c * p[:, active] * (1.0 - p[:, active])

            def hess(v: FloatArray, cols: IntArray, curv: FloatArray = curv) -> FloatArray:
                out = design.tdot(curv[:, cols] * design.dot(v))
                out += v
                return out

            g = grad[:, active]
            step = block_cg(hess, -g, rtol=cg_rtol, max_iter=max_cg)
            zs = design.dot(step)
            wa, za, ya = w[:, active], z[:, active], y[:, active]
            f0 = 0.5 * _colsum(wa, wa) + c * _soft_logistic_loss(za, ya)
            slope = _colsum(g, step)
            ww, ws, ss = _colsum(wa, wa), _colsum(wa, step), _colsum(step, step)
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


class Projection:
    """A linear map of the features onto their top singular directions (truncated SVD).

    ``z = x[:, cols] @ components - shift``: sparse input keeps only the columns that occur in
    at least ``min_df`` training rows (a column seen once carries no pattern to generalise
    from); ``shift`` centres ``z`` on the training rows. Fitted without labels, so a router may
    fit it once on all its training queries and reuse it in every cross-validation fold.

    Args:
        n_components: Dimensions kept (at most ``min(n_rows, n_columns) - 1``).
        min_df: Minimum number of training rows a sparse column must occur in.
        n_iter: Power iterations of the randomised SVD.
        random_state: Seed of the randomised SVD.
    """

    def __init__(
        self, n_components: int, min_df: int = 2, n_iter: int = 2, random_state: int = 0
    ) -> None:
        self.n_components = int(n_components)
        self.min_df = int(min_df)
        self.n_iter = int(n_iter)
        self.random_state = int(random_state)

    def fit(self, x: Any) -> Projection:
        from sklearn.utils.extmath import randomized_svd
        from threadpoolctl import threadpool_limits

        n, d = x.shape
        self.n_features_ = int(d)
        if sp.issparse(x):
            csr = sp.csr_matrix(x)
            df = np.bincount(csr.indices, minlength=d)
            cols = np.flatnonzero(df >= self.min_df)
            if cols.size < 2:
                cols = np.flatnonzero(df >= 1)
            self.cols_: IntArray | None = cols.astype(np.intp)
            sub: Any = sp.csr_matrix(csr[:, cols], dtype=np.float64)
        else:
            self.cols_ = None
            sub = np.asarray(x, dtype=np.float64)
        k = max(1, min(self.n_components, sub.shape[1] - 1, n - 1))
        # Dense factorisations of a few hundred columns: BLAS threads cost more than they
        # save (and on a shared machine they can make them several times slower).
        with threadpool_limits(limits=1, user_api="blas"):
            _, _, vt = randomized_svd(
                sub, k, n_iter=self.n_iter, random_state=self.random_state, flip_sign=True
            )
        self.components_ = np.ascontiguousarray(vt.T)  # (kept columns, k)
        self.shift_ = np.zeros(k)
        self.shift_ = self.transform(x).mean(axis=0)
        return self

    def truncated(self, n_components: int) -> Projection:
        """The same projection keeping only its first ``n_components`` directions (the top
        singular directions of a rank-``k`` sketch are nested)."""
        k = max(1, min(int(n_components), self.components_.shape[1]))
        out = Projection(k, self.min_df, self.n_iter, self.random_state)
        out.n_features_ = self.n_features_
        out.cols_ = self.cols_
        out.components_ = np.ascontiguousarray(self.components_[:, :k])
        out.shift_ = self.shift_[:k].copy()
        return out

    def transform(self, x: Any) -> FloatArray:
        """``(n, n_components)`` projected features (float64)."""
        sub = x[:, self.cols_] if self.cols_ is not None else x
        return np.asarray(sub @ self.components_, dtype=np.float64) - self.shift_

    def fold_into(self, weight: FloatArray, bias: FloatArray) -> tuple[FloatArray, FloatArray]:
        """A layer ``z @ weight + bias`` on projected features, as the same layer on the raw
        features: ``(weight (n_features, h), bias (h,))``."""
        inner = self.components_ @ weight
        if self.cols_ is None:
            full = inner
        else:
            n_features = int(self.n_features_)
            full = np.zeros((n_features, weight.shape[1]))
            full[self.cols_] = inner
        return full, np.asarray(bias - self.shift_ @ weight, dtype=np.float64)
