"""Cost-weight sweeps on real outcomes with predictors derived from real data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError
from llmrouter_core.evaluation import (
    CurvePoint,
    aiq,
    cost_range,
    oracle_point,
    single_model_points,
    sweep_curve,
    upper_hull,
)

WEIGHTS = [math.inf, *np.geomspace(1e6, 1.0, 30).tolist(), 0.0]


def constant_predictions(train: RoutingData, test: RoutingData) -> tuple[np.ndarray, np.ndarray]:
    """Every test query gets each model's mean score and mean cost on the train split."""
    n = test.n_queries
    quality = np.tile(np.nanmean(train.scores, axis=0), (n, 1))
    cost = np.tile(np.nanmean(train.costs, axis=0), (n, 1))
    return quality, cost


def test_constant_predictor_traces_single_model_points(
    rb_train: RoutingData, rb_test: RoutingData
) -> None:
    quality, cost = constant_predictions(rb_train, rb_test)
    curve = sweep_curve(quality, cost, rb_test, WEIGHTS)
    singles = single_model_points(rb_test)
    assert [p.cost_weight for p in curve] == WEIGHTS
    chosen = set()
    for p in curve:
        (model,) = [m for m, share in p.model_shares.items() if share == 1.0]
        assert sum(p.model_shares.values()) == 1.0
        assert p.mean_cost == pytest.approx(singles[model].cost, rel=1e-12)
        assert p.mean_score == pytest.approx(singles[model].score, rel=1e-12)
        chosen.add(model)
    # inf picks the cheapest (by predicted cost), 0 the best predicted model.
    train_means = np.nanmean(rb_train.scores, axis=0)
    assert (
        max(curve[0].model_shares, key=curve[0].model_shares.__getitem__)
        == rb_test.models[int(np.argmin(cost[0]))]
    )
    assert curve[-1].model_shares[rb_test.models[int(np.argmax(train_means))]] == 1.0
    assert len(chosen) >= 2
    # A subset of the single models can only do as well as all of them.
    c_min, c_max = cost_range(rb_test)
    assert aiq(curve, c_min, c_max) <= aiq(list(singles.values()), c_min, c_max) + 1e-12


def test_perfect_predictor_reaches_the_oracle(rb_test: RoutingData) -> None:
    curve = sweep_curve(rb_test.scores, rb_test.costs, rb_test, WEIGHTS)
    oracle = oracle_point(rb_test)
    assert curve[-1].mean_score == pytest.approx(oracle.score)
    assert curve[-1].mean_cost == pytest.approx(oracle.cost)
    # At inf, every query goes to its own cheapest model.
    assert curve[0].mean_cost == pytest.approx(float(rb_test.costs.min(axis=1).mean()))
    # Exact predictions: spending more (smaller weight) never lowers the realized score.
    costs = [p.mean_cost for p in curve]
    scores = [p.mean_score for p in curve]
    assert all(b >= a - 1e-15 for a, b in itertools.pairwise(costs))
    assert all(b >= a - 1e-15 for a, b in itertools.pairwise(scores))


def test_points_average_the_measured_outcomes_of_the_choices(
    rb_train: RoutingData, rb_test: RoutingData
) -> None:
    # A noisy predictor built from real scores: choices differ per query.
    rng = np.random.default_rng(7)
    quality = np.clip(rb_test.scores + rng.normal(scale=0.6, size=rb_test.scores.shape), 0, 1)
    _, cost = constant_predictions(rb_train, rb_test)
    weights = [0.0, 50.0, 500.0]
    curve = sweep_curve(quality, cost, rb_test, weights)
    for w, p in zip(weights, curve, strict=True):
        utility = quality - w * cost
        idx = []
        for i in range(rb_test.n_queries):
            best = utility[i].max()
            tied = [j for j in range(rb_test.n_models) if utility[i, j] >= best - 1e-9]
            idx.append(min(tied, key=lambda j: (cost[i, j], j)))
        rows = np.arange(rb_test.n_queries)
        assert p.mean_score == pytest.approx(rb_test.scores[rows, idx].mean())
        assert p.mean_cost == pytest.approx(rb_test.costs[rows, idx].mean())
        counts = np.bincount(idx, minlength=rb_test.n_models) / rb_test.n_queries
        assert [p.model_shares[m] for m in rb_test.models] == pytest.approx(counts.tolist())
        assert sum(p.model_shares.values()) == pytest.approx(1.0)
    hull = upper_hull(curve)
    assert len(hull) >= 1 and hull[-1, 1] == max(p.mean_score for p in curve)


def test_missing_realized_scores_raise(rb_test: RoutingData) -> None:
    scores = rb_test.scores.copy()
    scores[10, 0] = np.nan
    broken = RoutingData(
        query_ids=rb_test.query_ids,
        queries=rb_test.queries,
        models=rb_test.models,
        scores=scores,
        costs=rb_test.costs,
    )
    with pytest.raises(DataError, match="evaluation data must be complete"):
        sweep_curve(rb_test.scores, rb_test.costs, broken, [0.0])


@pytest.mark.parametrize(
    ("quality_rows", "quality_fill", "weights", "message"),
    [
        (-1, None, [0.0], "shape"),
        (0, np.nan, [0.0], "nan or infinite"),
        (0, None, [-1.0], "cost weights"),
        (0, None, [float("nan")], "cost weights"),
        (0, None, [], "no cost weights"),
    ],
)
def test_bad_predictions_or_weights_raise(
    rb_test: RoutingData,
    quality_rows: int,
    quality_fill: float | None,
    weights: list[float],
    message: str,
) -> None:
    quality = rb_test.scores.copy()
    if quality_rows:
        quality = quality[:quality_rows]
    if quality_fill is not None:
        quality[0, 0] = quality_fill
    with pytest.raises(DataError, match=message):
        sweep_curve(quality, rb_test.costs, rb_test, weights)


def test_curve_point_to_dict_is_json_safe() -> None:
    import json

    p = CurvePoint(math.inf, 1e-4, 0.6, {"a": 1.0, "b": 0.0})
    text = json.dumps(p.to_dict(), allow_nan=False)
    assert json.loads(text)["cost_weight"] == "inf"
