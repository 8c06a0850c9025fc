"""Budgets: reservation semantics, per-user limits, per-request caps, and the guarantee that a
shared budget is never exceeded, also by 200 concurrent async requests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from exec_helpers import mocked_pool, probe_pool, register_probe

from llmrouter_core.execution import (
    Budget,
    BudgetExceededError,
    BudgetManager,
    ExecutionResult,
    Executor,
)


def make(router: Any, pool: Any, **kwargs: Any) -> Executor:
    return Executor(router, pool=pool, keys="", backoff=0.001, max_backoff=0.002, **kwargs)


def test_reserve_settle_release() -> None:
    b = Budget(1.0)
    r1 = b.reserve(0.6)
    assert b.try_reserve(0.5) is None  # 0.6 held + 0.5 > 1.0
    r2 = b.reserve(0.4)
    assert b.remaining == pytest.approx(0.0)
    b.settle(r1, 0.1)  # the call cost less than its bound: the rest is freed
    assert b.spent == pytest.approx(0.1) and b.remaining == pytest.approx(0.5)
    b.release(r2)  # a failed call costs nothing
    assert b.remaining == pytest.approx(0.9) and b.calls == 1
    with pytest.raises(ValueError, match="already settled"):
        b.settle(r1, 0.1)
    with pytest.raises(BudgetExceededError, match="does not fit"):
        b.reserve(0.95)
    with pytest.raises(ValueError):
        Budget(-1)


def test_threads_never_overspend() -> None:
    b = Budget(1.0)
    admitted: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(200):
            r = b.try_reserve(0.003)
            if r is not None:
                b.settle(r, 0.003)
                with lock:
                    admitted.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.spent <= 1.0 + 1e-12
    assert len(admitted) == int(1.0 // 0.003) == b.calls
    assert b.reserved == 0


def test_budget_manager_keeps_one_budget_per_user() -> None:
    m = BudgetManager(default_limit=0.5, limits={"alice": 2.0})
    assert m.get("alice") is m.get("alice")
    assert m.get("alice").limit == 2.0 and m.get("bob").limit == 0.5  # type: ignore[union-attr]
    assert BudgetManager().get("anyone") is None


def _one_call_cost(router: Any, pool: Any, query: str, model: str) -> float:
    return make(router, pool).complete(query, model=model, max_tokens=20).cost


async def test_200_concurrent_requests_never_exceed_the_budget(
    cheap_router: Any, arc: Any, arc_test: Any
) -> None:
    pool = mocked_pool(cheap_router, arc)
    queries = [str(q) for q in arc_test.queries[:200]]
    probe = make(cheap_router, pool)
    bounds = [probe.cost_bound(q, cheap_router.route(q).model, max_tokens=20) for q in queries]
    assert all(b is not None and b > 0 for b in bounds)
    limit = 40 * max(b for b in bounds if b is not None)  # room for at least 40 calls at once
    budget = Budget(limit)
    ex = make(cheap_router, pool, budget=budget)
    in_flight: list[float] = []

    async def one(q: str) -> ExecutionResult | BudgetExceededError:
        try:
            # The delay keeps every admitted call in flight while the others are planned.
            return await ex.acomplete(q, max_tokens=20, mock_delay=0.02)
        except BudgetExceededError as exc:
            return exc

    async def watch(work: asyncio.Future[Any]) -> None:
        while not work.done():
            in_flight.append(budget.reserved)
            await asyncio.sleep(0.001)

    work = asyncio.gather(*(one(q) for q in queries))
    await watch(work)
    outcomes = await work
    done = [o for o in outcomes if isinstance(o, ExecutionResult)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert len(done) + len(refused) == 200  # no other error
    # The 200 calls' actual costs fit the limit, though their bounds do not all fit at once:
    # requests wait for calls in flight to settle instead of being refused.
    assert sum(r.cost for r in done) <= limit and not refused
    assert max(in_flight) >= 40 * min(b for b in bounds if b is not None)  # truly concurrent
    assert budget.spent <= limit + 1e-12
    assert budget.spent == pytest.approx(sum(r.cost for r in done))
    assert budget.reserved == 0  # every hold was settled or released


def test_sync_threads_share_a_budget(cheap_router: Any, arc: Any, arc_test: Any) -> None:
    pool = mocked_pool(cheap_router, arc)
    queries = [str(q) for q in arc_test.queries[:64]]
    bound = make(cheap_router, pool).cost_bound(
        queries[0], cheap_router.route(queries[0]).model, max_tokens=20
    )
    assert bound is not None
    # Room for one call's bound plus what half a bound of actual spend allows.
    budget = Budget(1.5 * bound)
    ex = make(cheap_router, pool, budget=budget)
    costs: list[float] = []
    refused: list[int] = []
    lock = threading.Lock()

    def work(chunk: list[str]) -> None:
        for q in chunk:
            try:
                res = ex.complete(q, max_tokens=20, mock_delay=0.002)
                with lock:
                    costs.append(res.cost)
            except BudgetExceededError:
                with lock:
                    refused.append(1)

    threads = [threading.Thread(target=work, args=(queries[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(costs) + len(refused) == len(queries)
    assert refused and costs
    assert budget.spent <= budget.limit + 1e-12
    assert budget.spent == pytest.approx(sum(costs))


def test_per_user_budgets(cheap_router: Any, arc: Any, arc_test: Any) -> None:
    pool = mocked_pool(cheap_router, arc)
    q = str(arc_test.queries[0])
    unit = _one_call_cost(cheap_router, pool, q, cheap_router.route(q).model)
    ex = make(cheap_router, pool)
    bound = ex.cost_bound(q, cheap_router.route(q).model, max_tokens=20)
    assert bound is not None and bound >= unit
    alice_limit = bound + unit / 2
    manager = BudgetManager(limits={"alice": alice_limit, "bob": bound * 10})
    ex = make(cheap_router, pool, budget=manager)
    ex.complete(q, user="alice", max_tokens=20)
    with pytest.raises(BudgetExceededError):
        # alice has spent `unit`: another bound no longer fits next to it
        ex.complete(q, user="alice", max_tokens=20)
    for _ in range(3):
        ex.complete(q, user="bob", max_tokens=20)  # bob is unaffected
    assert manager.spent()["alice"] == pytest.approx(unit)
    assert manager.spent()["bob"] == pytest.approx(3 * unit)
    assert manager.get("carol") is None
    ex.complete(q, user="carol", max_tokens=20)  # no limit for users without one


def test_max_cost_leaves_out_models_whose_bound_exceeds_it(
    knn_router: Any, arc: Any, arc_test: Any
) -> None:
    pool = mocked_pool(knn_router, arc)
    ex = make(knn_router, pool)
    q = str(arc_test.queries[5])
    bounds = {m: ex.cost_bound(q, m, max_tokens=64) for m in knn_router.models_}
    assert all(b is not None and b > 0 for b in bounds.values())
    cap = sorted(bounds.values())[len(bounds) // 2]  # about half the models fit
    result = ex.complete(q, max_cost=cap, max_tokens=64)
    fits = {m for m, b in bounds.items() if b is not None and b <= cap}
    assert result.model in fits
    assert set(result.excluded) == set(bounds) - fits
    assert all("max_cost" in why for why in result.excluded.values())
    assert result.cost <= cap
    with pytest.raises(BudgetExceededError, match="spend limits"):
        ex.complete(q, max_cost=min(b for b in bounds.values() if b) / 2, max_tokens=64)


def test_exhausted_budget_refuses_before_calling(
    cheap_router: Any, arc: Any, arc_test: Any
) -> None:
    budget = Budget(0.0)
    ex = make(cheap_router, mocked_pool(cheap_router, arc), budget=budget)
    with pytest.raises(BudgetExceededError) as info:
        ex.complete(str(arc_test.queries[0]))
    assert "left of the budget" in str(info.value)
    assert budget.spent == 0 and budget.calls == 0


def test_calls_under_a_budget_get_a_max_tokens_bound(
    cheap_router: Any, arc: Any, arc_test: Any, litellm: Any
) -> None:
    calls = register_probe(litellm, "probebudget")
    pool = probe_pool(cheap_router, "probebudget", input_price=1.0, output_price=2.0)
    q = str(arc_test.queries[0])
    make(cheap_router, pool, budget=1.0, limit_max_tokens=77).complete(q)
    make(cheap_router, pool, budget=1.0).complete(q, max_tokens=12)
    make(cheap_router, pool).complete(q)  # no limit: no bound is imposed
    assert [c["params"].get("max_tokens") for c in calls] == [77, 12, None]
    ex = make(cheap_router, pool, limit_max_tokens=77)
    m = cheap_router.route(q).model
    assert ex.cost_bound(q, m) == pytest.approx(ex.cost_bound(q, m, max_tokens=77))
    expected = (1.0 * (-(-len(q) // 2) + 4) + 2.0 * 77) / 1e6
    assert ex.cost_bound(q, m) == pytest.approx(expected)


def test_abandoned_streams_and_cancelled_calls_are_accounted(
    cheap_router: Any, arc: Any, arc_test: Any
) -> None:
    # The provider may bill a call whose answer was not read to the end: a budget charges
    # what was delivered (estimated), and a call cancelled midway at its reserved bound.
    pool = mocked_pool(cheap_router, arc)
    q = str(arc_test.queries[0])
    budget = Budget(1.0)
    ex = make(cheap_router, pool, budget=budget)
    stream = ex.stream(q, max_tokens=20, mock_response="a long answer " * 20)
    first = next(stream)
    assert first.text  # type: ignore[union-attr]
    stream.close()
    assert budget.reserved == 0 and budget.calls == 1
    assert 0 < budget.spent <= ex.cost_bound(q, cheap_router.route(q).model, max_tokens=20)

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(ex.acomplete(q, max_tokens=20, mock_delay=5.0))
        while budget.reserved == 0:
            await asyncio.sleep(0.001)
        held = budget.reserved
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert budget.reserved == 0
        assert budget.spent == pytest.approx(spent_before + held)

    spent_before = budget.spent
    asyncio.run(cancel_midway())
