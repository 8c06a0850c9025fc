"""The conformance suite: every registered router obeys the router contract.

Runs on a small real slice of RouterBench (240 training queries, 11 models).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from llm_judge_standin import standin_params

from llmrouter_core import get_router, list_routers, load_router
from llmrouter_core.errors import DataError, NotFittedError, UnknownModelError
from llmrouter_core.routers.registry import get_router_class

ALL = [info.name for info in list_routers()]
ROUTABLE = [info.name for info in list_routers(include_evaluation_only=False)]
WEIGHTS = [math.inf, 3000.0, 300.0, 30.0, 0.0]

_fitted: dict[str, object] = {}

# Routers that call an LLM at fit and route time are judged by a deterministic offline
# stand-in provider here (tests/routers/llm_judge_standin.py); everything else they must obey
# is unchanged. Their defaults (a local or hosted judge) are tested in their own files.
TEST_PARAMS = {"llm": lambda: standin_params("json", n_calibration=24)}


def _make(name: str):  # type: ignore[no-untyped-def]
    params = TEST_PARAMS[name]() if name in TEST_PARAMS else {}
    return get_router(name, **params)


def _fit(name: str, train):  # type: ignore[no-untyped-def]
    if name not in _fitted:
        _fitted[name] = _make(name).fit(train)
    return _fitted[name]


def _queries(name: str, train, test) -> list[str]:  # type: ignore[no-untyped-def]
    # The oracle can only route the queries it was fitted on.
    source = train if get_router_class(name).evaluation_only else test
    return source.queries[:40]


@pytest.mark.parametrize("name", ALL)
def test_not_fitted_error(name: str) -> None:
    router = get_router(name)
    with pytest.raises(NotFittedError, match="not fitted"):
        router.route("What is the capital of France?")
    with pytest.raises(NotFittedError):
        router.predict(["hello"])


@pytest.mark.parametrize("name", ALL)
def test_params_roundtrip(name: str) -> None:
    router = get_router(name)
    params = router.get_params()
    clone = type(router)(**params)
    assert clone.get_params() == params
    with pytest.raises(ValueError, match="invalid parameter"):
        router.set_params(no_such_parameter=1)


@pytest.mark.parametrize("name", ALL)
def test_fit_returns_self_idempotent_and_seeded(name: str, rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    reference = _fit(name, train)  # another instance, fitted once with the same (default) seed
    router = _make(name)
    assert router.fit(train) is router
    queries = _queries(name, train, test)
    q1, c1 = router.predict(queries)
    router.fit(train)  # refitting starts from scratch: same data, same result
    q2, c2 = router.predict(queries)
    np.testing.assert_allclose(q1, q2)
    np.testing.assert_allclose(c1, c2)
    assert q1.shape == (len(queries), train.n_models)
    assert np.all((q1 >= 0) & (q1 <= 1))
    assert np.all(c1 >= 0)
    if get_router_class(name).deterministic:
        np.testing.assert_array_equal(q1, reference.predict(queries)[0])


@pytest.mark.parametrize("name", ALL)
def test_save_load_identical_decisions(name: str, rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = _fit(name, train)
    router.save(tmp_path / "r")
    # Plain files only: JSON and a numpy archive that loads without pickle.
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["arrays.npz", "router.json"]
    with np.load(tmp_path / "r" / "arrays.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    loaded = load_router(tmp_path / "r")
    assert type(loaded) is type(router)
    queries = _queries(name, train, test)
    for w in WEIGHTS:
        before = [d.model for d in router.route_batch(queries, cost_weight=w)]
        after = [d.model for d in loaded.route_batch(queries, cost_weight=w)]
        assert before == after
    assert loaded.sweep(7) == router.sweep(7)


@pytest.mark.parametrize("name", ALL)
def test_decisions_only_from_pool(name: str, rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = _fit(name, train)
    pool = set(train.models)
    queries = _queries(name, train, test)
    for w in WEIGHTS:
        for d in router.route_batch(queries[:10], cost_weight=w):
            assert d.model in pool
            assert d.ranked[0] == d.model
            assert set(d.ranked) == pool and len(d.ranked) == len(pool)
            assert set(d.quality) == pool and set(d.cost) == pool
    allowed = {"gpt-3.5-turbo-1106", "claude-instant-v1"}
    for d in router.route_batch(queries[:10], cost_weight=0.0, allowed=allowed):
        assert d.model in allowed and set(d.ranked) == allowed
    with pytest.raises(UnknownModelError):
        router.route(queries[0], allowed={"no-such-model"})


@pytest.mark.parametrize("name", ALL)
def test_sweep_is_monotone_in_cost(name: str, rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = _fit(name, train)
    weights = router.sweep(9)
    assert len(weights) == 9 and math.isinf(weights[0]) and weights[-1] == 0.0
    assert all(a >= b for a, b in zip(weights, weights[1:]))
    queries = _queries(name, train, test)
    _, cost = router.predict(queries)
    chosen = router.choose_indices(queries, weights)  # (points, queries)
    chosen_cost = np.take_along_axis(cost.T, chosen, axis=0)
    # Per query, a less cost-averse point never picks a cheaper model.
    assert np.all(np.diff(chosen_cost, axis=0) >= -1e-15)
    # Point 0 is the cheapest model for every query.
    np.testing.assert_allclose(chosen_cost[0], cost.min(axis=1))


@pytest.mark.parametrize("name", ROUTABLE)
def test_budget_form_respects_calibration(name: str, rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    router = _fit(name, train)
    cheap = router.cost_weight_for_budget(0.0)
    rich = router.cost_weight_for_budget(1.0)
    assert cheap >= rich
    assert rich == 0.0  # a dollar per query buys the quality-seeking choice
    d = router.route(train.queries[0], budget=1.0)
    assert d.cost_weight == 0.0
    with pytest.raises(ValueError):
        router.route(train.queries[0], budget=-1.0)


@pytest.mark.parametrize("name", ROUTABLE)
def test_bad_queries_get_clear_errors(name: str, rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    router = _fit(name, train)
    with pytest.raises(DataError, match="empty"):
        router.route("   ")
    with pytest.raises(TypeError):
        router.route_batch("a single string")  # type: ignore[arg-type]
    huge = "word " * 200_000
    assert router.route(huge).model in train.models
