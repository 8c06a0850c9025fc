"""Building a CSR matrix from arrays already in canonical form, without scipy's validation.

``scipy.sparse.csr_matrix((data, indices, indptr), shape=...)`` checks and converts its
arrays, which costs about 25 us per call: more than the whole hashing of a short query. The
features of one routed query are built canonical (sorted, distinct column indices, int32
indices), so they can skip that work. :func:`canonical_csr` assigns the arrays to a bare
matrix object when this scipy stores a CSR matrix as exactly those attributes (checked once,
against the public constructor), and calls the public constructor otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["canonical_csr"]


def _probe() -> dict[str, Any] | None:
    """The attributes the public constructor sets (besides the arrays and the shape), or
    ``None`` if a bare object given the same attributes does not behave the same."""
    data = np.asarray([1.0, 2.0], dtype=np.float32)
    indices = np.asarray([0, 2], dtype=np.int32)
    indptr = np.asarray([0, 1, 2], dtype=np.int32)
    ref = sp.csr_matrix((data, indices, indptr), shape=(2, 3))
    state = dict(vars(ref))
    expected = {"data", "indices", "indptr", "_shape"}
    if not expected <= state.keys():
        return None
    extra = {k: v for k, v in state.items() if k not in expected}
    try:
        bare = sp.csr_matrix.__new__(sp.csr_matrix)
        bare.__dict__.update(extra)
        bare.data, bare.indices, bare.indptr, bare._shape = data, indices, indptr, (2, 3)
        same = (
            bare.shape == ref.shape
            and bare.nnz == ref.nnz
            and bare.format == "csr"
            and bool(bare.has_canonical_format)
            and np.array_equal(bare.toarray(), ref.toarray())
            and np.array_equal(bare @ np.ones(3, dtype=np.float32), ref @ np.ones(3))
        )
    except Exception:  # another scipy layout: use the public constructor
        return None
    return extra if same else None


_EXTRA = _probe()


def canonical_csr(data: Any, indices: Any, indptr: Any, shape: tuple[int, int]) -> Any:
    """A ``csr_matrix`` of these arrays, which must already be canonical: int32 ``indices``
    sorted and distinct within each row, int32 ``indptr``, ``data`` one value per index."""
    if _EXTRA is None:
        return sp.csr_matrix((data, indices, indptr), shape=shape)
    out = sp.csr_matrix.__new__(sp.csr_matrix)
    out.__dict__.update(_EXTRA)
    out.data, out.indices, out.indptr, out._shape = data, indices, indptr, shape
    return out
