"""The batched solvers of the supervised scorers agree with the estimators they replace."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from llmrouter_core import get_router, load_router
from llmrouter_core.features import HashingEmbedder
from llmrouter_core.policy import Calibration
from llmrouter_core.scoring.heads import KNNHead, LinearHead, MLPHead
from llmrouter_core.scoring.linear import logistic_heads, ridge_heads
from llmrouter_core.training.solvers import Design, block_cg, ridge_path, soft_logistic_path


def _dense(a: object) -> np.ndarray:
    return np.asarray(a.toarray() if sp.issparse(a) else a)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def rb_features(rb_small):  # type: ignore[no-untyped-def]
    train, test = rb_small
    emb = HashingEmbedder(n_features=2**14).fit(train.queries)
    return emb.transform(train.queries), train.scores, emb.transform(test.queries)


@pytest.fixture(scope="module")
def dc_features(dcrouter):  # type: ignore[no-untyped-def]
    """300 dcrouter training queries (graded scores in [0, 1]) and 100 test queries."""
    train, test = dcrouter
    rng = np.random.default_rng(5)
    tr = train.subset(np.sort(rng.choice(train.n_queries, 300, replace=False)))
    te = test.subset(np.sort(rng.choice(test.n_queries, 100, replace=False)))
    emb = HashingEmbedder(n_features=2**14).fit(tr.queries)
    return emb.transform(tr.queries), tr.scores, emb.transform(te.queries)


def test_design_keeps_seen_columns_and_unpacks_to_all(rb_features) -> None:  # type: ignore[no-untyped-def]
    x, _, _ = rb_features
    design = Design(x, bias=True)
    seen = np.unique(x.indices).size
    assert design.dim == seen + 1 and design.x.dtype == np.float64
    w = np.random.default_rng(0).normal(size=(design.dim, 3))
    coef, bias = design.unpack(w)
    assert sp.issparse(coef) and coef.shape == (x.shape[1], 3)
    np.testing.assert_allclose(_dense(x @ coef) + bias, design.dot(w), atol=1e-5)
    np.testing.assert_allclose(bias, w[-1])
    # The solver's weights are copied, not shared.
    w[:] = 0.0
    assert abs(coef).sum() > 0


def test_block_cg_solves_one_system_per_column() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 40))
    spd = a @ a.T / 40
    shifts = np.array([0.1, 1.0, 10.0])
    b = rng.normal(size=(40, 3))

    def apply(v: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.asarray(spd @ v + shifts[cols] * v)

    x = block_cg(apply, b, rtol=1e-10, max_iter=1000)
    for j, s in enumerate(shifts):
        np.testing.assert_allclose(x[:, j], np.linalg.solve(spd + s * np.eye(40), b[:, j]))


def test_ridge_path_matches_sklearn_ridge(rb_features) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import Ridge

    x, y, x_test = rb_features
    alphas = (1.0, 10.0, 100.0)
    fits = ridge_path(Design(x), y, alphas, rtol=1e-10)
    for (coef, intercept), alpha in zip(fits, alphas, strict=True):
        ref = Ridge(alpha=alpha, tol=1e-10).fit(x, y)
        np.testing.assert_allclose(
            _dense(x_test @ coef) + intercept, ref.predict(x_test), atol=1e-6
        )


def test_soft_logistic_path_matches_liblinear_on_graded_scores(dc_features) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    x, y, x_test = dc_features
    assert np.any((y > 0) & (y < 1)), "the slice should have graded scores"
    cs = (3.0, 0.3)  # any order: solved along increasing C, returned as given
    fits = soft_logistic_path(Design(x, bias=True), y, cs, tol=1e-8)
    xx = sp.vstack([x, x]).tocsr()
    for (coef, bias), c in zip(fits, cs, strict=True):
        for j in range(3):
            col = y[:, j]
            labels = np.r_[np.ones(len(col)), np.zeros(len(col))]
            weights = np.r_[col, 1.0 - col]
            keep = weights > 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = LogisticRegression(
                    C=c, solver="liblinear", dual=True, tol=1e-10, max_iter=100_000
                ).fit(xx[keep], labels[keep], sample_weight=weights[keep])
            ours = 1.0 / (1.0 + np.exp(-(_dense(x_test @ coef[:, j]).ravel() + bias[j])))
            np.testing.assert_allclose(ours, ref.predict_proba(x_test)[:, 1], atol=1e-4)


def test_soft_logistic_path_with_an_unpenalised_bias_matches_lbfgs() -> None:
    """``penalize_bias=False`` (the stage heads of FrugalGPT) solves scikit-learn's default
    objective: the intercept is left out of the penalty."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 6))
    y = (x @ rng.normal(size=(6, 2)) + 1.5 + rng.normal(size=(400, 2)) > 0).astype(float)
    ((coef, bias),) = soft_logistic_path(
        Design(x, bias=True), y, [0.05], tol=1e-10, penalize_bias=False
    )
    ((_, penalised),) = soft_logistic_path(Design(x, bias=True), y, [0.05], tol=1e-10)
    for j in range(2):
        ref = LogisticRegression(C=0.05, tol=1e-12, max_iter=10_000).fit(x, y[:, j])
        np.testing.assert_allclose(coef[:, j], ref.coef_.ravel(), atol=1e-6)
        np.testing.assert_allclose(bias[j], ref.intercept_[0], atol=1e-6)
    # A strong penalty shrinks a penalised intercept towards 0, not an unpenalised one.
    assert np.all(np.abs(bias) > np.abs(penalised))


def test_linear_heads_keep_constant_columns_constant(rb_features) -> None:  # type: ignore[no-untyped-def]
    x, y, x_test = rb_features
    y = y[:, :3].copy()
    y[:, 1] = 1.0  # a model that answers everything well
    for head in [*logistic_heads(x, y, [1.0]), *ridge_heads(x, y, [10.0])]:
        assert isinstance(head, LinearHead)
        pred = head.predict(x_test)
        assert pred.shape == (x_test.shape[0], 3)
        np.testing.assert_allclose(pred[:, 1], pred[0, 1])
        assert pred[0, 1] > 0.999
        assert np.ptp(pred[:, 0]) > 0


def test_mlp_router_chooses_its_projection_by_cv_and_saves_plain_arrays(  # type: ignore[no-untyped-def]
    rb_small, tmp_path
) -> None:
    train, test = rb_small
    router = get_router("mlp", max_iter=5, alpha=0.01).fit(train)
    assert router.scorer.n_components is None  # a scorer hyperparameter, not the router's
    assert router.best_params_["n_components"] in (128, 256)
    assert {r["params"]["n_components"] for r in router.cv_results_} == {128, 256}
    # The projection is folded into the first layer: the head reads the features directly.
    head = router.scorer_.head_
    assert isinstance(head, MLPHead)
    assert head.coefs[0].shape[0] == router.embedder_.transform(test.queries[:1]).shape[1]
    q = router.predict_quality(test.queries)
    assert q.shape == (test.n_queries, train.n_models)
    assert np.all((q >= 0) & (q <= 1))
    router.save(tmp_path / "mlp")
    np.testing.assert_allclose(
        load_router(tmp_path / "mlp").predict_quality(test.queries), q, atol=1e-6
    )
    raw = get_router("mlp", max_iter=5, alpha=0.01, n_components=0, blend=1.0).fit(train)
    assert raw.best_params_["n_components"] == 0
    assert np.all(np.isfinite(raw.predict_quality(test.queries)))


@pytest.mark.parametrize("name", ["linear", "logistic", "knn"])
def test_calibration_is_that_of_the_training_predictions(rb_small, name: str) -> None:  # type: ignore[no-untyped-def]
    """The knob's calibration at fit (computed from the training features of the fit) equals
    the one of predicting the training queries afresh."""
    train, _ = rb_small
    router = get_router(name).fit(train)
    assert isinstance(router.calibration_, Calibration)
    fresh = Calibration.from_predictions(*router.predict(train.queries))
    if name != "knn":
        assert router.calibration_ == fresh
        return
    # kNN calibrates with the batched similarities (equal up to float32 rounding).
    ours, theirs = router.calibration_.to_dict(), fresh.to_dict()
    assert ours["cost_weight"] == theirs["cost_weight"]
    for key in ("mean_cost", "mean_quality"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5)


def test_knn_batched_similarities_match_the_sparse_product(rb_features) -> None:  # type: ignore[no-untyped-def]
    x, y, x_test = rb_features
    head = KNNHead(x, y, k=25, alpha=1.0)
    # Routing's similarities are the sparse product, and a query's row does not depend on
    # the batch it comes in.
    batch = head.similarities(x_test[:6])
    np.testing.assert_array_equal(batch, (x_test[:6] @ x.T).toarray().astype(np.float64))
    for i in range(6):
        np.testing.assert_array_equal(head.similarities(x_test[i]), batch[i : i + 1])
    np.testing.assert_allclose(
        head.similarities_many(x_test, n_dense=64), head.similarities(x_test), atol=1e-5
    )
    dense = KNNHead(x.toarray(), y, k=25, alpha=1.0)
    np.testing.assert_allclose(
        dense.similarities_many(x_test.toarray()), head.similarities(x_test), atol=1e-5
    )
