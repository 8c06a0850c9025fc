"""Behaviour every router of the zoo shares: ties, per-query costs, hyperparameter checks.

Runs on small real slices of RouterBench (the shared ``rb_small`` fixture).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from llmrouter_core import get_router, load_router
from llmrouter_core.data import RoutingData
from llmrouter_core.router import Router
from llmrouter_core.training.costs import CostModel, FeatureCostModel

HAS_TORCH = importlib.util.find_spec("torch") is not None

NUMPY_ZOO = [
    "irt",
    "mf",
    "elo",
    "sw_ranking",
    "hybrid",
    "carrot",
    "cluster",
    "task",
    "bandit",
    "auto",
]
TORCH_ZOO = ["graph", "routerdc"]
ZOO = NUMPY_ZOO + [
    pytest.param(n, marks=pytest.mark.skipif(not HAS_TORCH, reason="torch extra not installed"))
    for n in TORCH_ZOO
]
# Small, fixed settings so each fit takes a second or two (no search where none is needed).
FAST = {
    "irt": {"n_dims": 2, "l2": 0.01},
    "mf": {"dim": 8, "l2": 0.01},
    "sw_ranking": {"sharpness": 3.0},
    "hybrid": {"label": "deterministic", "alpha": 10.0},
    "carrot": {"estimator": "linear", "alpha": 10.0},
    "cluster": {"n_clusters": 6},
    "task": {"alpha": 1e-5},
    "bandit": {"l2": 100.0},
    "graph": {"n_neighbors": 10, "l2": 1e-3, "steps": 60},
    "routerdc": {"temperature": 0.2, "epochs": 3},
    "auto": {"members": ("linear", "irt"), "weight_steps": 2},
}
COPY = "mistralai/mixtral-8x7b-chat"


def with_copy(data: RoutingData, model: str) -> RoutingData:
    """``data`` plus a column ``copy`` with exactly the scores and costs of ``model``."""
    j = data.models.index(model)
    assert data.costs is not None
    return RoutingData(
        query_ids=data.query_ids,
        queries=data.queries,
        models=[*data.models, "copy"],
        scores=np.hstack([data.scores, data.scores[:, [j]]]),
        costs=np.hstack([data.costs, data.costs[:, [j]]]),
        tasks=data.tasks,
    )


@pytest.mark.parametrize("name", ZOO)
def test_tied_models_get_equal_credit(name: str, rb_small) -> None:  # type: ignore[no-untyped-def]
    """Two models with identical scores on every training query are predicted identically:
    routers learn from scores, ties included, never from "the first best row"."""
    train, test = rb_small
    data = with_copy(train, COPY)
    router = get_router(name, **FAST.get(name, {})).fit(data)
    q, c = router.predict(test.queries[:60])
    j = data.models.index(COPY)
    np.testing.assert_allclose(q[:, j], q[:, -1], atol=1e-5)
    np.testing.assert_allclose(c[:, j], c[:, -1], rtol=1e-9)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_router_state_roundtrip(name: str, rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router(name, **FAST.get(name, {})).fit(train)
    assert isinstance(router, Router)
    assert isinstance(router.cost_model_, FeatureCostModel)
    router.save(tmp_path / "r")
    loaded = load_router(tmp_path / "r")
    assert (loaded.name, type(loaded.scorer_)) == (name, type(router.scorer_))
    assert isinstance(loaded.cost_model_, FeatureCostModel)
    q1, c1 = router.predict(test.queries)
    q2, c2 = loaded.predict(test.queries)
    np.testing.assert_allclose(q1, q2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(c1, c2, rtol=1e-12)
    assert loaded.best_params_ == router.best_params_


def test_cv_chooses_from_the_search_space(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    router = get_router("irt", n_dims=1).fit(train)
    assert router.best_params_["n_dims"] == 1  # fixed values are kept
    space = type(router.scorer).search_space
    assert router.best_params_["l2"] in space["l2"]
    assert router.scorer_.get_params()["n_dims"] == 1
    assert router.scorer_.get_params()["l2"] == router.best_params_["l2"]
    tried = {r["params"]["l2"] for r in router.cv_results_}
    assert tried == set(space["l2"])
    assert {r["params"]["n_dims"] for r in router.cv_results_} == {1}
    assert 0.0 <= router.blend_ <= 1.0
    assert router.blend_ in {r["blend"] for r in router.cv_results_}


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("irt", {"cost_model": "exact"}),
        ("irt", {"n_dims": -1}),
        ("mf", {"recipe": "listwise"}),
        ("irt", {"recipe": "online"}),  # a known recipe the scorer does not take
        ("hybrid", {"label": "fuzzy"}),
        ("carrot", {"estimator": "forest"}),
        ("bandit", {"strategy": "greedy"}),
        ("bandit", {"exploration": -0.1}),
        ("sw_ranking", {"sharpness": -1.0}),
        ("cluster", {"n_clusters": 0}),
        ("task", {"alpha": 0.0}),
        ("auto", {"members": ()}),
        ("auto", {"members": ("no-such-router",)}),
        ("auto", {"members": ("auto",)}),  # a stack in a stack
        ("auto", {"members": ("oracle",)}),  # evaluation only (reads the query's outcomes)
        ("auto", {"members": ("linear", "encoder")}),  # reads the text, not the features
    ],
)
def test_bad_hyperparameters_fail_before_training(name: str, params: dict, rb_small) -> None:  # type: ignore[no-untyped-def,type-arg]
    train, _ = rb_small
    router = get_router(name, **params)
    with pytest.raises((ValueError, KeyError)):
        router.fit(train)
    assert not router.is_fitted


def test_token_cost_model_is_available(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("irt", cost_model="tokens", **FAST["irt"]).fit(train)
    assert isinstance(router.cost_model_, CostModel)
    assert not isinstance(router.cost_model_, FeatureCostModel)
    np.testing.assert_allclose(
        router.predict_cost(test.queries), router.cost_model_.predict(test.queries)
    )
