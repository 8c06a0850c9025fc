"""Train and evaluate every registered router on a dataset's train/test split.

Used by ``llmrouter benchmark`` (the README's main job) and the scripts in ``benchmarks/``.
Figures: AIQ and the rest of :class:`~llmrouter_core.evaluation.RouterEvaluation` on the test
split, training seconds, and routing latency of the trained router (one query p50/p99, and a
batch of 1,000 queries).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError, MissingExtraError

__all__ = ["load_split", "measure_latency", "run_benchmark"]

logger = logging.getLogger(__name__)


def load_split(
    dataset: str, *, data_dir: str | Path | None = None
) -> tuple[RoutingData, RoutingData]:
    """``(train, test)`` of a named dataset or file with a split column.

    Test questions that also occur in the train split are removed from train (never from
    test), so the test figures are honest.
    """
    from llmrouter_core.data import dedupe_train_test, load_dataset

    data = load_dataset(dataset, on_defect="drop", data_dir=data_dir)
    if data.splits is None or not {"train", "test"} <= set(data.splits):
        raise DataError(f"{dataset!r} needs 'train' and 'test' splits for a benchmark")
    data = dedupe_train_test(data)
    return data.split("train"), data.split("test")


def measure_latency(
    router: Any, queries: Sequence[str], *, n_single: int = 200, batch_size: int = 1000
) -> dict[str, float]:
    """Routing latency: one query at a time (p50/p99 ms) and one batch of ``batch_size``."""
    singles = [queries[i % len(queries)] for i in range(min(n_single, max(len(queries), 1)))]
    for q in singles[:5]:  # warm caches (lazy imports, vectorisers)
        router.route(q)
    times = []
    for q in singles:
        start = time.perf_counter()
        router.route(q)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    batch = [queries[i % len(queries)] for i in range(batch_size)]
    start = time.perf_counter()
    router.route_batch(batch)
    batch_s = time.perf_counter() - start
    return {
        "route_p50_ms": statistics.median(times),
        "route_p99_ms": times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))],
        "batch_1000_s": batch_s,
    }


def run_benchmark(
    dataset: str,
    *,
    routers: Sequence[str] | None = None,
    out_dir: str | Path = "runs/benchmark",
    n_points: int = 41,
    data_dir: str | Path | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """Train every router on the train split, evaluate on test, write JSON + PNG.

    Routers that need a missing extra, or that cannot be trained offline, are skipped with a
    reason in the result (never silently).
    """
    from rich.progress import Progress

    from llmrouter_core.evaluation import evaluate, leaderboard, plot_curves
    from llmrouter_core.registry import (
        benchmark_by_default,
        get_composition,
        get_router,
        list_routers,
    )

    train, test = load_split(dataset, data_dir=data_dir)
    if routers is None:
        names = [
            info.name
            for info in list_routers(include_evaluation_only=False)
            if benchmark_by_default(info.name)
        ]
    else:
        names = list(routers)
        for name in names:
            get_composition(name)  # unknown names fail before any training
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    evaluations = []
    latencies: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmark", total=len(names))
        for name in names:
            progress.update(task, description=f"training {name}")
            try:
                router = get_router(name)
                start = time.perf_counter()
                router.fit(train)
                train_s = time.perf_counter() - start
            except MissingExtraError as exc:
                skipped[name] = str(exc)
                logger.warning("skipping %s: %s", name, exc)
                progress.advance(task)
                continue
            progress.update(task, description=f"evaluating {name}")
            lat = measure_latency(router, test.queries)
            latencies[name] = lat
            evaluations.append(
                evaluate(
                    router,
                    test,
                    n_points=n_points,
                    name=name,
                    train_seconds=train_s,
                    route_latency_ms=lat["route_p50_ms"],
                    meta=lat,
                )
            )
            progress.advance(task)
    if not evaluations:
        raise DataError("no router could be benchmarked: " + "; ".join(skipped.values()))
    rows = leaderboard(evaluations)
    for row in rows:
        row.update(latencies.get(row["router"], {}))
    first = evaluations[0]
    result = {
        "dataset": dataset,
        "n_train": train.n_queries,
        "n_test": test.n_queries,
        "models": list(first.models),
        "single_hull_aiq": first.single_hull_aiq,
        "oracle_aiq": first.oracle_aiq,
        "leaderboard": rows,
        "skipped": skipped,
    }
    (out / "leaderboard.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "evaluations.json").write_text(
        json.dumps([e.to_dict() for e in evaluations], indent=2), encoding="utf-8"
    )
    plot_curves(evaluations, out / "curves.png", title=f"{dataset}: cost-quality (test split)")
    return result
