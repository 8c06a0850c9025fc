"""Model selection's curve: the operating points that cross-validated AIQ is computed from."""

from __future__ import annotations

import numpy as np

from llmrouter_core.evaluation.metrics import aiq, cost_at_score, single_model_points
from llmrouter_core.training.selection import cv_aiq, kfold, route_points, select_blend


def test_route_points_sweep_from_cheapest_to_best(rb_small) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    y, c = test.scores, test.costs
    points = route_points(y, c, y, c)  # the oracle: knows every outcome and cost
    costs = [p[0] for p in points]
    assert costs == sorted(costs)  # a smaller cost weight never picks a cheaper model
    assert points[-1][1] == y.max(axis=1).mean()  # weight 0: the best model of every query
    assert points[0][0] == c.min(axis=1).mean()  # weight inf: the cheapest of every query
    mean_costs = c.mean(axis=0)
    assert cv_aiq(y, c, y, c) == aiq(points, mean_costs.min(), mean_costs.max())


def test_model_means_reach_the_best_model_only_at_its_cost(rb_small) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    y, c = test.scores, test.costs
    means = np.broadcast_to(y.mean(axis=0), y.shape)
    best, (best_cost, best_score) = max(
        single_model_points(test).items(), key=lambda kv: kv[1].score
    )
    reached = cost_at_score(route_points(means, c, y, c), best_score)
    assert reached is not None and reached > 0.9 * best_cost  # no free lunch without a signal
    assert cv_aiq(means, c, y, c) < cv_aiq(y, c, y, c)
    assert best in test.models


def test_kfold_partitions_the_rows() -> None:
    folds = list(kfold(10, 3, random_state=0))
    assert len(folds) == 3
    vals = np.concatenate([val for _, val in folds])
    np.testing.assert_array_equal(np.sort(vals), np.arange(10))
    for train, val in folds:
        assert not set(train) & set(val)
        assert len(train) + len(val) == 10
    again = list(kfold(10, 3, random_state=0))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_select_blend_falls_back_to_the_prior_without_a_signal(rb_small) -> None:  # type: ignore[no-untyped-def]
    """Noise predictions lose to the per-model prior; the oracle's predictions win at blend 1;
    the report has a row per (candidate, blend)."""
    _, test = rb_small
    y, c = test.scores, test.costs
    prior = np.broadcast_to(y.mean(axis=0), y.shape)
    noise = np.random.default_rng(0).random(y.shape)
    blends = (1.0, 0.5, 0.0)
    params, blend, score, report = select_blend(
        [{"which": "noise"}, {"which": "oracle"}], [noise, y], prior, blends, c, y, c
    )
    assert params == {"which": "oracle"} and blend == 1.0
    assert score == cv_aiq(y, c, y, c)
    assert len(report) == 6
    params, blend, _, _ = select_blend([{"which": "noise"}], [noise], prior, blends, c, y, c)
    assert blend < 1.0
