"""The router conformance suite: every router obeys the router contract.

:func:`check_router` runs every check on an *unfitted* router (as scikit-learn's
``check_estimator``), fitting copies of it on small data: the synthetic
:func:`~llmrouter_core.testing.make_routing_data` by default, or data of yours. A check that
fails raises ``AssertionError`` naming the check and what it saw. For a test per check, use
:func:`router_checks` with ``pytest.mark.parametrize``.

A plugin author's scorer gets every policy for free; the suite proves it::

    from llmrouter_core import make_router
    from llmrouter_core.testing import check_router

    check_router(make_router(MyScorer()))

Checks that need what the router's scorer lacks (an extra, task labels) are skipped with a
reason (:class:`CheckSkipped`), so a core-only install runs green.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
from sklearn.base import clone

from llmrouter_core.data.core import RoutingData
from llmrouter_core.decision import CascadePlan
from llmrouter_core.errors import DataError, MissingExtraError, NotFittedError, UnknownModelError
from llmrouter_core.policy import (
    CascadePolicy,
    FanOutPolicy,
    ThresholdPolicy,
    UtilityPolicy,
    choose,
)
from llmrouter_core.router import Router
from llmrouter_core.testing.data import make_routing_data

__all__ = ["CheckSkipped", "check_router", "router_checks"]

WEIGHTS = (math.inf, 3000.0, 300.0, 30.0, 0.0)

Check = Callable[["_Fixture"], None]


class CheckSkipped(Exception):
    """A check does not apply to this router (the reason is the message)."""


class _Fixture:
    """The router under test, its data, and one fitted copy shared by the checks."""

    def __init__(self, router: Router, train: RoutingData, test: RoutingData) -> None:
        self.router = router
        self.train = train
        self.test = test
        self._fitted: Router | None = None

    def fresh(self) -> Router:
        """An unfitted copy with the same parameters (and registry name)."""
        new: Router = clone(self.router)
        new.name, new.family = self.router.name, self.router.family
        return new

    def fitted(self) -> Router:
        if self._fitted is None:
            try:
                self._fitted = self.fresh().fit(self.train)
            except MissingExtraError as exc:
                raise CheckSkipped(str(exc)) from exc
        return self._fitted

    def queries(self, n: int = 40) -> list[str]:
        if self.router.tags.evaluation_only:  # it can only route what it was fitted on
            return self.train.queries[:n]
        return self.test.queries[:n]


def check_not_fitted(fx: _Fixture) -> None:
    """Routing or predicting before ``fit`` raises ``NotFittedError``."""
    router = fx.fresh()
    for call in (lambda: router.route("What is 2 + 2?"), lambda: router.predict(["hello"])):
        try:
            call()
        except NotFittedError:
            continue
        raise AssertionError("an unfitted router must raise NotFittedError")


def check_params(fx: _Fixture) -> None:
    """``get_params`` round-trips through the constructor; unknown parameters are refused."""
    router = fx.router
    params = router.get_params(deep=False)
    copy = type(router)(**params)
    assert copy.get_params(deep=False).keys() == params.keys()
    try:
        router.set_params(no_such_parameter=1)
    except ValueError:
        return
    raise AssertionError("set_params must refuse an unknown parameter")


def check_fit(fx: _Fixture) -> None:
    """``fit`` returns self; predictions have one column per model, quality in [0, 1], costs
    >= 0; refitting gives the same predictions (deterministic scorers)."""
    router = fx.fresh()
    try:
        assert router.fit(fx.train) is router, "fit must return self"
    except MissingExtraError as exc:
        raise CheckSkipped(str(exc)) from exc
    queries = fx.queries()
    q1, c1 = router.predict(queries)
    assert q1.shape == c1.shape == (len(queries), fx.train.n_models), "one column per model"
    assert np.all((q1 >= 0) & (q1 <= 1)), "predicted quality must lie in [0, 1]"
    assert np.all(c1 >= 0), "predicted costs must be >= 0"
    if router.tags.deterministic:
        q2, c2 = router.fit(fx.train).predict(queries)
        np.testing.assert_allclose(q1, q2, err_msg="refitting changed the predictions")
        np.testing.assert_allclose(c1, c2)
        np.testing.assert_allclose(q1, fx.fitted().predict(queries)[0], atol=1e-12)


def check_decisions(fx: _Fixture) -> None:
    """Decisions name pool models only and rank every eligible one; ``allowed`` and
    ``max_cost`` restrict the choice; an unknown allowed model is an error."""
    router = fx.fitted()
    pool = set(router.models_)
    queries = fx.queries(10)
    for w in WEIGHTS:
        for d in router.route_batch(queries, cost_weight=w):
            assert d.model in pool and d.ranked[0] == d.model
            assert set(d.ranked) == pool and len(d.ranked) == len(pool)
            assert set(d.quality) == pool and set(d.cost) == pool
    allowed = set(router.models_[:2])
    for d in router.route_batch(queries, cost_weight=0.0, allowed=allowed):
        assert d.model in allowed and set(d.ranked) == allowed
    cheapest = min(d.cost[d.model] for d in router.route_batch(queries, cost_weight=math.inf))
    for d in router.route_batch(queries, cost_weight=0.0, max_cost=cheapest):
        fits = [m for m in d.ranked if d.cost[m] <= cheapest]
        assert d.model in fits or len(d.ranked) == 1
    try:
        router.route(queries[0], allowed={"no-such-model"})
    except UnknownModelError:
        return
    raise AssertionError("an unknown model in 'allowed' must raise UnknownModelError")


def check_route_batch(fx: _Fixture) -> None:
    """Routing one query equals routing it in a batch."""
    router = fx.fitted()
    queries = fx.queries(8)
    batch = router.route_batch(queries, cost_weight=300.0)
    for q, d in zip(queries, batch, strict=True):
        one = router.route(q, cost_weight=300.0)
        assert one.model == d.model and one.ranked == d.ranked


def check_sweep(fx: _Fixture) -> None:
    """The sweep runs from the cheapest choice to the most quality-seeking; per query, a less
    cost-averse point never picks a cheaper model."""
    router = fx.fitted()
    weights = router.sweep(9)
    assert len(weights) == 9 and math.isinf(weights[0]) and weights[-1] == 0.0
    assert all(a >= b for a, b in zip(weights, weights[1:], strict=False))
    queries = fx.queries()
    _, cost = router.predict(queries)
    chosen = router.choose_indices(queries, weights)
    chosen_cost = np.take_along_axis(cost.T, chosen, axis=0)
    assert np.all(np.diff(chosen_cost, axis=0) >= -1e-15), "cost fell along the sweep"
    np.testing.assert_allclose(chosen_cost[0], cost.min(axis=1))


def check_budget(fx: _Fixture) -> None:
    """A budget resolves to a cost weight: none buys the cheapest, a dollar buys quality; a
    negative budget is refused."""
    router = fx.fitted()
    assert router.cost_weight_for_budget(0.0) >= router.cost_weight_for_budget(1.0) == 0.0
    assert router.route(fx.queries(1)[0], budget=1.0).cost_weight == 0.0
    try:
        router.route(fx.queries(1)[0], budget=-1.0)
    except ValueError:
        return
    raise AssertionError("a negative budget must raise ValueError")


def check_bad_queries(fx: _Fixture) -> None:
    """An empty query is one clear error, a lone string is not a batch, a huge query routes."""
    if fx.router.tags.evaluation_only:
        raise CheckSkipped("routes only the queries it was fitted on")
    router = fx.fitted()
    for bad, error in (("   ", DataError), ("a single string", TypeError)):
        try:
            router.route_batch(bad) if error is TypeError else router.route(bad)  # type: ignore[arg-type]
        except error:
            continue
        raise AssertionError(f"{bad!r} must raise {error.__name__}")
    assert router.route("word " * 200_000).model in router.models_


def check_policies(fx: _Fixture) -> None:
    """Every policy works with this router: the knob, a cascade plan, a fan-out plan, and the
    two-model threshold."""
    router = fx.fitted()
    query = fx.queries(1)[0]
    d = router.route(query, policy=UtilityPolicy(0.0))
    q, c = router.predict([query])
    assert d.model == router.models_[int(choose(q, c, 0.0)[0])]
    # A given policy overrides the router's own, a trained one (FrugalGPT's, ...) included.
    assert d.plan is None
    fan = router.route(query, policy=FanOutPolicy(k=2))
    assert fan.plan is not None and fan.plan.models == fan.ranked[:2]
    cascade = router.route(query, policy=CascadePolicy(max_stages=3))
    plan = cascade.plan
    assert isinstance(plan, CascadePlan) and plan.models[0] == cascade.model
    assert plan.stages[-1].threshold is None and len(plan.stages) <= 3
    assert all(s.threshold is not None for s in plan.stages[:-1])
    costs = [cascade.cost[m] for m in plan.models]
    assert costs == sorted(costs), "a cascade calls cheaper models first"
    two = fx.fresh().fit(fx.train.select_models(fx.train.models[:2]))
    # Quality gains lie in [-1, 1]: a threshold of -2 always takes the costlier model, 2
    # never does. (A trained policy has no threshold form of its own: give the policy.)
    if getattr(two, "policy_", None) is None:
        low, high = two.route(query, threshold=-2.0), two.route(query, threshold=2.0)
    else:
        low = two.route(query, policy=ThresholdPolicy(-2.0))
        high = two.route(query, policy=ThresholdPolicy(2.0))
    strong = max(two.models_, key=lambda m: low.cost[m])
    assert low.model == strong and high.model != strong


def check_tied_models(fx: _Fixture) -> None:
    """Two models with identical scores and costs on every training query get identical
    predictions: scorers learn from scores, ties included."""
    if not fx.router.tags.symmetric_ties:
        raise CheckSkipped("the scorer does not treat tied models symmetrically (its tags)")
    train = fx.train
    j = 0
    responses = train.responses
    data = RoutingData(
        query_ids=train.query_ids,
        queries=train.queries,
        models=[*train.models, "exact-copy"],
        scores=np.hstack([train.scores, train.scores[:, [j]]]),
        costs=np.hstack([train.require_costs(), train.require_costs()[:, [j]]]),
        tasks=train.tasks,
        responses=None if responses is None else np.hstack([responses, responses[:, [j]]]),
    )
    router = fx.fresh().fit(data)
    q, c = router.predict(fx.queries() if not router.tags.evaluation_only else data.queries[:40])
    np.testing.assert_allclose(q[:, j], q[:, -1], atol=1e-5, err_msg="tied models differ")
    np.testing.assert_allclose(c[:, j], c[:, -1], rtol=1e-9)


def check_save_load(fx: _Fixture) -> None:
    """A saved router is plain files (JSON and a numpy archive without pickles) that load
    back to the same decisions and sweep."""
    router = fx.fitted()
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "router"
        router.save(path)
        assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "router.json"]
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)
        from llmrouter_core.persistence import load_router

        loaded = load_router(path, trusted_types=_untrusted(path))
    queries = fx.queries()
    for w in WEIGHTS:
        before = [d.model for d in router.route_batch(queries, cost_weight=w)]
        after = [d.model for d in loaded.route_batch(queries, cost_weight=w)]
        assert before == after, f"decisions changed after save/load at cost weight {w}"
    assert loaded.sweep(7) == router.sweep(7)


def check_thread_safety(fx: _Fixture) -> None:
    """Routing from several threads at once gives the decisions of routing one at a time."""
    router = fx.fitted()
    queries = fx.queries(12)
    expected = [d.model for d in router.route_batch(queries, cost_weight=300.0)]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append([router.route(q, cost_weight=300.0).model for q in queries])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"routing from threads failed: {errors[0]!r}"
    assert all(r == expected for r in results), "threads saw different decisions"


def check_feedback(fx: _Fixture) -> None:
    """An online router learns from feedback: a model rated 1 on a query is predicted at
    least as good there afterwards; a router that does not learn online says so. A router
    that takes per-user feedback (``supports_feedback``) keeps one user's feedback from
    changing another's routing."""
    router = fx.fresh().fit(fx.train)
    query = fx.queries(1)[0]
    model = router.models_[0]
    if getattr(router, "supports_feedback", False):
        personal: Any = router  # feedback(user, query, model, rating=...)
        anyone = router.route(query)
        for _ in range(5):
            personal.feedback("conformance-user", query, model, rating=1.0)
        assert router.route(query, user="another-user") == anyone, (
            "one user's feedback changed another user's routing"
        )
        assert router.route(query, user="conformance-user").model in router.models_
        try:
            personal.feedback("conformance-user", query, "no-such-model", rating=1.0)
        except UnknownModelError:
            return
        raise AssertionError("feedback for an unknown model must raise UnknownModelError")
    if not router.tags.online:
        try:
            router.feedback(query, model, 1.0)
        except NotImplementedError:
            return
        raise AssertionError("feedback on a router that does not learn online must raise")
    before = router.predict([query])[0][0, 0]
    for _ in range(5):
        router.feedback(query, model, 1.0)
    assert router.predict([query])[0][0, 0] >= before - 1e-12
    try:
        router.feedback(query, "no-such-model", 1.0)
    except UnknownModelError:
        return
    raise AssertionError("feedback for an unknown model must raise UnknownModelError")


CHECKS: tuple[Check, ...] = (
    check_not_fitted,
    check_params,
    check_fit,
    check_decisions,
    check_route_batch,
    check_sweep,
    check_budget,
    check_bad_queries,
    check_policies,
    check_tied_models,
    check_save_load,
    check_thread_safety,
    check_feedback,
)


def router_checks(
    router: Router, data: RoutingData | None = None, test: RoutingData | None = None
) -> list[tuple[str, Callable[[], None]]]:
    """``(name, run)`` for every check of ``router`` (for ``pytest.mark.parametrize``); the
    checks share one fitted copy."""
    train = data if data is not None else make_routing_data(240, random_state=0)
    test = test if test is not None else make_routing_data(60, random_state=1)
    fx = _Fixture(router, train, test)
    return [(check.__name__, _bind(check, fx)) for check in CHECKS]


def check_router(
    router: Router, data: RoutingData | None = None, test: RoutingData | None = None
) -> list[str]:
    """Run every check on ``router`` (unfitted); returns the skipped checks with reasons.

    Args:
        router: An unfitted router (``get_router(...)`` or ``make_router(...)``).
        data: Training data of the checks (default: synthetic, 240 queries x 5 models).
        test: Queries to route (default: 60 other synthetic queries).

    Raises:
        AssertionError: A check failed (its message names it).
    """
    skipped = []
    for name, run in router_checks(router, data, test):
        try:
            run()
        except CheckSkipped as exc:
            skipped.append(f"{name}: {exc}")
        except AssertionError as exc:
            raise AssertionError(f"{name} failed for {router!r}: {exc}") from exc
    return skipped


def _bind(check: Check, fx: _Fixture) -> Callable[[], None]:
    def run() -> None:
        check(fx)

    run.__doc__ = check.__doc__
    return run


def _untrusted(path: Path) -> list[str]:
    """The skops types a saved estimator of the router's own making uses (the check trusts
    what it saved itself)."""
    import json

    doc = json.loads((path / "router.json").read_text(encoding="utf-8"))
    state: Any = doc.get("state", {}).get("scorer", {})
    return list(state.get("untrusted_types", [])) if isinstance(state, dict) else []
