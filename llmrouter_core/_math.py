"""Small numeric helpers shared by every layer: one sigmoid, one logit, in-place clipping."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["clip_inplace", "logit", "sigmoid"]

FloatArray = npt.NDArray[np.float64]


def sigmoid(z: Any) -> FloatArray:
    """The logistic function, with ``z`` clipped to [-35, 35] so ``exp`` never overflows.

    Example:
        >>> sigmoid(np.array([0.0, 100.0])).tolist()
        [0.5, 1.0]
    """
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0))), dtype=np.float64)


def logit(p: Any, eps: float = 1e-4) -> Any:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``."""
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p / (1.0 - p))


def clip_inplace(a: FloatArray, low: Any, high: Any) -> FloatArray:
    """``np.clip(a, low, high)`` written into ``a`` (which the caller owns)."""
    np.maximum(a, low, out=a)
    np.minimum(a, high, out=a)
    return a


class RowMatrix:
    """A ``(d, m)`` weight matrix kept as its nonzero rows, for ``x @ W`` with sparse ``x``.

    Hashed text features have hundreds of thousands of columns, of which a query touches a
    few hundred and a trained model weights a few thousand. Keeping only the weighted rows as
    one dense float32 block makes the product one small sparse-times-dense product: ``x``'s
    columns are mapped to the block's rows (columns without a weight row are dropped). Each
    output row is summed in the order of ``x``'s entries, so a query's result does not depend
    on the batch it comes in.

    Args:
        w: The ``(d, m)`` matrix, dense or sparse.
        rows: Instead of reading the nonzero rows from ``w``: the row numbers of ``w``'s rows
            given as a dense ``(len(rows), m)`` block (``w`` is then that block).
        d: The number of rows when ``rows`` is given.

    Example:
        >>> import scipy.sparse as sp
        >>> m = RowMatrix(np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]]))
        >>> m.rmatmul(sp.csr_matrix([[5.0, 1.0, 7.0]])).tolist()
        [[1.0, 2.0]]
    """

    def __init__(self, w: Any, rows: Any = None, d: int | None = None) -> None:
        import scipy.sparse as sp

        if rows is None:
            if sp.issparse(w):
                csr = sp.csr_matrix(w)
                rows = np.flatnonzero(np.diff(csr.indptr))
                block = csr[rows].toarray()
            else:
                dense = np.asarray(w)
                rows = np.flatnonzero(np.any(dense != 0, axis=1))
                block = dense[rows]
            d = int(w.shape[0])
        elif d is None:
            raise ValueError("RowMatrix: give d (the number of rows) with rows")
        else:
            block = np.asarray(w)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.block = np.ascontiguousarray(block, dtype=np.float32)
        self.shape = (int(d), int(self.block.shape[1]))
        self._row_of = np.full(self.shape[0], -1, dtype=np.int64)
        self._row_of[self.rows] = np.arange(self.rows.size)

    def rmatmul(self, x: Any) -> FloatArray:
        """``x @ W`` as a new dense float64 array, ``(n, m)``."""
        import scipy.sparse as sp

        if not sp.issparse(x):
            x = np.asarray(x)
            if self.rows.size < x.shape[1]:
                x = x[:, self.rows]
            return np.asarray(x @ self.block, dtype=np.float64)
        csr = sp.csr_matrix(x)
        cols = csr.indices
        known = cols < self.shape[0]  # columns past the last weight row weigh nothing
        pos = np.where(known, self._row_of[np.where(known, cols, 0)], -1)
        keep = pos >= 0
        n = csr.shape[0]
        if n == 1:
            counts = np.count_nonzero(keep, keepdims=True)
        else:
            entry_rows = np.repeat(np.arange(n), np.diff(csr.indptr))
            counts = np.bincount(entry_rows[keep], minlength=n)
        indptr = np.concatenate(([0], np.cumsum(counts)))
        reduced = sp.csr_matrix(
            (csr.data[keep].astype(np.float32), pos[keep], indptr),
            shape=(csr.shape[0], self.rows.size),
        )
        return np.asarray(reduced @ self.block, dtype=np.float64)
