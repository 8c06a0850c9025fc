"""Small numerics: ``RowMatrix`` (``x @ W`` over the touched weight rows) and the shared dense
``Projector`` (truncated SVD / PCA of the features)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from llmrouter_core._math import RowMatrix, clip_inplace, logit, sigmoid
from llmrouter_core.training.projection import Projector


def _features(rng: np.random.Generator, n: int, d: int, density: float = 0.02) -> sp.csr_matrix:
    return sp.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float32)


def _dense(a: object) -> np.ndarray:
    return np.asarray(a.toarray() if sp.issparse(a) else a)  # type: ignore[attr-defined]


# -- sigmoid, logit, clip ------------------------------------------------------------------------
def test_sigmoid_logit_and_clip() -> None:
    z = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    with np.errstate(over="raise"):
        p = sigmoid(z)
    assert p.dtype == np.float64 and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p[1:4], 1 / (1 + np.exp(-z[1:4])))
    np.testing.assert_allclose(logit(p[1:4]), z[1:4], atol=1e-12)
    assert np.isfinite(logit(np.array([0.0, 1.0]))).all()  # clipped away from 0 and 1
    a = np.array([-1.0, 0.5, 2.0])
    assert clip_inplace(a, 0.0, 1.0) is a
    np.testing.assert_array_equal(a, [0.0, 0.5, 1.0])


# -- RowMatrix ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sparse_weights", [True, False])
@pytest.mark.parametrize("n", [0, 1, 7])
def test_row_matrix_equals_scipy_product(sparse_weights: bool, n: int) -> None:
    rng = np.random.default_rng(0)
    d, m = 3000, 5
    w = sp.random(d, m, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    weights = w if sparse_weights else w.toarray()
    x = _features(rng, n, d)
    if n > 2:  # an empty row among others
        x = sp.vstack([x[:2], sp.csr_matrix((1, d), dtype=np.float32), x[2:]]).tocsr()
    expected = (x @ w).toarray()
    mat = RowMatrix(weights)
    assert mat.shape == (d, m)
    assert mat.rows.size == np.count_nonzero(np.diff(w.indptr))  # only the weighted rows
    for inp in (x, x.toarray(), x.astype(np.float64)):
        out = mat.rmatmul(inp)
        assert out.dtype == np.float64 and out.shape == (x.shape[0], m)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_row_matrix_of_zeros_and_the_docstring_example() -> None:
    rng = np.random.default_rng(5)
    x = _features(rng, 3, 50, density=0.2)
    for w in (np.zeros((50, 2)), sp.csr_matrix((50, 2))):
        mat = RowMatrix(w)
        assert mat.rows.size == 0
        np.testing.assert_array_equal(mat.rmatmul(x), np.zeros((3, 2)))
        np.testing.assert_array_equal(mat.rmatmul(x.toarray()), np.zeros((3, 2)))
    example = RowMatrix(np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]]))
    assert example.rmatmul(sp.csr_matrix([[5.0, 1.0, 7.0]])).tolist() == [[1.0, 2.0]]


def test_row_matrix_rows_do_not_depend_on_the_batch() -> None:
    """Each row of a sparse batch is bit-identical to the row alone (routing one query gives
    what the same query gets in a batch)."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(2000, 4)).astype(np.float32)
    w[rng.random(2000) < 0.5] = 0.0
    x = _features(rng, 50, 2000)
    mat = RowMatrix(w)
    batch = mat.rmatmul(x)
    np.testing.assert_allclose(batch, x @ w, rtol=1e-5, atol=1e-6)
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(mat.rmatmul(x[i]), batch[i : i + 1])
    for lo, hi in [(0, 7), (13, 50), (20, 21)]:
        np.testing.assert_array_equal(mat.rmatmul(x[lo:hi]), batch[lo:hi])
    # A dense batch agrees too (to float rounding: dense products may use other kernels).
    np.testing.assert_allclose(mat.rmatmul(x.toarray()), batch, rtol=1e-5, atol=1e-6)


def test_row_matrix_unseen_and_out_of_range_columns_weigh_zero() -> None:
    """A block of rows given by number (as the projector stores it): input columns without a
    weight row, and columns past the matrix's rows (a wider input), contribute nothing."""
    rng = np.random.default_rng(2)
    rows = np.array([3, 10, 42])
    block = rng.normal(size=(3, 6)).astype(np.float32)
    full = np.zeros((100, 6), dtype=np.float32)
    full[rows] = block
    x = _features(rng, 4, 100, density=0.1).tolil()
    x[0, 99] = 1.0  # column 99 is past the matrix's 43 rows
    x[1, 5] = 7.0  # column 5 has no weight row
    x = x.tocsr()
    mat = RowMatrix(block, rows=rows, d=43)
    assert mat.shape == (43, 6)
    np.testing.assert_allclose(mat.rmatmul(x[:1]), x[:1] @ full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mat.rmatmul(x), x @ full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mat.rmatmul(x.toarray()), x @ full, rtol=1e-5, atol=1e-6)
    # Only the unweighted columns: exactly zero.
    only_unseen = sp.csr_matrix(([2.0, 3.0], ([0, 0], [5, 99])), shape=(1, 100))
    np.testing.assert_array_equal(mat.rmatmul(only_unseen), np.zeros((1, 6)))
    with pytest.raises(ValueError, match="give d"):
        RowMatrix(block, rows=rows)


# -- Projector ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hashed(rb_small):  # type: ignore[no-untyped-def]
    from llmrouter_core.features import HashingEmbedder

    train, test = rb_small
    emb = HashingEmbedder(n_features=2**14).fit(train.queries)
    return emb.transform(train.queries), emb.transform(test.queries)


def test_projector_shapes_on_sparse_and_dense_input(hashed) -> None:  # type: ignore[no-untyped-def]
    x, x_test = hashed
    proj = Projector(32, random_state=0).fit(x)
    assert proj.transform(x).shape == (x.shape[0], 32)
    assert proj.transform(x_test).shape == (x_test.shape[0], 32)
    assert proj.dim == 32 and proj.n_features_ == x.shape[1]
    # Dense input wider than n_components: PCA; narrower: kept as is (centred, scaled).
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(80, 40))
    assert Projector(8).fit(wide).transform(wide).shape == (80, 8)
    narrow = rng.normal(size=(80, 5))
    np.testing.assert_allclose(
        Projector(8, standardize=False).fit(narrow).transform(narrow),
        narrow - narrow.mean(axis=0),
        atol=1e-6,
    )
    # Never more dimensions than the training rows allow.
    assert Projector(64).fit(x[:10]).dim <= 9


def test_projector_standardises_or_only_centres(hashed) -> None:  # type: ignore[no-untyped-def]
    x, x_test = hashed
    std = Projector(16, random_state=0).fit(x)
    raw = Projector(16, random_state=0, standardize=False).fit(x)
    z, zr = std.transform(x), raw.transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(zr.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_array_equal(raw.scale_, 1.0)
    # The same directions: only the scale differs, and centred() undoes the scaling.
    np.testing.assert_allclose(zr.std(axis=0), std.scale_, rtol=1e-6)
    np.testing.assert_allclose(std.centred(std.transform(x_test)), raw.transform(x_test), atol=1e-9)


def test_projector_ignores_rare_and_unseen_columns(hashed) -> None:  # type: ignore[no-untyped-def]
    x, _ = hashed
    proj = Projector(16, random_state=0).fit(x)
    df = np.bincount(x.indices, minlength=x.shape[1])
    assert proj.cols_ is not None and np.all(df[proj.cols_] >= proj.min_df)
    rare = np.flatnonzero(df < proj.min_df)
    probe = sp.csr_matrix(
        (np.ones(3), ([0, 0, 0], [rare[0], rare[-1], x.shape[1] + 5])), shape=(1, x.shape[1] + 10)
    )
    empty = sp.csr_matrix((1, x.shape[1]))
    np.testing.assert_array_equal(proj.transform(probe), proj.transform(empty))
    np.testing.assert_allclose(proj.transform(empty)[0], -proj.shift_ / proj.scale_)


def test_projector_truncated_keeps_the_top_directions(hashed) -> None:  # type: ignore[no-untyped-def]
    x, x_test = hashed
    for standardize in (True, False):
        proj = Projector(32, random_state=0, standardize=standardize).fit(x)
        small = proj.truncated(8)
        assert small.dim == 8 and small.standardize == standardize
        np.testing.assert_allclose(small.transform(x_test), proj.transform(x_test)[:, :8])
        assert proj.truncated(100).dim == 32  # never more than it has
        assert proj.dim == 32  # the original is untouched


@pytest.mark.parametrize("kind", ["sparse", "dense-pca"])
def test_projector_fold_into_equals_the_layer_on_its_output(hashed, kind: str) -> None:  # type: ignore[no-untyped-def]
    x, x_test = hashed
    if kind == "dense-pca":
        x, x_test = np.asarray(x[:, :300].toarray()), np.asarray(x_test[:, :300].toarray())
    proj = Projector(32, random_state=0).fit(x)
    assert (proj.cols_ is None) == (kind != "sparse")
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(32, 5)), rng.normal(size=5)
    full_w, full_b = proj.fold_into(w, b)
    assert full_w.shape == (x.shape[1], 5) and full_b.shape == (5,)
    # The projection runs in float32; the folded layer is float64: equal to float32 rounding.
    np.testing.assert_allclose(
        _dense(x_test @ full_w) + full_b, proj.transform(x_test) @ w + b, rtol=1e-5, atol=1e-5
    )


def test_projector_is_seeded_and_its_state_round_trips(hashed) -> None:  # type: ignore[no-untyped-def]
    x, x_test = hashed
    proj = Projector(32, random_state=0).fit(x)
    again = Projector(32, random_state=0).fit(x)
    np.testing.assert_array_equal(again.components_, proj.components_)
    for p in (proj, Projector(16, random_state=3, standardize=False).fit(x)):
        state = p.get_state()
        assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
        loaded = Projector.from_state(state)
        assert loaded.dim == p.dim
        np.testing.assert_array_equal(loaded.transform(x_test), p.transform(x_test))
        np.testing.assert_array_equal(
            loaded.truncated(4).transform(x_test), p.truncated(4).transform(x_test)
        )
        np.testing.assert_array_equal(
            loaded.centred(p.transform(x_test)), p.centred(p.transform(x_test))
        )
        rng = np.random.default_rng(4)
        w, b = rng.normal(size=(p.dim, 3)), rng.normal(size=3)
        for got, want in zip(loaded.fold_into(w, b), p.fold_into(w, b), strict=True):
            np.testing.assert_allclose(got, want)
    dense = np.random.default_rng(1).normal(size=(60, 20))
    p = Projector(4).fit(dense)
    loaded = Projector.from_state(p.get_state())
    np.testing.assert_array_equal(loaded.transform(dense), p.transform(dense))
