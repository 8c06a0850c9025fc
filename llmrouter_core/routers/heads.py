"""Inference heads: the learned part of a supervised router, as plain arrays.

Scikit-learn estimators do the learning; a head keeps only the arrays needed to predict, so
routing one query costs one sparse product (no estimator validation overhead) and saving a
router never pickles an estimator.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from llmrouter_core.data.core import FloatArray

__all__ = [
    "Head",
    "KNNHead",
    "LinearHead",
    "MLPHead",
    "RowGroup",
    "RowMatrix",
    "StackHead",
    "head_from_state",
]

Arrays = dict[str, Any]

try:  # scipy's compiled CSR x dense kernel (private; _csr_times_dense falls back without it)
    from scipy.sparse._sparsetools import csr_matvecs as _CSR_MATVECS
except ImportError:  # pragma: no cover - depends on the scipy build
    _CSR_MATVECS = None
try:  # the row gather and CSC x vector kernels behind scipy's indexing and products
    from scipy.sparse._sparsetools import csc_matvec as _csc_matvec
    from scipy.sparse._sparsetools import csr_row_index as _csr_row_index

    _POSTINGS_KERNELS: tuple[Any, Any] | None = (_csr_row_index, _csc_matvec)
except ImportError:  # pragma: no cover - depends on the scipy build
    _POSTINGS_KERNELS = None


def clip_inplace(a: FloatArray, low: Any, high: Any) -> FloatArray:
    """``np.clip(a, low, high)`` written into ``a`` (a new float64 array of the caller's):
    two ufunc calls, without ``np.clip``'s Python wrappers, which cost more than the
    arithmetic on a routed query's handful of models."""
    np.maximum(a, low, out=a)
    np.minimum(a, high, out=a)
    return a


def _dot(x: Any, w: Any) -> FloatArray:
    out = x @ w
    if sp.issparse(out):
        out = out.toarray()
    return np.asarray(out, dtype=np.float64)


class RowMatrix:
    """A ``(d, m)`` weight matrix kept as its nonzero rows, for ``x @ W`` with sparse ``x``.

    Hashed text features have hundreds of thousands of columns of which one query touches a
    few hundred. The product maps ``x``'s columns to the compact rows and multiplies with
    one compiled kernel call: a scipy sparse product validates and allocates several index
    arrays per call, which dominated the time of routing one query. Each row is summed in
    order, so a row's result does not depend on the batch it comes in.

    Args:
        w: The ``(d, m)`` matrix, dense or sparse (kept as is for dense inputs).
        rows: Instead of reading the nonzero rows from ``w``: the row numbers (in any
            order) of ``w``'s rows given as a dense ``(len(rows), m)`` block (``w`` then is
            that block and ``d`` the full number of rows).
        d: The number of rows when ``rows`` is given (at least ``max(rows) + 1``; inputs
            with more columns read the missing rows as zeros).
    """

    def __init__(self, w: Any, rows: Any = None, d: int | None = None) -> None:
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
        else:
            block = np.asarray(w)
            if d is None:
                raise ValueError("RowMatrix: give d (the number of rows) with rows")
        self.rows = np.asarray(rows, dtype=np.int64)
        self.block = np.ascontiguousarray(block, dtype=np.float32)
        self.shape = (int(d), int(self.block.shape[1]))
        self.row_of = np.full(self.shape[0], -1, dtype=np.int32)
        self.row_of[self.rows] = np.arange(self.rows.size, dtype=np.int32)
        # Set by RowGroup: this matrix's columns in a group's fused matrix.
        self.group: tuple[RowGroup, int, int] | None = None

    def rmatmul(self, x: Any) -> FloatArray:
        """``x @ W`` as a dense float64 array, ``(n, m)`` (read-only when this matrix is in
        a :class:`RowGroup`)."""
        if self.group is not None and sp.issparse(x) and x.shape[0] <= RowGroup.memo_rows:
            group, lo, hi = self.group
            return group.product(x)[:, lo:hi]
        return self._rmatmul(x)

    def _rmatmul(self, x: Any) -> FloatArray:
        if not sp.issparse(x):
            x = np.asarray(x)
            if self.rows.size < x.shape[1]:
                x = x[:, self.rows]
            return np.asarray(x @ self.block, dtype=np.float64)
        csr = x if x.format == "csr" else sp.csr_matrix(x)
        n, r = csr.shape[0], self.rows.size
        if csr.shape[1] > self.row_of.size:  # columns past the last weight row: zero rows
            grown = np.full(csr.shape[1], -1, dtype=np.int32)
            grown[: self.row_of.size] = self.row_of
            self.row_of = grown
        pos = self.row_of[csr.indices]
        keep = pos >= 0
        if keep.all():
            indptr, cols, vals = csr.indptr, pos, csr.data
        else:
            if n == 1:
                counts = np.count_nonzero(keep, keepdims=True)
            else:
                rows = np.repeat(np.arange(n), np.diff(csr.indptr))[keep]
                counts = np.bincount(rows, minlength=n)
            indptr = np.concatenate(([0], np.cumsum(counts)))
            cols, vals = pos[keep], csr.data[keep]
        indptr = np.asarray(indptr, dtype=np.int32)
        vals = np.asarray(vals, dtype=np.float32)
        return _csr_times_dense(indptr, cols, vals, self.block, n, r)


class RowGroup:
    """Several :class:`RowMatrix` that multiply the same sparse features, as one product.

    A router applies several linear maps to one query's hashed features (the dense
    projection, a ridge head, the cost correction). Kept side by side in one matrix over the
    union of their rows, they take one kernel call and one pass over the query's features
    instead of one each. Each member's :meth:`RowMatrix.rmatmul` then returns its columns of
    the fused product of the same input object, computed once (the latest product is kept
    while its input is alive). A member's columns equal its own product exactly: each
    output column is summed over the input's features in the same order, and the rows a
    member lacks add exact zeros.

    Args:
        members: The matrices to fuse (same dtype; any number of columns each).
        priority: Optional key per input column (e.g. the IDF of each hashed feature): the
            fused rows are stored in increasing key order, so the rows that most queries
            touch (frequent features) lie together in memory. Results do not depend on it.
    """

    #: Inputs of at most this many rows go through the fused product (kept for the other
    #: members); larger batches, where per-call overhead no longer matters, use each
    #: member's own product.
    memo_rows = 256

    def __init__(self, members: Sequence[RowMatrix], priority: Any = None) -> None:
        members = list(members)
        d = max(m.shape[0] for m in members)
        rows = np.unique(np.concatenate([m.rows for m in members]))
        if priority is not None:
            key = np.asarray(priority, dtype=np.float64)
            if key.ndim != 1 or key.size < d:
                raise ValueError(f"priority needs one key per input column ({d})")
            rows = rows[np.argsort(key[rows], kind="stable")]
        position = np.full(d, -1, dtype=np.int64)
        position[rows] = np.arange(rows.size)
        blocks = []
        for m in members:
            block = np.zeros((rows.size, m.shape[1]), dtype=np.float32)
            block[position[m.rows]] = m.block
            blocks.append(block)
        self.fused = RowMatrix(np.hstack(blocks), rows=rows, d=d)
        self._last: tuple[weakref.ref[Any], FloatArray] | None = None
        lo = 0
        for m in members:
            m.group = (self, lo, lo + m.shape[1])
            lo += m.shape[1]

    def product(self, x: Any) -> FloatArray:
        """The fused product ``x @ [W_1 | W_2 | ...]`` (read-only; shared by the members)."""
        last = self._last
        if last is not None and last[0]() is x:
            return last[1]
        out = self.fused._rmatmul(x)
        out.flags.writeable = False
        self._last = (weakref.ref(x), out)
        return out


def _csr_times_dense(indptr: Any, cols: Any, vals: Any, block: Any, n: int, r: int) -> FloatArray:
    """``A @ block`` for the CSR matrix ``A = (vals, cols, indptr)`` of shape ``(n, r)``.

    Calls scipy's compiled CSR-times-dense kernel directly when it is available (the same
    kernel ``A @ block`` ends in, without building and validating a sparse matrix per call),
    else the public product. Either way each row is summed in order, independently of the
    other rows.
    """
    global _CSR_MATVECS
    m = block.shape[1]
    if _CSR_MATVECS is not None:
        out = np.zeros((n, m), dtype=np.float32)
        try:
            _CSR_MATVECS(n, r, m, indptr, cols, vals, block.ravel(), out.ravel())
            return out.astype(np.float64)
        except (TypeError, ValueError):  # another scipy: use the public product from now on
            _CSR_MATVECS = None
    a = sp.csr_matrix((vals, cols, indptr), shape=(n, r))
    return np.asarray(a @ block, dtype=np.float64)


def _postings_product(x: Any, t: Any) -> FloatArray | None:
    """``x @ t`` for one sparse row ``x`` and a CSR ``t`` (features x training queries), or
    ``None`` where this path does not apply (other dtypes, scipy without the kernels).

    Sums the query's features' rows of ``t`` (their postings) with scipy's compiled row
    gather and CSC matrix-vector kernels: the same products added in the same order as
    scipy's sparse product (so ``route`` still equals ``route_batch``), without its counting
    pass and its sparse result.
    """
    global _POSTINGS_KERNELS
    if (
        _POSTINGS_KERNELS is None
        or x.data.dtype != np.float32
        or t.data.dtype != np.float32
        or not (x.indices.dtype == t.indices.dtype == t.indptr.dtype == np.int32)
    ):
        return None
    row_index, csc_matvec = _POSTINGS_KERNELS
    feats = x.indices
    starts = t.indptr[feats]
    lengths = t.indptr[feats + 1] - starts
    ptr = np.zeros(feats.size + 1, dtype=np.int32)
    np.cumsum(lengths, out=ptr[1:])
    cols = np.empty(int(ptr[-1]), dtype=np.int32)
    vals = np.empty(int(ptr[-1]), dtype=np.float32)
    out = np.zeros(t.shape[1], dtype=np.float32)
    try:
        row_index(feats.size, feats, t.indptr, t.indices, t.data, cols, vals)
        csc_matvec(t.shape[1], feats.size, ptr, cols, vals, x.data, out)
    except (TypeError, ValueError):  # another scipy: use the public product from now on
        _POSTINGS_KERNELS = None
        return None
    return out[None, :].astype(np.float64)


def _pack_matrix(prefix: str, x: Any) -> Arrays:
    if sp.issparse(x):
        csr = sp.csr_matrix(x)
        return {
            f"{prefix}.data": csr.data,
            f"{prefix}.indices": csr.indices,
            f"{prefix}.indptr": csr.indptr,
            f"{prefix}.shape": np.asarray(csr.shape, dtype=np.int64),
        }
    return {prefix: np.asarray(x)}


def _unpack_matrix(prefix: str, arrays: Arrays) -> Any:
    if prefix in arrays:
        return arrays[prefix]
    shape = tuple(int(v) for v in arrays[f"{prefix}.shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]),
        shape=shape,
    )


def _drop_columns(x: Any, drop: Any) -> Any:
    """A CSR copy of ``x`` without the entries of the columns where ``drop`` is true."""
    csr = sp.csr_matrix(x, copy=True)
    csr.data[drop[csr.indices]] = 0
    csr.eliminate_zeros()
    return csr


class Head:
    """Maps a feature matrix to predicted quality per model, ``(n, m)`` in [0, 1]."""

    kind = ""

    def predict(self, x: Any) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_state(self) -> Arrays:  # pragma: no cover - abstract
        raise NotImplementedError

    def row_matrices(self) -> list[RowMatrix]:
        """The :class:`RowMatrix` objects that :meth:`predict` multiplies its input by (a
        router fuses those of one input into a :class:`RowGroup`)."""
        return []


class LinearHead(Head):
    """``link(x @ W + b)`` with ``link`` = identity (clipped) or logistic."""

    kind = "linear"

    def __init__(self, coef: Any, intercept: FloatArray, link: str = "identity") -> None:
        # coef is (d, m), dense or sparse; stored sparse when mostly zero (hashed features
        # unseen in training).
        if sp.issparse(coef):
            csr = sp.csr_matrix(coef, dtype=np.float32, copy=True)
            csr.eliminate_zeros()
            size = csr.shape[0] * csr.shape[1]
            self.coef: Any = csr if csr.nnz < 0.5 * size else csr.toarray()
        else:
            coef = np.asarray(coef, dtype=np.float32)
            self.coef = sp.csr_matrix(coef) if np.mean(coef == 0) > 0.5 else coef
        self.intercept = np.asarray(intercept, dtype=np.float64)
        if link not in {"identity", "logistic"}:
            raise ValueError(f"unknown link {link!r}")
        self.link = link

    @cached_property
    def _rows(self) -> RowMatrix:
        return RowMatrix(self.coef)

    def row_matrices(self) -> list[RowMatrix]:
        return [self._rows]

    def predict(self, x: Any) -> FloatArray:
        z = self._rows.rmatmul(x) + self.intercept
        if self.link == "logistic":
            return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -35, 35))), dtype=np.float64)
        return clip_inplace(z, 0.0, 1.0)

    def get_state(self) -> Arrays:
        return {
            **_pack_matrix("coef", self.coef),
            "intercept": self.intercept,
            "link": np.asarray([self.link == "logistic"]),
        }

    @classmethod
    def from_state(cls, arrays: Arrays) -> LinearHead:
        obj = cls.__new__(cls)
        obj.coef = _unpack_matrix("coef", arrays)
        obj.intercept = np.asarray(arrays["intercept"], dtype=np.float64)
        obj.link = "logistic" if bool(arrays["link"][0]) else "identity"
        return obj


class KNNHead(Head):
    """Similarity-weighted mean of the neighbours' scores, shrunk toward the model means.

    ``q = (sum_i w_i y_i + alpha * prior) / (sum_i w_i + alpha)`` over the ``k`` most
    cosine-similar training queries (rows of ``x_train`` are L2-normalised), with weights
    ``w_i = max(sim_i, 0) ** power``.
    """

    kind = "knn"

    def __init__(
        self, x_train: Any, y: FloatArray, k: int, alpha: float, power: float = 1.0
    ) -> None:
        self.x_train = x_train
        self.x_train_t = (
            x_train.T.tocsr() if sp.issparse(x_train) else np.ascontiguousarray(x_train.T)
        )
        self.y = np.asarray(y, dtype=np.float64)
        self.k = int(k)
        self.alpha = float(alpha)
        self.power = float(power)
        self.prior = self.y.mean(axis=0)

    def similarities(self, x: Any) -> FloatArray:
        """Cosine similarity of each row of ``x`` to every training query."""
        if sp.issparse(x) and x.shape[0] == 1 and sp.issparse(self.x_train_t):
            one = _postings_product(x if x.format == "csr" else sp.csr_matrix(x), self.x_train_t)
            if one is not None:
                return one
        return _dot(x, self.x_train_t)

    def similarities_many(self, x: Any, n_dense: int = 512) -> FloatArray:
        """:meth:`similarities` for a large batch (equal up to float32 rounding).

        Sparse text features share a few very frequent columns (common words), which make a
        sparse-times-sparse product slow when both sides have many rows. Here the
        ``n_dense`` columns most frequent in training are multiplied as dense blocks (BLAS)
        and only the rest as sparse matrices. Training uses it (cross-validation,
        calibration); routing keeps :meth:`similarities`, whose result does not depend on
        the batch.
        """
        if not (sp.issparse(x) and sp.issparse(self.x_train)):
            return self.similarities(x)
        from threadpoolctl import threadpool_limits

        train = sp.csr_matrix(self.x_train)
        df = np.bincount(train.indices, minlength=train.shape[1])
        n_freq = min(int(n_dense), int(np.count_nonzero(df)))
        freq = np.zeros(train.shape[1], dtype=bool)
        freq[np.argsort(-df, kind="stable")[:n_freq]] = True
        cols = np.flatnonzero(freq)
        x = sp.csr_matrix(x)
        # One product of a few hundred columns: BLAS threads cost more than they save.
        with threadpool_limits(limits=1, user_api="blas"):
            out = np.asarray(x[:, cols].toarray() @ train[:, cols].toarray().T, dtype=np.float64)
        out += _dot(_drop_columns(x, freq), _drop_columns(train, freq).T.tocsr())
        return out

    def predict(self, x: Any) -> FloatArray:
        return self.predict_from_similarities(self.similarities(x))

    def predict_from_similarities(self, sims: FloatArray) -> FloatArray:
        """Predictions given :meth:`similarities` (lets a caller try several ``k``)."""
        n_train = sims.shape[1]
        k = min(self.k, n_train)
        if k < n_train:
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            idx = np.broadcast_to(np.arange(n_train), (sims.shape[0], n_train))
        w = np.maximum(np.take_along_axis(sims, idx, axis=1), 0.0) ** self.power
        num = np.einsum("nk,nkm->nm", w, self.y[idx]) + self.alpha * self.prior
        den = w.sum(axis=1, keepdims=True) + self.alpha
        return np.asarray(num / den, dtype=np.float64)

    def get_state(self) -> Arrays:
        return {
            **_pack_matrix("x_train", self.x_train),
            "y": self.y,
            "params": np.asarray([self.k, self.alpha, self.power], dtype=np.float64),
        }

    @classmethod
    def from_state(cls, arrays: Arrays) -> KNNHead:
        k, alpha, power = (float(v) for v in arrays["params"])
        return cls(_unpack_matrix("x_train", arrays), arrays["y"], int(k), alpha, power)


class MLPHead(Head):
    """A ReLU multi-layer perceptron with one output per model (clipped to [0, 1])."""

    kind = "mlp"

    def __init__(self, coefs: list[Any], intercepts: list[FloatArray]) -> None:
        self.coefs = [np.asarray(c, dtype=np.float32) for c in coefs]
        self.intercepts = [np.asarray(b, dtype=np.float32) for b in intercepts]

    def predict(self, x: Any) -> FloatArray:
        h: Any = x
        last = len(self.coefs) - 1
        for i, (w, b) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            h = _dot(h, w) + b
            if i < last:
                h = np.maximum(h, 0.0)
        return np.asarray(np.clip(h, 0.0, 1.0), dtype=np.float64)

    def get_state(self) -> Arrays:
        out: Arrays = {"n_layers": np.asarray([len(self.coefs)])}
        for i, (w, b) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            out[f"w{i}"] = w
            out[f"b{i}"] = b
        return out

    @classmethod
    def from_state(cls, arrays: Arrays) -> MLPHead:
        n = int(arrays["n_layers"][0])
        return cls([arrays[f"w{i}"] for i in range(n)], [arrays[f"b{i}"] for i in range(n)])


class StackHead(Head):
    """A weighted average of other heads (weights sum to 1; no heads predicts zeros)."""

    kind = "stack"

    def __init__(self, heads: list[Head], weights: list[float], n_outputs: int) -> None:
        if len(heads) != len(weights):
            raise ValueError("one weight per head")
        total = float(sum(weights))
        self.heads = list(heads)
        self.weights = [float(w) / total for w in weights] if total > 0 else []
        self.n_outputs = int(n_outputs)

    def predict(self, x: Any) -> FloatArray:
        out = np.zeros((x.shape[0], self.n_outputs))
        for head, w in zip(self.heads, self.weights, strict=True):
            out += w * head.predict(x)
        return out

    def row_matrices(self) -> list[RowMatrix]:
        return [m for head in self.heads for m in head.row_matrices()]

    def get_state(self) -> Arrays:
        kinds = ",".join(h.kind for h in self.heads)
        out: Arrays = {
            "weights": np.asarray(self.weights, dtype=np.float64),
            "kinds": np.frombuffer(kinds.encode("ascii"), dtype=np.uint8),
            "n_outputs": np.asarray([self.n_outputs]),
        }
        for i, head in enumerate(self.heads):
            out.update({f"{i}/{k}": v for k, v in head.get_state().items()})
        return out

    @classmethod
    def from_state(cls, arrays: Arrays) -> StackHead:
        raw = bytes(np.asarray(arrays["kinds"], dtype=np.uint8)).decode("ascii")
        kinds = raw.split(",") if raw else []
        heads = []
        for i, kind in enumerate(kinds):
            prefix = f"{i}/"
            sub = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            heads.append(head_from_state(kind, sub))
        obj = cls(heads, [1.0] * len(heads), int(arrays["n_outputs"][0]))
        obj.weights = [float(w) for w in arrays["weights"]]
        return obj


_HEADS: dict[str, Any] = {
    "linear": LinearHead,
    "knn": KNNHead,
    "mlp": MLPHead,
    "stack": StackHead,
}


def head_from_state(kind: str, arrays: Arrays) -> Head:
    """Rebuild a head saved with :meth:`Head.get_state`."""
    if kind not in _HEADS:
        raise ValueError(f"unknown head kind {kind!r}")
    head: Head = _HEADS[kind].from_state(arrays)
    return head
