"""The registry (names, plugins, dotted paths) and the route step (one knob, ties, forms)."""

from __future__ import annotations

import math
from importlib.metadata import EntryPoint

import numpy as np
import pytest

import llmrouter_core.routers.registry as registry
from llmrouter_core import (
    BudgetPolicy,
    CostWeightPolicy,
    ThresholdPolicy,
    get_router,
    list_routers,
    load_router,
    register_router,
)
from llmrouter_core.errors import DataError, PersistenceError, UnknownRouterError
from llmrouter_core.policy import choose, rank, rank_one, rank_rows
from llmrouter_core.routers.baselines import BestSingleRouter


class MeanOfTrainRouter(BestSingleRouter):
    """A plugin router used to exercise registration."""

    family = "plugin"


def test_unknown_router_lists_known_names() -> None:
    with pytest.raises(UnknownRouterError, match=r"unknown router 'nope'.*knn"):
        get_router("nope")


def test_register_by_class_and_dotted_path(rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    register_router("test-mean", MeanOfTrainRouter, overwrite=True)
    assert "test-mean" in {r.name for r in list_routers()}
    router = get_router("test-mean").fit(train)
    router.save(tmp_path / "r")
    assert type(load_router(tmp_path / "r")) is MeanOfTrainRouter
    with pytest.raises(ValueError, match="already registered"):
        register_router("test-mean", MeanOfTrainRouter)
    # a dotted path names any Router subclass
    cls = registry.get_router_class("llmrouter_core.routers.baselines:CheapestRouter")
    assert cls.__name__ == "CheapestRouter"
    with pytest.raises(UnknownRouterError, match="not a Router subclass"):
        registry.get_router_class("collections:OrderedDict")


def test_entry_point_plugins_are_loaded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ep = EntryPoint(
        name="ep-single",
        value="llmrouter_core.routers.baselines:BestSingleRouter",
        group=registry.ENTRY_POINT_GROUP,
    )

    def fake_entry_points(group: str):  # type: ignore[no-untyped-def]
        return [ep] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    assert registry.get_router_class("ep-single") is BestSingleRouter


def test_loading_an_unregistered_router_class_is_refused(rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    train, _ = rb_small
    get_router("single").fit(train).save(tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "router.json").read_text())
    doc["router"] = "os:system"
    (tmp_path / "r" / "router.json").write_text(json.dumps(doc))
    with pytest.raises(PersistenceError):
        load_router(tmp_path / "r")


def test_ties_break_toward_the_cheaper_model() -> None:
    q = np.array([[0.8, 0.8, 0.8]])
    c = np.array([[0.003, 0.001, 0.002]])
    assert choose(q, c, 0.0).tolist() == [1]
    assert rank(q[0], c[0], 0.0).tolist() == [1, 2, 0]
    # near-ties within float noise count as ties too
    q2 = np.array([[0.8 + 1e-13, 0.8]])
    assert choose(q2, np.array([[0.01, 0.001]]), 0.0).tolist() == [1]


def test_one_knob_trades_quality_for_cost() -> None:
    q = np.array([[0.5, 0.7, 0.9]])
    c = np.array([[0.001, 0.002, 0.010]])
    assert choose(q, c, math.inf).tolist() == [0]
    assert choose(q, c, 0.0).tolist() == [2]
    # utility 0.7 - 100*0.002 = 0.5 beats 0.9 - 100*0.01 = -0.1 and 0.5 - 0.1 = 0.4
    assert choose(q, c, 100.0).tolist() == [1]
    allowed = np.array([True, False, True])
    assert choose(q, c, 100.0, allowed).tolist() == [0]


def test_policy_forms(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("knn", n_neighbors=10, blend=1.0).fit(train)
    query = test.queries[0]
    assert (
        router.route(query, policy=CostWeightPolicy(math.inf)).model
        == router.route(query, cost_weight=math.inf).model
    )
    budget = router.calibration_["mean_cost"][len(router.calibration_["mean_cost"]) // 2]
    w = router.cost_weight_for_budget(budget)
    assert router.route(query, policy=BudgetPolicy(budget)).cost_weight == w
    with pytest.raises(ValueError, match="one of"):
        router.route(query, cost_weight=1.0, budget=0.1)
    with pytest.raises(ValueError, match="two-model pool"):
        router.route(query, policy=ThresholdPolicy(0.1))


def test_threshold_form_on_a_two_model_pool(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    pair = ["mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"]
    router = get_router("knn", n_neighbors=10, blend=1.0).fit(train.select_models(pair))
    q = router.predict_quality(test.queries)
    gain = q[:, 1] - q[:, 0]
    for t in (-1.0, 0.0, 0.1, 0.3, 2.0):
        chosen = [d.model for d in router.route_batch(test.queries, threshold=t)]
        expected = [pair[1] if g > t + 1e-9 else pair[0] for g in gain]
        assert chosen == expected
    shares = [
        np.mean([d.model == pair[1] for d in router.route_batch(test.queries, threshold=t)])
        for t in (0.0, 0.1, 0.2, 0.4)
    ]
    assert shares == sorted(shares, reverse=True)


@pytest.mark.parametrize("weight", [0.0, 0.5, 40.0, math.inf])
def test_rank_rows_and_rank_one_equal_rank_per_row(weight: float) -> None:
    rng = np.random.default_rng(7)
    n, m = 300, 6
    # Coarse values make exact and near ties common (equal quality, equal cost, both).
    q = rng.integers(0, 4, size=(n, m)) / 4.0
    q[::7] += 1e-12  # near-ties inside the tolerance
    c = rng.integers(1, 4, size=(n, m)) / 100.0
    mask = rng.random((n, m)) < 0.8
    mask[np.arange(n), rng.integers(0, m, size=n)] = True  # every row keeps a model
    for allowed in (None, mask):
        rows = rank_rows(q, c, weight, allowed)
        assert len(rows) == n
        for i in range(n):
            row_mask = None if allowed is None else allowed[i]
            expected = rank(q[i], c[i], weight, row_mask).tolist()
            assert rows[i].tolist() == expected
            one = rank_one(q[i].tolist(), c[i].tolist(), weight, row_mask)
            assert one == expected
    with pytest.raises(DataError):
        rank_one([0.5, 0.6], [1.0, 2.0], weight, [False, False])


@pytest.mark.parametrize(
    "name,params", [("linear", {"alpha": 1.0, "blend": 1.0}), ("knn", {"n_neighbors": 15})]
)
def test_route_batch_equals_route(rb_small, name: str, params: dict) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router(name, **params).fit(train)
    queries = list(test.queries[:40])
    for kwargs in ({}, {"cost_weight": 200.0}, {"allowed": router.models_[:3]}):
        batch = router.route_batch(queries, **kwargs)
        assert batch == [router.route(q, **kwargs) for q in queries]
