"""RowMatrix: ``x @ W`` over the touched weight rows equals scipy's product."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from llmrouter_core.routers import heads
from llmrouter_core.routers.heads import RowMatrix


def _features(rng: np.random.Generator, n: int, d: int) -> sp.csr_matrix:
    return sp.random(n, d, density=0.02, format="csr", random_state=rng, dtype=np.float32)


@pytest.mark.parametrize("sparse_weights", [True, False])
@pytest.mark.parametrize("n", [0, 1, 7])
def test_equals_scipy_product(sparse_weights: bool, n: int) -> None:
    rng = np.random.default_rng(0)
    d, m = 3000, 5
    w = sp.random(d, m, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    weights = w if sparse_weights else w.toarray()
    x = _features(rng, n, d)
    if n > 2:  # an empty row among others
        x = sp.vstack([x[:2], sp.csr_matrix((1, d), dtype=np.float32), x[2:]]).tocsr()
    expected = (x @ w).toarray()
    np.testing.assert_allclose(RowMatrix(weights).rmatmul(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        RowMatrix(weights).rmatmul(x.toarray()), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("kernel", [True, False])
def test_rows_do_not_depend_on_the_batch(monkeypatch: pytest.MonkeyPatch, kernel: bool) -> None:
    """Each row of a batch is bit-identical to the row alone (with scipy's kernel called
    directly, and with the public product it falls back to)."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(2000, 4)).astype(np.float32)
    w[rng.random(2000) < 0.5] = 0.0
    x = _features(rng, 50, 2000)
    if not kernel:
        monkeypatch.setattr(heads, "_CSR_MATVECS", None)
    mat = RowMatrix(w)
    batch = mat.rmatmul(x)
    np.testing.assert_allclose(batch, x @ w, rtol=1e-5, atol=1e-6)
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(mat.rmatmul(x[i]), batch[i : i + 1])


def test_given_rows_and_wider_inputs() -> None:
    """A block of rows given by number (as the projector stores it); inputs with more
    columns than the matrix has rows read the missing rows as zeros."""
    rng = np.random.default_rng(2)
    rows = np.array([3, 10, 42])
    block = rng.normal(size=(3, 6)).astype(np.float32)
    full = np.zeros((100, 6), dtype=np.float32)
    full[rows] = block
    x = _features(rng, 4, 100).tolil()
    x[0, 99] = 1.0  # column 99 is past max(rows)
    x = x.tocsr()
    mat = RowMatrix(block, rows=rows, d=43)
    np.testing.assert_allclose(mat.rmatmul(x[:1]), x[:1] @ full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mat.rmatmul(x), x @ full, rtol=1e-5, atol=1e-6)


def test_knn_postings_product_equals_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """One query's similarities through the postings kernels are bit-identical to scipy's
    sparse product (and to the query's row in a batch); without the kernels, scipy's."""
    rng = np.random.default_rng(3)
    train = _features(rng, 300, 5000)
    head = heads.KNNHead(train, rng.random((300, 4)), k=5, alpha=1.0)
    x = _features(rng, 6, 5000)
    batch = head.similarities(x)
    np.testing.assert_array_equal(batch, (x @ train.T).toarray().astype(np.float64))
    assert heads._postings_product(x[0], head.x_train_t) is not None  # the kernel path ran
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(head.similarities(x[i]), batch[i : i + 1])
    empty = sp.csr_matrix((1, 5000), dtype=np.float32)
    np.testing.assert_array_equal(head.similarities(empty), np.zeros((1, 300)))
    monkeypatch.setattr(heads, "_POSTINGS_KERNELS", None)
    np.testing.assert_array_equal(head.similarities(x[2]), batch[2:3])
