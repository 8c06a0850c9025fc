"""Metric definitions checked on real outcomes against independent computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError
from llmrouter_core.evaluation import (
    aiq,
    apgr,
    cost_at_score,
    cost_range,
    cpt,
    hull_value,
    oracle_choice,
    oracle_frontier,
    oracle_gap_closed,
    oracle_point,
    pgr,
    require_complete,
    single_model_points,
    sweep_curve,
    threshold_curve,
    upper_hull,
)


def brute_force_envelope(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Best score reachable at mean cost <= x by mixing at most two points (0 if none).

    Independent of ``upper_hull``: the non-decreasing concave envelope is the best mixture
    of two points whose costs bracket x, or any single point no costlier than x.
    """
    c, s = points[:, 0], points[:, 1]
    best = np.zeros_like(x)
    for i in range(len(points)):
        best = np.where(c[i] <= x, np.maximum(best, s[i]), best)
        for j in range(len(points)):
            if c[i] < c[j]:
                inside = (c[i] <= x) & (x <= c[j])
                t = (x - c[i]) / (c[j] - c[i])
                best = np.where(inside, np.maximum(best, s[i] + t * (s[j] - s[i])), best)
    return best


def numeric_aiq(points: np.ndarray, c_min: float, c_max: float, n: int = 20_001) -> float:
    # A fine grid plus every point's cost and a hair left of it, so the steps and kinks of the
    # envelope fall on grid nodes.
    kinks = points[:, 0]
    eps = (c_max - c_min) * 1e-12
    x = np.unique(np.concatenate((np.linspace(c_min, c_max, n), kinks, kinks - eps)))
    x = x[(x >= c_min) & (x <= c_max)]
    y = brute_force_envelope(points, x)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0) / (c_max - c_min))


def singles_array(data: RoutingData) -> np.ndarray:
    return np.array([tuple(p) for p in single_model_points(data).values()])


@pytest.fixture(params=["rb_test", "dc_test"])
def real(request: pytest.FixtureRequest) -> RoutingData:
    data: RoutingData = request.getfixturevalue(request.param)
    return data


# -- single models and the oracle ------------------------------------------------------------
def test_single_model_points_are_column_means(real: RoutingData) -> None:
    points = single_model_points(real)
    assert list(points) == real.models
    for j, m in enumerate(real.models):
        assert points[m].score == pytest.approx(float(np.mean(real.scores[:, j])))
        assert points[m].cost == pytest.approx(float(np.mean(real.costs[:, j])))
    c_min, c_max = cost_range(real)
    assert c_min == min(p.cost for p in points.values())
    assert c_max == max(p.cost for p in points.values())


def test_oracle_takes_best_model_cheapest_among_ties(real: RoutingData) -> None:
    idx = oracle_choice(real)
    for i in range(real.n_queries):
        row_s, row_c = real.scores[i], real.costs[i]
        best = max(row_s)
        cheapest_best = min(row_c[j] for j in range(real.n_models) if row_s[j] == best)
        assert row_s[idx[i]] == best
        assert row_c[idx[i]] == cheapest_best
    point = oracle_point(real)
    assert point.score == pytest.approx(float(real.scores.max(axis=1).mean()))
    assert point.score >= max(p.score for p in single_model_points(real).values())


def test_incomplete_data_is_rejected_with_a_clear_error(rb_test: RoutingData) -> None:
    scores = rb_test.scores.copy()
    scores[3, 2] = np.nan
    broken = RoutingData(
        query_ids=rb_test.query_ids,
        queries=rb_test.queries,
        models=rb_test.models,
        scores=scores,
        costs=rb_test.costs,
    )
    for fn in (require_complete, single_model_points, oracle_point, oracle_frontier):
        with pytest.raises(DataError, match=r"complete.*1 scores are missing") as info:
            fn(broken)
        assert rb_test.query_ids[3] in str(info.value)
        assert rb_test.models[2] in str(info.value)
    no_costs = RoutingData(
        query_ids=rb_test.query_ids,
        queries=rb_test.queries,
        models=rb_test.models,
        scores=rb_test.scores,
    )
    with pytest.raises(DataError, match="no costs"):
        single_model_points(no_costs)


# -- hull ------------------------------------------------------------------------------------
def test_upper_hull_invariants_on_real_single_models(real: RoutingData) -> None:
    pts = singles_array(real)
    hull = upper_hull(pts)
    costs, scores = hull[:, 0], hull[:, 1]
    assert np.all(np.diff(costs) > 0)
    assert np.all(np.diff(scores) > 0)
    slopes = np.diff(scores) / np.diff(costs)
    assert np.all(np.diff(slopes) < 0)  # strictly concave: no collinear vertex kept
    # Vertices are input points; the first is the cheapest, the last the cheapest best one.
    assert all(any(np.array_equal(v, p) for p in pts) for v in hull)
    assert costs[0] == pts[:, 0].min()
    best = pts[:, 1].max()
    assert scores[-1] == best
    assert costs[-1] == pts[pts[:, 1] == best, 0].min()
    # No point lies above the hull.
    assert np.all(hull_value(hull, pts[:, 0]) >= pts[:, 1] - 1e-12)
    # The envelope computed by brute force agrees everywhere.
    x = np.linspace(pts[:, 0].min(), pts[:, 0].max() * 1.1, 2001)
    np.testing.assert_allclose(hull_value(hull, x), brute_force_envelope(pts, x), atol=1e-12)


def test_upper_hull_accepts_objects_and_rejects_garbage(rb_test: RoutingData) -> None:
    pts = list(single_model_points(rb_test).values())
    np.testing.assert_array_equal(upper_hull(pts), upper_hull(singles_array(rb_test)))
    with pytest.raises(DataError):
        upper_hull([])
    with pytest.raises(DataError):
        upper_hull([(1.0, float("nan"))])


# -- AIQ -------------------------------------------------------------------------------------
def test_aiq_equals_numeric_integration_of_the_envelope(real: RoutingData) -> None:
    pts = singles_array(real)
    c_min, c_max = cost_range(real)
    value = aiq(pts, c_min, c_max)
    assert value == pytest.approx(numeric_aiq(pts, c_min, c_max), abs=1e-6)
    cheapest_score = pts[pts[:, 0] == c_min, 1].max()
    assert cheapest_score <= value <= pts[:, 1].max()


def test_aiq_counts_zero_left_of_the_curve_and_clips_right(real: RoutingData) -> None:
    pts = singles_array(real)
    c_min, c_max = cost_range(real)
    # Drop the cheapest model: the stretch before the next cheapest counts as 0.
    rest = pts[pts[:, 0] > c_min]
    assert aiq(rest, c_min, c_max) == pytest.approx(numeric_aiq(rest, c_min, c_max), abs=1e-6)
    # One point: its score times the share of the range at or right of its cost.
    oracle = oracle_point(real)
    expected = oracle.score * (c_max - max(oracle.cost, c_min)) / (c_max - c_min)
    assert aiq([oracle], c_min, c_max) == pytest.approx(expected)
    # A point beyond c_max only counts through the interpolated hull inside the range.
    far = np.vstack([pts, [3 * c_max, 1.0]])
    assert aiq(far, c_min, c_max) == pytest.approx(numeric_aiq(far, c_min, c_max), abs=1e-6)
    assert aiq(far, c_min, c_max) < 1.0
    with pytest.raises(DataError):
        aiq(pts, c_max, c_min)


def test_aiq_of_a_set_is_at_least_that_of_any_subset(rb_test: RoutingData) -> None:
    pts = singles_array(rb_test)
    c_min, c_max = cost_range(rb_test)
    full = aiq(pts, c_min, c_max)
    for k in range(1, len(pts)):
        for subset in itertools.combinations(range(len(pts)), k):
            sub = aiq(pts[list(subset)], c_min, c_max)
            assert sub <= full + 1e-12
            assert 0.0 <= sub <= 1.0


# -- oracle frontier -------------------------------------------------------------------------
def test_oracle_frontier_is_the_perfect_router_at_every_cost_weight(real: RoutingData) -> None:
    frontier = oracle_frontier(real)
    oracle = oracle_point(real)
    assert tuple(frontier[-1]) == pytest.approx(tuple(oracle))
    assert np.all(np.diff(frontier[:, 0]) > 0) and np.all(np.diff(frontier[:, 1]) > 0)
    slopes = np.diff(frontier[:, 1]) / np.diff(frontier[:, 0])
    # Each inner vertex is what routing on the true outcomes picks for a cost weight between
    # the slopes of its two segments (utility gains per USD).
    # Vertices whose neighbouring slopes differ by more than float noise, so the route step's
    # tie tolerance (1e-9 utility) cannot blur the choice.
    distinct = [k for k in range(1, len(frontier) - 1) if slopes[k - 1] > (1 + 1e-6) * slopes[k]]
    assert len(distinct) >= 0.9 * (len(frontier) - 2)
    picks = distinct
    weights = [math.sqrt(slopes[k - 1] * slopes[k]) for k in picks]
    curve = sweep_curve(real.scores, real.costs, real, weights)
    for k, point in zip(picks, curve, strict=True):
        assert point.mean_cost == pytest.approx(frontier[k, 0], rel=1e-9)
        assert point.mean_score == pytest.approx(frontier[k, 1], rel=1e-9)
    # It dominates the single models and the perfect router at any other cost weight.
    c_min, c_max = cost_range(real)
    others = sweep_curve(real.scores, real.costs, real, np.geomspace(1.0, 1e6, 25))
    assert aiq(frontier, c_min, c_max) >= aiq(singles_array(real), c_min, c_max)
    assert aiq(frontier, c_min, c_max) >= aiq(others, c_min, c_max) - 1e-12
    for p in others:
        # (a relative hair to the right: both means are sums of the same costs, summed apart)
        assert float(hull_value(frontier, p.mean_cost * (1 + 1e-12))) >= p.mean_score - 1e-12


# -- cost at score, oracle gap -----------------------------------------------------------------
def test_cost_at_score_walks_the_hull(real: RoutingData) -> None:
    pts = singles_array(real)
    hull = upper_hull(pts)
    best = pts[:, 1].max()
    assert cost_at_score(pts, best) == pytest.approx(hull[-1, 0])
    assert cost_at_score(pts, best + 1e-6) is None
    assert cost_at_score(pts, 0.0) == hull[0, 0]
    for target in np.linspace(hull[0, 1], best, 7)[1:-1]:
        c = cost_at_score(pts, float(target))
        assert c is not None
        assert float(hull_value(hull, c)) == pytest.approx(target)
        assert float(hull_value(hull, c * (1 - 1e-6))) < target


def test_oracle_gap_closed() -> None:
    assert oracle_gap_closed(0.8, 0.8, 0.9) == 0.0
    assert oracle_gap_closed(0.9, 0.8, 0.9) == 1.0
    assert oracle_gap_closed(0.85, 0.8, 0.9) == pytest.approx(0.5)
    assert oracle_gap_closed(0.7, 0.8, 0.9) < 0
    with pytest.raises(DataError):
        oracle_gap_closed(0.8, 0.9, 0.9)


# -- APGR / CPT on RouteLLM's GSM8K pair -------------------------------------------------------
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def test_apgr_and_cpt_of_a_straight_line_and_of_a_flat_curve(gsm8k: RoutingData) -> None:
    weak = float(gsm8k.scores[:, 0].mean())
    strong = float(gsm8k.scores[:, 1].mean())
    shares = np.linspace(0.0, 1.0, 11)
    line = weak + shares * (strong - weak)
    assert apgr(shares, line, weak_score=weak, strong_score=strong) == pytest.approx(0.5)
    for p in (0.2, 0.5, 0.8):
        assert cpt(p, shares, line, weak_score=weak, strong_score=strong) == pytest.approx(p)
    flat = np.full_like(shares, weak)
    assert apgr(shares, flat, weak_score=weak, strong_score=strong) == pytest.approx(0.0)
    assert cpt(0.5, shares, flat, weak_score=weak, strong_score=strong) is None
    np.testing.assert_allclose(pgr(line, weak, strong), shares)
    with pytest.raises(DataError):
        pgr(0.5, weak, weak)
    with pytest.raises(DataError):
        apgr([0.5], [weak], weak_score=weak, strong_score=strong)


def test_threshold_curve_of_the_perfect_predictor(gsm8k: RoutingData) -> None:
    points = threshold_curve(gsm8k.scores, gsm8k, weak=WEAK, strong=STRONG)
    s_weak, s_strong = gsm8k.scores[:, 0], gsm8k.scores[:, 1]
    n = gsm8k.n_queries
    assert points[0].strong_share == 0.0 and points[-1].strong_share == 1.0
    assert points[0].mean_score == pytest.approx(s_weak.mean())
    assert points[-1].mean_score == pytest.approx(s_strong.mean())
    assert all(p.mean_cost is None for p in points)  # the pair file has no costs
    # Gains are -1, 0, 1: the strong-wins block first, then the ties, then the losses.
    n_sw = int(((s_strong == 1) & (s_weak == 0)).sum())
    n_ws = int(((s_strong == 0) & (s_weak == 1)).sum())
    assert [p.threshold for p in points] == [math.inf, 1.0, 0.0, -1.0]
    assert points[1].strong_share == pytest.approx(n_sw / n)
    assert points[1].mean_score == pytest.approx(s_weak.mean() + n_sw / n)
    shares = [p.strong_share for p in points]
    scores = [p.mean_score for p in points]
    kw = {"weak_score": float(s_weak.mean()), "strong_score": float(s_strong.mean())}
    # PGR grows linearly along the first block: CPT(p) = p x (strong - weak).
    for p in (0.2, 0.5, 0.8):
        assert cpt(p, shares, scores, **kw) == pytest.approx(p * (n_sw - n_ws) / n)
    perfect = apgr(shares, scores, **kw)
    # No predictor recovers more of the gap; a constant one follows the straight line.
    constant = threshold_curve(np.zeros_like(gsm8k.scores), gsm8k, weak=WEAK, strong=STRONG)
    assert [p.strong_share for p in constant] == [0.0, 1.0]
    c_apgr = apgr([p.strong_share for p in constant], [p.mean_score for p in constant], **kw)
    assert c_apgr == pytest.approx(0.5)
    reversed_pred = threshold_curve(-gsm8k.scores, gsm8k, weak=WEAK, strong=STRONG)
    r_apgr = apgr(
        [p.strong_share for p in reversed_pred], [p.mean_score for p in reversed_pred], **kw
    )
    assert r_apgr < 0.5 < perfect
    # Each point is the realized mean of the routed answers.
    rng_gain = np.random.default_rng(0).normal(size=n)
    pred = np.column_stack([np.zeros(n), rng_gain])
    for point in threshold_curve(pred, gsm8k, weak=WEAK, strong=STRONG)[::97]:
        strong_mask = rng_gain >= point.threshold
        assert point.strong_share == pytest.approx(strong_mask.mean())
        assert point.mean_score == pytest.approx(np.where(strong_mask, s_strong, s_weak).mean())
