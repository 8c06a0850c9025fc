"""Benchmark the causal-LM router (``llm``) with a real local judge on a RouterBench slice.

Trains ``auto`` (the default router) and ``single`` (the best single model for the budget) on
the whole RouterBench train split, and ``llm`` with the judge given by ``--judge`` (default:
SmolLM2-135M on the CPU through the ``local/`` provider; ``local`` extra); evaluates all three
on the same seeded slice of the test split, and prints AIQ on that slice, the judge's reply
statistics, and the per-query routing latency of ``llm`` (each query is one judge call; the
latency is measured with an empty cache, then the evaluation reuses the cached ratings).

A second ``llm`` line, "raw ratings", evaluates the same judge replies with the calibration
blend forced to 1 (quality = rating / 10, the prior only where a rating is missing), to show
what the judge alone is worth. All figures come from this one run.

Usage:
    LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_llm_router.py
        [--n-test 60] [--n-calibration 20] [--judge local/smollm2-135m] [--seed 0]
        [--out runs/bench_llm_router]

About 12 s per judge call on one CPU thread (SmolLM2-135M, ~1,300-token prompts), so the
default run (20 calibration + 60 test calls) takes about 15 minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

from llmrouter_core.benchmark import load_split
from llmrouter_core.evaluation import evaluate
from llmrouter_core.registry import get_router


def _row(name: str, ev: Any, extra: str = "") -> str:
    return (
        f"| {name} | {ev.aiq:.4f} | {ev.best_score:.4f} | {ev.single_hull_aiq:.4f} | "
        f"{ev.oracle_aiq:.4f} | {extra} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n-test", type=int, default=60)
    parser.add_argument("--n-calibration", type=int, default=20)
    parser.add_argument("--judge", default="local/smollm2-135m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_llm_router")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("llmrouter_core.data").setLevel(logging.ERROR)

    import litellm

    litellm.suppress_debug_info = True  # no help banners on stdout when a judge call fails

    train, test = load_split("routerbench")
    rng = np.random.default_rng(args.seed)
    part = test.subset(np.sort(rng.choice(test.n_queries, args.n_test, replace=False)))

    results: dict[str, Any] = {"n_train": train.n_queries, "n_test_slice": part.n_queries}
    evals = {}
    for name in ("single", "auto"):
        start = time.perf_counter()
        router = get_router(name).fit(train)
        train_s = time.perf_counter() - start
        times = []
        for q in part.queries:
            t0 = time.perf_counter()
            router.route(q)
            times.append((time.perf_counter() - t0) * 1e3)
        evals[name] = evaluate(router, part, name=name)
        results[name] = {
            "aiq": evals[name].aiq,
            "best_score": evals[name].best_score,
            "train_s": train_s,
            "route_p50_ms": statistics.median(times),
        }

    router = get_router("llm", judge_model=args.judge, n_calibration=args.n_calibration)
    start = time.perf_counter()
    router.fit(train)
    fit_s = time.perf_counter() - start
    judge = router.scorer_  # the fitted JudgeScorer: its counters, cache and calibration
    fit_stats = judge.judge_stats.to_dict()
    judge.clear_cache()
    before = judge.judge_stats
    times = []
    for q in part.queries:
        t0 = time.perf_counter()
        router.route(q)
        times.append(time.perf_counter() - t0)
    after = judge.judge_stats
    test_stats = {
        k: getattr(after, k) - getattr(before, k)
        for k in ("calls", "ok", "partial", "unparseable", "errors")
    }
    evals["llm"] = evaluate(router, part, name="llm")
    blend = router.blend_
    router.blend_ = 1.0  # the judge's ratings alone (same cached replies)
    evals["llm_raw"] = evaluate(router, part, name="llm (raw ratings)")
    router.blend_ = blend
    assert judge.judge_stats.calls == after.calls, "evaluation re-called the judge"
    times.sort()
    results["llm"] = {
        "judge": judge.judge_model_,
        "aiq": evals["llm"].aiq,
        "aiq_raw_ratings": evals["llm_raw"].aiq,
        "best_score": evals["llm"].best_score,
        "blend": blend,
        "cv_loss": judge.cv_loss_,
        "fit_s": fit_s,
        "fit_judge_stats": fit_stats,
        "test_judge_stats": test_stats,
        "route_latency_s": {
            "p50": statistics.median(times),
            "p90": times[int(round(0.9 * (len(times) - 1)))],
            "mean": statistics.fmean(times),
            "max": times[-1],
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(results, indent=2), encoding="utf-8")

    llm = results["llm"]
    lat = llm["route_latency_s"]
    ts = test_stats
    print(
        f"RouterBench test slice: {part.n_queries} queries (seed {args.seed}); "
        f"train: {train.n_queries} queries; judge: {llm['judge']}"
    )
    print()
    print("| router | AIQ (slice) | top score | single-model hull AIQ | oracle AIQ | notes |")
    print("|---|---|---|---|---|---|")
    print(_row("auto", evals["auto"], f"route p50 {results['auto']['route_p50_ms']:.1f} ms"))
    print(_row("single", evals["single"], f"route p50 {results['single']['route_p50_ms']:.2f} ms"))
    print(
        _row(
            "llm",
            evals["llm"],
            f"blend {blend:.1f} (CV on {args.n_calibration} train queries); "
            f"route p50 {lat['p50']:.1f} s, p90 {lat['p90']:.1f} s",
        )
    )
    print(_row("llm (raw ratings, blend 1)", evals["llm_raw"], "same judge replies"))
    print()
    print(
        f"judge replies on the slice: {ts['calls']} calls, {ts['ok']} rated every model, "
        f"{ts['partial']} some, {ts['unparseable']} none (unparseable), {ts['errors']} failed"
    )
    print(
        f"judge replies at fit: {fit_stats['calls']} calls, {fit_stats['ok']} ok, "
        f"{fit_stats['partial']} partial, {fit_stats['unparseable']} unparseable, "
        f"{fit_stats['errors']} failed; fit {fit_s:.0f} s"
    )
    print(
        f"llm per-query routing latency (one judge call): mean {lat['mean']:.1f} s, "
        f"max {lat['max']:.1f} s"
    )


if __name__ == "__main__":
    main()
