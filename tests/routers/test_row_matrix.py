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


def _group_members(rng: np.random.Generator, d: int) -> list[RowMatrix]:
    """Three matrices over different, overlapping row sets (sparse, dense, rows given)."""
    sparse_w = sp.random(d, 5, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    dense_w = rng.normal(size=(d, 3)).astype(np.float32)
    dense_w[rng.random(d) < 0.7] = 0.0
    rows = np.sort(rng.choice(d // 2, size=40, replace=False))
    return [
        RowMatrix(sparse_w),
        RowMatrix(dense_w),
        RowMatrix(rng.normal(size=(40, 7)).astype(np.float32), rows=rows, d=d // 2),
    ]


def test_row_group_members_equal_their_own_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fused, each member returns exactly its own product, from one kernel call per input."""
    rng = np.random.default_rng(4)
    d = 1500
    members = _group_members(rng, d)
    x = _features(rng, 6, d)
    x = sp.vstack([x, sp.csr_matrix((1, d), dtype=np.float32)]).tocsr()  # an empty row
    alone = [[m.rmatmul(x[i]) for i in range(x.shape[0])] for m in members]
    batch = [m.rmatmul(x) for m in members]
    with pytest.raises(ValueError, match="one key per input column"):
        heads.RowGroup(members, priority=np.ones(10))
    # Rows stored in a key order (as the router does: frequent features first).
    group = heads.RowGroup(members, priority=rng.random(d))
    assert np.any(np.diff(group.fused.rows) < 0)
    calls = []
    real = group.fused._rmatmul
    monkeypatch.setattr(group.fused, "_rmatmul", lambda a: calls.append(a) or real(a))
    for i in range(x.shape[0]):
        row = x[i]
        for m, own in zip(members, alone, strict=True):
            fused = m.rmatmul(row)
            np.testing.assert_array_equal(fused, own[i])
            assert not fused.flags.writeable  # shared with the other members
    assert len(calls) == x.shape[0]  # one product per input, not one per member
    for m, own in zip(members, batch, strict=True):
        np.testing.assert_array_equal(m.rmatmul(x), own)
    # A different input of the same shape is not served from the kept product.
    other = _features(rng, 6, d)
    for m in members:
        np.testing.assert_array_equal(m.rmatmul(other), m._rmatmul(other))
    # Dense inputs and batches past memo_rows use each member's own product.
    n_calls = len(calls)
    dense = x.toarray()
    np.testing.assert_array_equal(members[1].rmatmul(dense), members[1]._rmatmul(dense))
    monkeypatch.setattr(heads.RowGroup, "memo_rows", 2)
    np.testing.assert_array_equal(members[0].rmatmul(x), batch[0])
    assert len(calls) == n_calls


def test_zoo_stack_router_fuses_its_sparse_products(rb_small) -> None:  # type: ignore[no-untyped-def]
    """The default router's linear maps of the query features share one product, and its
    predictions equal those of the unfused maps exactly."""
    from llmrouter_core import get_router

    train, test = rb_small
    router = get_router("auto", members=("linear", "mf"), weight_steps=2).fit(train)
    queries = list(test.queries[:25])
    quality, cost = router.predict(queries)  # the first prediction builds the group
    mats = [*router.head_.row_matrices(), router.cost_model_._rows]
    assert len(mats) >= 2 and all(m.group is not None for m in mats)
    assert len({id(m.group[0]) for m in mats}) == 1
    for m in mats:
        m.group = None
    try:
        for i, q in enumerate(queries):
            q_own, c_own = router.predict([q])
            np.testing.assert_array_equal(q_own[0], quality[i])
            np.testing.assert_array_equal(c_own[0], cost[i])
    finally:
        router._fused_head = None  # regroup on the next prediction
    assert router.route_batch(queries) == [router.route(q) for q in queries]
    assert all(m.group is not None for m in mats)
