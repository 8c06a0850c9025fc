"""Route x Training as building blocks: any scorer (a scikit-learn regressor included) with any
recipe it accepts, online feedback, and a pool larger than the data, on real RouterBench data."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor

from llmrouter_core import (
    ModelSpec,
    Pool,
    UnknownModelError,
    get_router,
    load_router,
    make_router,
)
from llmrouter_core.errors import DataError, PersistenceError
from llmrouter_core.evaluation import evaluate


def test_a_scikit_learn_regressor_fits_routes_sweeps_evaluates_and_saves(
    rb_small, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = make_router(scorer=KNeighborsRegressor(10), cost_model="tokens").fit(train)
    assert router.scorer_.estimator_.__class__.__name__ == "KNeighborsRegressor"
    decision = router.route(test.queries[0])
    assert decision.model in train.models and len(router.sweep(9)) == 9
    result = evaluate(router, test, n_points=21)
    assert result.aiq > result.single_hull_aiq - 0.05  # a real, if plain, router
    router.save(tmp_path / "knn")
    doc = json.loads((tmp_path / "knn" / "router.json").read_text())
    untrusted = doc["state"]["scorer"]["untrusted_types"]
    assert doc["scorer"] == {"name": "estimator", "input": "features"} and untrusted
    # skops refuses the types outside its trusted set unless the caller names them.
    with pytest.raises(PersistenceError, match="trusted_types"):
        load_router(tmp_path / "knn")
    loaded = load_router(tmp_path / "knn", trusted_types=untrusted)
    q1, c1 = router.predict(test.queries)
    q2, c2 = loaded.predict(test.queries)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(c1, c2)


def test_registered_names_equal_their_compositions(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    named = get_router("mf", dim=8, l2=0.01).fit(train)
    composed = make_router("bilinear", recipe="pairwise").set_params(
        scorer=named.scorer.__class__(dim=8, l2=0.01)
    )
    composed.fit(train)
    np.testing.assert_array_equal(named.predict(test.queries)[0], composed.predict(test.queries)[0])


@pytest.mark.parametrize(
    ("scorer", "recipe"),
    [
        ("irt", "pairwise"),
        ("irt", "contrastive"),
        ("bilinear", "pointwise"),
        ("bilinear", "contrastive"),
    ],
)
def test_a_scorer_takes_every_recipe_it_declares(rb_small, scorer: str, recipe: str) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    params = {"n_dims": 2, "l2": 0.01} if scorer == "irt" else {"dim": 8, "l2": 0.01}
    router = make_router(scorer, recipe=recipe, blend=1.0)
    router.set_params(scorer=router._template().set_params(**params)).fit(train)
    q, _ = router.predict(test.queries)
    assert np.all((q >= 0) & (q <= 1)) and q.std() > 0
    # The recipe changes what is learned.
    pointwise = make_router(scorer, recipe="pointwise", blend=1.0)
    pointwise.set_params(scorer=pointwise._template().set_params(**params)).fit(train)
    assert not np.allclose(q, pointwise.predict(test.queries)[0]) or recipe == "pointwise"


def test_a_recipe_a_scorer_does_not_take_is_one_clear_error(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    with pytest.raises(ValueError, match="cannot be trained with the 'pairwise' recipe"):
        make_router("knn", recipe="pairwise").fit(train)
    with pytest.raises(ValueError, match="unknown recipe 'listwise'"):
        get_router("mf", recipe="listwise").fit(train)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("knn", {"n_neighbors": -3}),
        ("linear", {"alpha": 0}),
        ("auto", {"cv": 1}),
        ("irt", {"blend": 2.0}),
    ],
)
def test_bad_hyperparameters_fail_before_training(rb_small, name: str, params: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    train, _ = rb_small
    router = get_router(name, **params)
    with pytest.raises(ValueError):
        router.fit(train)
    assert not router.is_fitted


def test_online_feedback_moves_the_prediction(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    query = test.queries[0]
    for name, params in (("single", {}), ("bandit", {"l2": 100.0})):
        router = get_router(name, **params).fit(train)
        j = 0
        before = router.predict([query])[0][0, j]
        for _ in range(30):
            router.feedback(query, router.models_[j], 0.0)
        after = router.predict([query])[0][0, j]
        assert after < before, name
        with pytest.raises(DataError, match=r"\[0, 1\]"):
            router.feedback(query, router.models_[j], 1.5)
    with pytest.raises(NotImplementedError, match="does not learn online"):
        get_router("knn", n_neighbors=10).fit(train).feedback(query, train.models[0], 1.0)


def test_a_pool_larger_than_the_data_trains_on_what_was_measured(rb_small, caplog) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    extra = [
        ModelSpec("not-measured-a", input_price=1, output_price=2),
        ModelSpec("not-measured-b"),
    ]
    pool = Pool([*(ModelSpec(m) for m in train.models), *extra])
    with caplog.at_level(logging.WARNING, logger="llmrouter_core"):
        router = get_router("linear", alpha=10.0).fit(train, pool)
    warnings = [r.getMessage() for r in caplog.records if "without training data" in r.getMessage()]
    assert len(warnings) == 1 and "not-measured-a, not-measured-b" in warnings[0]
    assert router.unmeasured_models_ == ["not-measured-a", "not-measured-b"]
    assert router.models_ == train.models and router.route(test.queries[0]).model in train.models
    with pytest.raises(UnknownModelError, match="not-measured-a"):
        get_router("linear").fit(train, pool, on_unmeasured="error")
    with pytest.raises(UnknownModelError):
        get_router("linear").fit(train, Pool(extra))


def test_infinite_training_costs_are_one_clear_error(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    costs = train.require_costs().copy()
    costs[3, 2] = np.inf
    bad = train.subset(np.arange(train.n_queries))
    bad.costs = costs
    with pytest.raises(DataError, match="finite"):
        get_router("linear").fit(bad)
