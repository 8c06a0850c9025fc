"""Execution overhead: route + execute through the Executor vs calling LiteLLM directly.

Both sides call the same LiteLLM mock model (``mock_response``: LiteLLM's full request path,
no network), on real RouterBench prompts, so the difference is what the execution layer adds:
routing, eligibility checks, the budget reservation, key selection, cost and the result.

1. Latency: p50 / p90 per call over ``--calls`` sequential calls, interleaved with direct
   calls in random order so that machine noise hits both alike. Reported with the constant
   "single" baseline (whose routing costs almost nothing), the default router (``auto``) and
   a trained kNN router (the slowest to route), plus the routing time alone.
2. The layer alone: the same calls with LiteLLM's ``completion`` replaced by a prebuilt
   response, which isolates routing plus the layer's own work from LiteLLM's timing noise.
3. Throughput: ``--concurrency`` concurrent async requests (default 200) under a shared
   budget, vs the same number of direct ``litellm.acompletion`` calls; requests per second,
   errors, and whether the budget was exceeded. ``--rounds`` paired rounds in one event
   loop, alternating which side goes first; LiteLLM's background logging tasks are drained
   between rounds, outside the timed region. Every round sends the same prompts, so the
   embedder's per-process caches are also put back between rounds to what they held right
   after training: a process that has routed the training distribution, meeting the test
   questions for the first time (their new lines are scanned, their unseen n-grams hashed).
   ``--cold-caches`` empties the caches instead (a process that has routed nothing yet).
   The ratio is the median of the per-round ratios.

Targets: overhead <= 1 ms per call at p50; throughput within 10% of direct LiteLLM.

Usage:
    python benchmarks/bench_execution.py [--calls 300] [--rounds 15] [--concurrency 200]
        [--cold-caches]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO.parent / "shared" / "data"))
MOCK_MODEL = "openai/gpt-4o-mini"
# What the embedder's caches are put back to between throughput rounds (None: emptied).
_ROUND_CACHES: Any = None


def arc_challenge() -> tuple[Any, list[str]]:
    """RouterBench's arc_challenge task: the training data and the test prompts (about 2,000
    characters each, with few-shot examples)."""
    from llmrouter_core.data import load_routerbench

    bench = DATA_DIR / "routerbench"
    data = load_routerbench(
        [bench / "arc_challenge_train.csv", bench / "arc_challenge_test.csv"], on_defect="drop"
    )
    return data.split("train"), [str(q) for q in data.split("test").queries]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def build(router_name: str, train: Any) -> tuple[Any, Any]:
    import llmrouter_core as lr
    from llmrouter_core.pool import Pool

    params = {"n_neighbors": 15} if router_name == "knn" else {}
    router = lr.get_router(router_name, **params).fit(train)
    # Every model is called as the same mocked LiteLLM model, so both sides do equal work.
    pool = Pool(
        replace(s, litellm_model=MOCK_MODEL, input_price=0.15, output_price=0.6)
        for s in router.pool_
    )
    return router, pool


def latency(router: Any, pool: Any, queries: list[str], calls: int) -> dict[str, float]:
    import litellm

    from llmrouter_core.execution import Executor

    ex = Executor(router, pool=pool, keys="", litellm_kwargs={"mock_response": "ok"})
    direct: list[float] = []
    routed: list[float] = []
    route_only: list[float] = []
    for warm in queries[:10]:  # first calls build LiteLLM's caches on both sides
        litellm.completion(
            model=MOCK_MODEL, messages=[{"role": "user", "content": warm}], mock_response="ok"
        )
        ex.complete(warm)
    rng = random.Random(0)
    for k in range(calls):
        q = queries[k % len(queries)]
        msgs = [{"role": "user", "content": q}]
        # Random order and a pause between calls: LiteLLM finishes logging a call in a
        # background thread, which would otherwise slow whichever call comes next.
        for side in rng.sample(("direct", "executor"), 2):
            time.sleep(0.003)
            t0 = time.perf_counter()
            if side == "direct":
                litellm.completion(
                    model=MOCK_MODEL, messages=msgs, mock_response="ok", timeout=60.0
                )
                direct.append(time.perf_counter() - t0)
            else:
                ex.complete(msgs)
                routed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        router.route(q)
        route_only.append(time.perf_counter() - t0)
    overhead = [r - d for r, d in zip(routed, direct, strict=True)]
    return {
        "direct_p50_ms": 1e3 * _pct(direct, 0.5),
        "executor_p50_ms": 1e3 * _pct(routed, 0.5),
        "overhead_p50_ms": 1e3 * (_pct(routed, 0.5) - _pct(direct, 0.5)),
        "overhead_paired_p50_ms": 1e3 * statistics.median(overhead),
        "overhead_p90_ms": 1e3 * (_pct(routed, 0.9) - _pct(direct, 0.9)),
        "route_p50_ms": 1e3 * _pct(route_only, 0.5),
    }


def layer_alone(router: Any, pool: Any, queries: list[str], calls: int) -> dict[str, float]:
    """Per-call time of the execution layer itself: LiteLLM's ``completion`` is swapped for a
    function returning a prebuilt response, so only routing and the layer's own work remain
    (with a shared budget, the most work the layer does per call)."""
    import litellm

    from llmrouter_core.execution import Budget, Executor

    prebuilt = litellm.completion(
        model=MOCK_MODEL, messages=[{"role": "user", "content": "hi"}], mock_response="ok"
    )
    real = litellm.completion
    litellm.completion = lambda **_: prebuilt
    try:
        ex = Executor(router, pool=pool, keys="", budget=Budget(1e9))
        for q in queries[:20]:
            ex.complete(q)
        total, routing = [], []
        for k in range(calls):
            q = queries[k % len(queries)]
            t0 = time.perf_counter()
            ex.complete(q)
            t1 = time.perf_counter()
            router.route(q)
            t2 = time.perf_counter()
            total.append(t1 - t0)
            routing.append(t2 - t1)
    finally:
        litellm.completion = real
    return {
        "layer_with_routing_p50_ms": 1e3 * _pct(total, 0.5),
        "routing_p50_ms": 1e3 * _pct(routing, 0.5),
        "layer_without_routing_p50_ms": 1e3 * (_pct(total, 0.5) - _pct(routing, 0.5)),
    }


def _litellm_backlog() -> int:
    """LiteLLM's queued or running background work: success handlers in its logging thread
    pool and coroutines in its async logging worker (0 when idle or unknown)."""
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
        from litellm.litellm_core_utils.thread_pool_executor import executor
    except ImportError:  # another LiteLLM layout: nothing to wait for
        return 0
    pending = GLOBAL_LOGGING_WORKER.pending_count
    busy = pending() if callable(pending) else int(pending)
    slots = getattr(executor, "_pending_slots", None)
    cap = getattr(executor, "_max_pending_tasks", None)
    if slots is not None and cap is not None:
        busy += cap - slots._value
    return int(busy)


async def _drain() -> None:
    """Wait (outside any timed region) until LiteLLM's background work of a round is done.

    After a call returns, LiteLLM runs success logging and cost bookkeeping in a thread pool
    and an async worker; left running, that work would compete (for the GIL) with whichever
    round is timed next and bias the comparison.
    """
    for _ in range(1000):
        if _litellm_backlog() == 0:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)
    gc.collect()  # both sides start their round from a collected heap
    # Every round sends the same prompts: put the n-gram and line caches back, so a round
    # profits only from what the process knew before the test prompts (see the docstring).
    from llmrouter_core.features.hashing import clear_caches, restore_caches

    if _ROUND_CACHES is None:
        clear_caches()
    else:
        restore_caches(_ROUND_CACHES)


async def _direct_round(queries: list[str]) -> tuple[float, int]:
    import litellm

    async def one(q: str) -> bool:
        try:
            await litellm.acompletion(
                model=MOCK_MODEL,
                messages=[{"role": "user", "content": q}],
                mock_response="ok",
                timeout=60.0,
            )
            return True
        except Exception:  # counted, not raised
            return False

    t0 = time.perf_counter()
    ok = await asyncio.gather(*(one(q) for q in queries))
    elapsed = time.perf_counter() - t0
    await _drain()
    return elapsed, len(queries) - sum(ok)


async def _executor_round(ex: Any, queries: list[str]) -> tuple[float, int]:
    async def one(q: str) -> bool:
        try:
            await ex.acomplete(q)
            return True
        except Exception:
            return False

    t0 = time.perf_counter()
    ok = await asyncio.gather(*(one(q) for q in queries))
    elapsed = time.perf_counter() - t0
    await _drain()
    return elapsed, len(queries) - sum(ok)


async def _throughput_rounds(
    router: Any, pool: Any, batch: list[str], rounds: int
) -> tuple[list[float], list[float], int, bool]:
    from llmrouter_core.execution import Budget, Executor

    budget = Budget(10.0)  # ample for these calls: the test is that nothing is refused or lost
    ex = Executor(router, pool=pool, keys="", budget=budget, litellm_kwargs={"mock_response": "ok"})
    await _direct_round(batch[:20])  # warm both paths
    await _executor_round(ex, batch[:20])
    direct: list[float] = []
    routed: list[float] = []
    errors = 0
    for r in range(rounds):
        # Alternate which side goes first, so drift in machine load hits both alike.
        order = ("direct", "routed") if r % 2 == 0 else ("routed", "direct")
        for side in order:
            if side == "direct":
                t, e = await _direct_round(batch)
                direct.append(len(batch) / t)
            else:
                t, e = await _executor_round(ex, batch)
                routed.append(len(batch) / t)
            errors += e
    return direct, routed, errors, budget.spent > budget.limit


def throughput(
    router: Any, pool: Any, queries: list[str], concurrency: int, rounds: int
) -> dict[str, float]:
    """Paired rounds in one event loop; the ratio is the median of the per-round ratios."""
    batch = [queries[i % len(queries)] for i in range(concurrency)]
    direct, routed, errors, overrun = asyncio.run(_throughput_rounds(router, pool, batch, rounds))
    ratios = [r / d for r, d in zip(routed, direct, strict=True)]
    return {
        "direct_rps": statistics.median(direct),
        "executor_rps": statistics.median(routed),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "errors": errors,
        "budget_overrun": overrun,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument(
        "--cold-caches",
        action="store_true",
        help="empty the embedder's caches between throughput rounds (default: put back "
        "those of right after training)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    train, queries = arc_challenge()
    report: dict[str, Any] = {}
    global _ROUND_CACHES
    from llmrouter_core.features.hashing import cache_snapshot, clear_caches

    for name in ("single", "auto", "knn"):
        clear_caches()  # each router starts from the caches its own training leaves
        router, pool = build(name, train)
        _ROUND_CACHES = None if args.cold_caches else cache_snapshot()
        report[name] = {
            "layer": layer_alone(router, pool, queries, args.calls),
            "latency": latency(router, pool, queries, args.calls),
            "throughput": throughput(router, pool, queries, args.concurrency, args.rounds),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, rep in report.items():
        lat = rep["latency"]
        print(
            f"[{name} router] direct p50 {lat['direct_p50_ms']:.2f} ms, executor p50 "
            f"{lat['executor_p50_ms']:.2f} ms -> overhead p50 {lat['overhead_p50_ms']:.3f} ms "
            f"(paired median {lat['overhead_paired_p50_ms']:.3f} ms, p90 "
            f"{lat['overhead_p90_ms']:.3f} ms); routing alone p50 {lat['route_p50_ms']:.3f} ms"
        )
        layer = rep["layer"]
        print(
            f"[{name} router] execution layer alone (LiteLLM call stubbed): p50 "
            f"{layer['layer_with_routing_p50_ms']:.3f} ms per call, of which routing "
            f"{layer['routing_p50_ms']:.3f} ms -> layer without routing "
            f"{layer['layer_without_routing_p50_ms']:.3f} ms"
        )
        if "throughput" in rep:
            th = rep["throughput"]
            print(
                f"[{name} router] {args.concurrency} concurrent async requests: direct "
                f"{th['direct_rps']:.0f} req/s, executor {th['executor_rps']:.0f} req/s, "
                f"ratio {th['ratio']:.3f} (median of {args.rounds} paired rounds, range "
                f"{th['ratio_min']:.3f}-{th['ratio_max']:.3f}); errors {th['errors']}, "
                f"budget overrun {th['budget_overrun']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
