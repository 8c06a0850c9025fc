"""evaluate() and leaderboard() on real outcomes with predictors derived from real data."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError, NotFittedError, UnknownModelError
from llmrouter_core.evaluation import (
    RouterEvaluation,
    aiq,
    cost_at_score,
    cost_range,
    evaluate,
    leaderboard,
    oracle_frontier,
    single_model_points,
    sweep_curve,
    two_model_metrics,
)

WEIGHTS = [math.inf, *np.geomspace(1e6, 1.0, 39).tolist(), 0.0]


@pytest.fixture(scope="session")
def constant_router(fixed_router: type) -> Callable[[RoutingData, RoutingData], Any]:
    """Predicts each model's mean train score and cost for every test query."""

    def make(train: RoutingData, test: RoutingData) -> Any:
        n = test.n_queries
        quality = np.tile(np.nanmean(train.scores, axis=0), (n, 1))
        cost = np.tile(np.nanmean(train.costs, axis=0), (n, 1))
        return fixed_router(test.models, test.queries, quality, cost, WEIGHTS, name="constant")

    return make


@pytest.fixture(scope="session")
def perfect_router(fixed_router: type) -> Callable[..., Any]:
    """Predicts the measured test scores and costs themselves."""

    def make(test: RoutingData, weights: list[float] | None = None) -> Any:
        return fixed_router(
            test.models, test.queries, test.scores, test.costs, weights or WEIGHTS, name="perfect"
        )

    return make


def frontier_weights(test: RoutingData) -> list[float]:
    """Cost weights that make the perfect predictor land on every oracle-frontier vertex."""
    f = oracle_frontier(test)
    slopes = np.diff(f[:, 1]) / np.diff(f[:, 0])
    inner = [math.sqrt(a * b) for a, b in itertools.pairwise(slopes)]
    return [math.inf, 2 * slopes[0], *inner, slopes[-1] / 2, 0.0]


@pytest.fixture(scope="module")
def evaluations(
    rb_train: RoutingData, rb_test: RoutingData, constant_router: Any, perfect_router: Any
) -> dict[str, RouterEvaluation]:
    return {
        "constant": evaluate(constant_router(rb_train, rb_test), rb_test, train_seconds=0.5),
        "perfect": evaluate(perfect_router(rb_test), rb_test, route_latency_ms=0.01),
    }


def test_evaluate_predicts_once_and_sweeps(
    rb_train: RoutingData, rb_test: RoutingData, constant_router: Any
) -> None:
    router = constant_router(rb_train, rb_test)
    ev = evaluate(router, rb_test, n_points=17)
    assert router.predict_calls == 1
    assert router.sweep_calls == [17]
    assert ev.router == "constant" and ev.dataset == "routerbench-test"
    assert ev.n_queries == rb_test.n_queries and ev.models == rb_test.models
    assert [p.cost_weight for p in ev.curve] == WEIGHTS
    assert ev.predict_seconds is not None and ev.predict_seconds >= 0
    assert evaluate(router, rb_test, name="renamed").router == "renamed"


def test_reference_figures_match_the_metrics(
    rb_test: RoutingData, evaluations: dict[str, RouterEvaluation]
) -> None:
    ev = evaluations["constant"]
    singles = single_model_points(rb_test)
    c_min, c_max = cost_range(rb_test)
    assert (ev.c_min, ev.c_max) == (c_min, c_max)
    assert ev.single_models == singles
    assert ev.single_hull_aiq == aiq(list(singles.values()), c_min, c_max)
    assert ev.oracle_aiq == aiq(oracle_frontier(rb_test), c_min, c_max)
    assert ev.aiq == aiq(ev.curve, c_min, c_max)
    assert ev.single_hull_aiq < ev.oracle_aiq <= ev.oracle.score
    best = max(singles, key=lambda m: (singles[m].score, -singles[m].cost))
    assert ev.best_single == best
    assert ev.best_score == max(p.mean_score for p in ev.curve)
    assert 0.0 <= ev.aiq <= 1.0


def test_constant_predictor_is_no_better_than_the_single_models(
    evaluations: dict[str, RouterEvaluation],
) -> None:
    ev = evaluations["constant"]
    assert ev.aiq <= ev.single_hull_aiq + 1e-12
    assert ev.oracle_gap_closed is not None and ev.oracle_gap_closed <= 1e-12
    for p in ev.curve:
        assert any(
            p.mean_cost == pytest.approx(s.cost) and p.mean_score == pytest.approx(s.score)
            for s in ev.single_models.values()
        )


def test_perfect_predictor_closes_the_oracle_gap(rb_test: RoutingData, perfect_router: Any) -> None:
    ev = evaluate(perfect_router(rb_test, frontier_weights(rb_test)), rb_test)
    assert ev.aiq == pytest.approx(ev.oracle_aiq, abs=1e-9)
    assert ev.oracle_gap_closed == pytest.approx(1.0, abs=1e-7)
    assert ev.best_score == pytest.approx(ev.oracle.score)
    # It reaches the best single model's score far below that model's cost.
    best_cost = ev.single_models[ev.best_single].cost
    assert ev.cost_at_best_single_score is not None
    assert ev.cost_at_best_single_score < best_cost
    assert ev.cost_share_of_best_single == pytest.approx(ev.cost_at_best_single_score / best_cost)
    assert ev.cost_at_best_single_score == cost_at_score(
        ev.curve, ev.single_models[ev.best_single].score
    )


def test_per_task_breakdown_adds_up(
    rb_test: RoutingData, evaluations: dict[str, RouterEvaluation]
) -> None:
    ev = evaluations["perfect"]
    assert sorted(ev.per_task) == sorted(set(rb_test.tasks or []))
    assert sum(b.n_queries for b in ev.per_task.values()) == rb_test.n_queries
    for k, point in enumerate(ev.curve):
        score = sum(b.points[k].mean_score * b.n_queries for b in ev.per_task.values())
        cost = sum(b.points[k].mean_cost * b.n_queries for b in ev.per_task.values())
        assert score / rb_test.n_queries == pytest.approx(point.mean_score)
        assert cost / rb_test.n_queries == pytest.approx(point.mean_cost)
    for task, b in ev.per_task.items():
        part = rb_test.subset([i for i, t in enumerate(rb_test.tasks or []) if t == task])
        c_min, c_max = cost_range(part)
        assert b.aiq == pytest.approx(aiq(b.points, c_min, c_max))
        assert b.single_hull_aiq == pytest.approx(
            aiq(list(single_model_points(part).values()), c_min, c_max)
        )
        assert b.oracle_aiq is not None and b.aiq is not None
        assert b.aiq <= b.oracle_aiq + 1e-12
        assert b.points == sweep_curve(part.scores, part.costs, part, WEIGHTS)


def test_columns_are_matched_by_name(
    rb_test: RoutingData, fixed_router: type, perfect_router: Any
) -> None:
    order = list(reversed(rb_test.models))
    flipped = rb_test.select_models(order)
    router = fixed_router(
        order, rb_test.queries, flipped.scores, flipped.costs, WEIGHTS, name="perfect"
    )
    ev = evaluate(router, rb_test)  # data in the original column order
    assert ev.models == order
    assert ev.aiq == pytest.approx(evaluate(perfect_router(rb_test), rb_test).aiq)
    # A smaller pool: the extra data columns are ignored.
    sub = rb_test.select_models(rb_test.models[:4])
    small = fixed_router(sub.models, sub.queries, sub.scores, sub.costs, WEIGHTS)
    assert evaluate(small, rb_test).single_models == single_model_points(sub)
    missing = fixed_router(["not-a-model"], rb_test.queries, sub.scores, sub.costs, WEIGHTS)
    with pytest.raises(UnknownModelError):
        evaluate(missing, rb_test)


def test_unfitted_router_and_incomplete_data_raise(
    rb_test: RoutingData, perfect_router: Any
) -> None:
    class Unfitted:
        def predict(self, queries: list[str]) -> None:
            raise AssertionError("must not be called")

        def sweep(self, n_points: int) -> list[float]:
            return [0.0]

    with pytest.raises(NotFittedError, match="not fitted"):
        evaluate(Unfitted(), rb_test)  # type: ignore[arg-type]
    scores = rb_test.scores.copy()
    scores[0, 0] = np.nan
    broken = RoutingData(
        query_ids=rb_test.query_ids,
        queries=rb_test.queries,
        models=rb_test.models,
        scores=scores,
        costs=rb_test.costs,
    )
    router = perfect_router(rb_test)
    with pytest.raises(DataError, match="complete"):
        evaluate(router, broken)
    assert router.predict_calls == 0  # rejected before any work


def test_to_dict_is_json_safe(evaluations: dict[str, RouterEvaluation]) -> None:
    for ev in evaluations.values():
        d = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
        assert d["aiq"] == ev.aiq
        assert d["curve"][0]["cost_weight"] == "inf"
        assert len(d["curve"]) == len(ev.curve)
        assert set(d["per_task"]) == set(ev.per_task)
        assert d["single_models"][ev.best_single]["score"] == ev.single_models[ev.best_single].score
    assert json.loads(json.dumps(evaluations["constant"].to_dict()))["train_seconds"] == 0.5


def test_leaderboard_ranks_by_aiq(evaluations: dict[str, RouterEvaluation]) -> None:
    rows = leaderboard([evaluations["constant"], evaluations["perfect"]])
    assert [r["router"] for r in rows] == ["perfect", "constant"]
    assert [r["rank"] for r in rows] == [1, 2]
    top = rows[0]
    ev = evaluations["perfect"]
    assert top["aiq"] == ev.aiq and top["oracle_gap_closed"] == ev.oracle_gap_closed
    assert top["pct_cost_of_best_single"] == pytest.approx(100 * ev.cost_share_of_best_single)
    assert top["route_latency_ms"] == 0.01 and rows[1]["train_seconds"] == 0.5
    assert top["best_score"] == ev.best_score


def test_two_model_metrics(rb_test: RoutingData, gsm8k: RoutingData, perfect_router: Any) -> None:
    pair = rb_test.select_models(["mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"])
    ev = evaluate(perfect_router(pair), pair)
    assert ev.two_model is not None
    assert (ev.two_model.weak, ev.two_model.strong) == tuple(pair.models)
    assert ev.two_model.points[0].strong_share == 0.0
    assert ev.two_model.points[-1].strong_share == 1.0
    assert ev.two_model.apgr > 0.5  # perfect knowledge beats the straight line
    assert ev.two_model.cpt50 is not None and ev.two_model.cpt80 is not None
    assert 0 <= ev.two_model.cpt50 <= ev.two_model.cpt80 <= 1
    assert ev.to_dict()["two_model"]["apgr"] == ev.two_model.apgr
    # A multi-model pool has none.
    assert evaluate(perfect_router(rb_test), rb_test).two_model is None
    # The RouteLLM pair has no costs: the models must be named.
    with pytest.raises(DataError, match="name the weak and strong"):
        two_model_metrics(gsm8k.scores, gsm8k)
    m = two_model_metrics(gsm8k.scores, gsm8k, weak=gsm8k.models[0], strong=gsm8k.models[1])
    assert m.apgr > 0.5 and m.weak_score < m.strong_score


def test_evaluates_the_library_routers(rb_train: RoutingData, rb_test: RoutingData) -> None:
    import llmrouter_core

    single = llmrouter_core.get_router("single").fit(rb_train)
    ev = evaluate(single, rb_test, n_points=9)
    assert ev.router == "single"
    assert ev.aiq <= ev.single_hull_aiq + 1e-12
    for p in ev.curve:
        assert max(p.model_shares.values()) == 1.0
    oracle = llmrouter_core.get_router("oracle").fit(rb_test)
    ev = evaluate(oracle, rb_test, n_points=41)
    assert ev.best_score == pytest.approx(ev.oracle.score)
    assert ev.single_hull_aiq < ev.aiq <= ev.oracle_aiq + 1e-12
