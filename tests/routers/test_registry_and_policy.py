"""The registry (names are compositions, plugins, paths) and the policies (the knob in its
forms, ties, plans), on real RouterBench slices."""

from __future__ import annotations

import json
import math
from importlib.metadata import EntryPoint

import numpy as np
import pytest

import llmrouter_core.registry as registry
from llmrouter_core import (
    BudgetPolicy,
    CascadePlan,
    CascadePolicy,
    Composition,
    CostWeightPolicy,
    FanOutPolicy,
    Router,
    ThresholdPolicy,
    get_router,
    list_routers,
    load_router,
    register_router,
)
from llmrouter_core.decision import Decision
from llmrouter_core.errors import DataError, PersistenceError, UnknownRouterError
from llmrouter_core.policy import RouteContext, choose, decisions, rank, rank_one, rank_rows
from llmrouter_core.scoring.knn import KNNScorer


def test_unknown_router_lists_known_names() -> None:
    with pytest.raises(UnknownRouterError, match=r"unknown router 'nope'.*knn"):
        get_router("nope")


def test_names_are_compositions_and_params_reach_the_right_part() -> None:
    router = get_router("knn", n_neighbors=20, cv=5)
    assert isinstance(router, Router) and router.name == "knn"
    assert router.scorer.n_neighbors == 20 and router.cv == 5
    assert router.cost_model == "tokens"  # the composition's own setting
    mf = get_router("mf")
    assert mf.scorer.__class__.__name__ == "BilinearScorer" and mf.recipe == "pairwise"
    with pytest.raises(ValueError, match=r"invalid parameter .no_such.*n_neighbors"):
        get_router("knn", no_such=1)
    # A stack's members may be given as router names.
    assert get_router("auto", members=["linear", "mf"]).scorer.members == ("ridge", "bilinear")


def test_list_routers_reports_capabilities_as_data() -> None:
    infos = {info.name: info for info in list_routers()}
    assert infos["oracle"].evaluation_only and infos["oracle"].tags.evaluation_only
    assert infos["bandit"].tags.online and not infos["knn"].tags.online
    assert "torch" in infos["graph"].tags.extras
    assert infos["llm"].tags.calls_models
    assert infos["task"].tags.needs == ("tasks",)
    assert "oracle" not in {i.name for i in list_routers(include_evaluation_only=False)}


def test_register_a_composition_and_a_router_class(rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    register_router(
        "test-knn-5",
        Composition("knn", "plugin", "five neighbours", scorer_params={"n_neighbors": 5}),
        overwrite=True,
    )
    router = get_router("test-knn-5").fit(train)
    assert router.scorer_.n_neighbors == 5 and router.family == "plugin"
    router.save(tmp_path / "r")
    loaded = load_router(tmp_path / "r")
    assert loaded.name == "test-knn-5"
    assert [d.model for d in loaded.route_batch(test.queries[:20])] == [
        d.model for d in router.route_batch(test.queries[:20])
    ]
    with pytest.raises(ValueError, match="already registered"):
        register_router("test-knn-5", Composition("knn", "plugin", "again"))

    class FixedKNN(Router):
        """A plugin router class with its own defaults."""

        def __init__(self, scorer: object = None, **params: object) -> None:
            super().__init__(scorer if scorer is not None else KNNScorer(7), **params)  # type: ignore[arg-type]

    register_router("test-fixed-knn", FixedKNN, overwrite=True)
    fitted = get_router("test-fixed-knn").fit(train)
    assert isinstance(fitted, FixedKNN) and fitted.scorer_.n_neighbors == 7
    # A dotted path names a composition or Router class in the caller's own code.
    assert get_router("llmrouter_core.router:Router").name == "custom"
    with pytest.raises(UnknownRouterError, match="neither"):
        get_router("collections:OrderedDict")


def test_entry_point_plugins_are_loaded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ep = EntryPoint(
        name="ep-router", value="llmrouter_core.router:Router", group=registry.ENTRY_POINT_GROUP
    )

    def fake_entry_points(group: str):  # type: ignore[no-untyped-def]
        return [ep] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    assert registry.get_composition("ep-router") is Router
    assert get_router("ep-router").name == "ep-router"


def test_loading_an_unregistered_router_or_scorer_is_refused(rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    get_router("single").fit(train).save(tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "router.json").read_text())
    for key, value in (("router", "os:system"), ("scorer", {"name": "os:system", "params": {}})):
        edited = dict(doc, **{key: value})
        (tmp_path / "r" / "router.json").write_text(json.dumps(edited))
        with pytest.raises(PersistenceError):
            load_router(tmp_path / "r")


def test_an_older_format_is_one_clear_error(rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    get_router("single").fit(train).save(tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "router.json").read_text())
    doc["format_version"], doc["library_version"] = 1, "0.1.0"
    (tmp_path / "r" / "router.json").write_text(json.dumps(doc))
    with pytest.raises(PersistenceError, match=r"format version 1 .*0\.1\.0.*retrain"):
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
    mean_cost = router.calibration_.mean_cost
    budget = mean_cost[len(mean_cost) // 2]
    w = router.cost_weight_for_budget(budget)
    assert router.route(query, policy=BudgetPolicy(budget)).cost_weight == w
    with pytest.raises(ValueError, match="one of"):
        router.route(query, cost_weight=1.0, budget=0.1)
    with pytest.raises(ValueError, match="two-model pool"):
        router.route(query, policy=ThresholdPolicy(0.1))
    for bad in (math.nan, -5.0):
        with pytest.raises(ValueError, match="cost_weight"):
            router.route(query, cost_weight=bad)


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
def test_route_batch_equals_route(rb_small, name: str, params: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    train, test = rb_small
    router = get_router(name, **params).fit(train)
    queries = list(test.queries[:40])
    for kwargs in ({}, {"cost_weight": 200.0}, {"allowed": router.models_[:3]}):
        batch = router.route_batch(queries, **kwargs)
        assert batch == [router.route(q, **kwargs) for q in queries]


def test_fan_out_and_cascade_plans_on_real_predictions(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("linear", alpha=10.0).fit(train)
    for query in test.queries[:20]:
        plain = router.route(query, cost_weight=300.0)
        fan = router.route(query, policy=FanOutPolicy(k=3, inner=CostWeightPolicy(300.0)))
        assert fan.plan is not None and fan.plan.models == plain.ranked[:3]
        assert fan.model == plain.model
        cascade = router.route(query, policy=CascadePolicy(inner=CostWeightPolicy(300.0)))
        plan = cascade.plan
        assert isinstance(plan, CascadePlan) and plan.models[-1] == plain.model
        # Each stage before the last is cheaper and predicted worse than the next one.
        for a, b in zip(plan.models, plan.models[1:], strict=False):
            assert cascade.cost[a] <= cascade.cost[b] and cascade.quality[a] < cascade.quality[b]
        # A stage is accepted when its confidence reaches what escalating would bring.
        for stage, nxt in zip(plan.stages, plan.models[1:], strict=False):
            expected = cascade.quality[nxt] - 300.0 * cascade.cost[nxt]
            assert stage.threshold == pytest.approx(min(max(expected, 0.0), 1.0))
        assert cascade.to_dict()["plan"]["kind"] == "cascade"
    cheapest = router.route(test.queries[0], policy=CascadePolicy(inner=CostWeightPolicy(math.inf)))
    assert isinstance(cheapest.plan, CascadePlan) and len(cheapest.plan.stages) == 1


def test_any_object_with_decide_is_a_policy(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small

    class SecondBest:
        def decide(self, quality, cost, context: RouteContext) -> list[Decision]:  # type: ignore[no-untyped-def]
            out = decisions(quality, cost, 0.0, context, reason="second best")
            return [
                Decision(
                    d.ranked[1],
                    (d.ranked[1], d.ranked[0], *d.ranked[2:]),
                    d.quality,
                    d.cost,
                    0.0,
                    d.router,
                )
                for d in out
            ]

    router = get_router("linear", alpha=10.0).fit(train)
    d = router.route(test.queries[0], policy=SecondBest())
    assert d.model == router.route(test.queries[0], cost_weight=0.0).ranked[1]
    with pytest.raises(TypeError, match="decide"):
        router.route(test.queries[0], policy="cheapest")  # type: ignore[arg-type]
