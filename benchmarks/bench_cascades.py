"""Benchmark the cascade routers on RouterBench: FrugalGPT on recorded answers, AutoMix with
real verifier calls.

FrugalGPT is trained on the train split (chain, scorer label and thresholds all chosen by
cross-validation on train) and replayed on the test split's *recorded* answers: each
operating point's score is that of the answer the cascade keeps, and its cost is the sum of
the recorded costs of every model it called. Printed: AIQ, the top score (vs the best single
model), the cost at which the curve reaches the best single model's score (as a share of that
model's cost), training seconds, and per-query decision latency without LLM calls (the route
decision, and scoring one answer at one stage).

AutoMix's verifier outcomes are not in any recorded data. With ``--automix-queries N`` the
verifier is *called for real* (default: the local SmolLM2-135M, ``local`` extra) on the
recorded answers of the small model for N test queries, and AutoMix is replayed on that slice
with those real outcomes; FrugalGPT and the single models are shown on the same slice.

Usage:
    LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_cascades.py
        [--references single] [--automix-queries 24] [--automix-samples 3]
        [--automix-verifier smollm2-135m] [--out runs/bench_cascades]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

from llmrouter_core import get_router
from llmrouter_core.benchmark import load_split, measure_latency
from llmrouter_core.cascades import collect_verifications
from llmrouter_core.evaluation import RouterEvaluation, evaluate, single_model_points


def _row(name: str, ev: RouterEvaluation, ref_score: float, extra: dict[str, Any]) -> list[str]:
    share = ev.cost_share_of_best_single
    return [
        name,
        f"{ev.aiq:.4f}",
        f"{ev.best_score:.4f} ({ev.best_score / ref_score - 1:+.1%})",
        "never" if share is None else f"{100 * share:.0f}%",
        f"{extra.get('train_s', math.nan):.1f}",
        f"{extra.get('route_p50_ms', math.nan):.2f}",
        f"{extra.get('score_p50_ms', math.nan):.2f}",
        f"{extra.get('execute_p50_ms', math.nan):.2f}",
    ]


def _score_latency(router: Any, test: Any, n: int = 200) -> float:
    """p50 ms of scoring one recorded answer at one cascade stage (no LLM call)."""
    names = router.policy_.chain_
    scorer = router.acceptor("frugalgpt")
    if len(names) < 2:
        return math.nan
    times = []
    for i in range(min(n, test.n_queries)):
        answers = {m: test.responses[i, test.model_index(m)] for m in names[:2]}
        start = time.perf_counter()
        scorer.score_answers([test.queries[i]], [answers])
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _execute_latency(router: Any, test: Any, n: int = 100) -> float:
    """p50 ms of carrying out a whole cascade through the executor on recorded answers (the
    replay provider), at the middle of the sweep."""
    from llmrouter_core.execution import Executor
    from llmrouter_core.providers.replay import replay_pool, set_replay_data

    set_replay_data(test)
    ex = Executor(router, pool=replay_pool(router.pool_), max_retries=0)
    weight = router.sweep(9)[4]
    times = []
    for i in range(min(n, test.n_queries)):
        start = time.perf_counter()
        ex.complete(test.queries[i], cost_weight=weight)
        times.append((time.perf_counter() - start) * 1e3)
    set_replay_data(None)
    return statistics.median(times[5:]) if len(times) > 5 else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--references", default="single")
    parser.add_argument("--automix-queries", type=int, default=0)
    parser.add_argument("--automix-samples", type=int, default=3)
    parser.add_argument("--automix-verifier", default="smollm2-135m")
    parser.add_argument("--out", default="runs/bench_cascades")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    train, test = load_split("routerbench")
    points = single_model_points(test)
    top = max(points, key=lambda m: (points[m].score, -points[m].cost))
    ref_score, ref_cost = points[top].score, points[top].cost

    results: dict[str, Any] = {}
    rows = []
    start = time.perf_counter()
    frugal = get_router("frugalgpt").fit(train)
    train_s = time.perf_counter() - start
    lat = measure_latency(frugal, test.queries)
    policy = frugal.policy_
    extra = {
        "train_s": train_s,
        "route_p50_ms": lat["route_p50_ms"],
        "score_p50_ms": _score_latency(frugal, test),
        "execute_p50_ms": _execute_latency(frugal, test),
    }
    ev = evaluate(frugal, test, n_points=41, name="frugalgpt", train_seconds=train_s)
    rows.append(_row("frugalgpt (recorded answers)", ev, ref_score, extra))
    results["frugalgpt"] = {
        **extra,
        "chain": policy.chain_,
        "label": policy.label_,
        "cv_aiq": policy.cv_aiq_,
        "evaluation": ev.to_dict(),
    }
    for name in [r for r in args.references.split(",") if r]:
        start = time.perf_counter()
        router = get_router(name).fit(train)
        t = time.perf_counter() - start
        lat = measure_latency(router, test.queries)
        ref = evaluate(router, test, n_points=41, name=name, train_seconds=t)
        rows.append(_row(name, ref, ref_score, {"train_s": t, "route_p50_ms": lat["route_p50_ms"]}))
        results[name] = ref.to_dict()

    header = [
        "router",
        "AIQ",
        f"top score (vs {top})",
        f"cost to match {top}",
        "train s",
        "route p50 ms",
        "score one answer p50 ms",
        "execute one cascade p50 ms (replay)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\nRouterBench: {train.n_queries} train / {test.n_queries} test queries; {top} scores "
        f"{ref_score:.4f} at ${ref_cost:.6f}/query; single models' hull AIQ "
        f"{ev.single_hull_aiq:.4f}; oracle AIQ {ev.oracle_aiq:.4f}"
    )
    print(
        f"frugalgpt: chain {' -> '.join(policy.chain_)}; label {policy.label_}; "
        f"cross-validated AIQ on train {policy.cv_aiq_:.4f}; AIQ on test {ev.aiq:.6f}"
    )
    print("frugalgpt distinct operating points on test, with mean calls per query:")
    calls = ev.meta.get("mean_calls", [])
    seen = set()
    for p, c in zip(ev.curve, calls, strict=False):
        key = (round(p.mean_cost, 9), round(p.mean_score, 6))
        if key in seen:
            continue
        seen.add(key)
        print(
            f"  cost ${p.mean_cost:.6f} ({p.mean_cost / ref_cost:.0%} of {top}) "
            f"score {p.mean_score:.4f} calls {c:.2f}"
        )

    if args.automix_queries > 0:
        results["automix"] = _automix(args, train, test, frugal, ref_score)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=2, default=str), "utf-8")


def _automix(args: Any, train: Any, test: Any, frugal: Any, ref_score: float) -> dict[str, Any]:
    from dataclasses import replace

    from llmrouter_core.execution import Executor
    from llmrouter_core.pool import Pool
    from llmrouter_core.providers.local import default_local_pool
    from llmrouter_core.providers.replay import replay_pool, set_replay_data

    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(test.n_queries, args.automix_queries, replace=False))
    part = test.subset(rows)
    router = get_router(
        "automix",
        verifier=args.automix_verifier,
        n_samples=args.automix_samples,
        context_chars=600,
    ).fit(train)
    local = default_local_pool()[args.automix_verifier]
    set_replay_data(part)
    pool = Pool([*replay_pool(router.pool_), replace(local)])
    ex = Executor(router, pool=pool, max_retries=0)
    start = time.perf_counter()
    log = collect_verifications(router, part, ex)
    seconds = time.perf_counter() - start
    small = router.policy_.chain_[0]
    correct = part.scores[:, part.model_index(small)]
    conf = log.confidence[:, 0]
    pos, neg = conf[correct > 0.5], conf[correct <= 0.5]
    auc = (
        float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())
        if pos.size and neg.size
        else math.nan
    )
    router.policy_.use_verifications(log)
    ev = evaluate(router, part, n_points=21, name="automix")
    ev_f = evaluate(frugal, part, n_points=21, name="frugalgpt")
    print(
        f"\nAutoMix on {part.n_queries} test queries (answers recorded; verifier "
        f"local/{args.automix_verifier} called for real, {args.automix_samples} samples each, "
        f"{seconds:.0f} s): chain {' -> '.join(router.policy_.chain_)}"
    )
    print(
        f"  verdicts parsed {log.parsed_share:.0%}; AUC of the verifier's confidence for "
        f"{small}'s correctness {auc:.3f}"
    )
    print(
        f"  AIQ on this slice: automix {ev.aiq:.4f}, frugalgpt {ev_f.aiq:.4f}, single models' "
        f"hull {ev.single_hull_aiq:.4f}; top score automix {ev.best_score:.4f}, frugalgpt "
        f"{ev_f.best_score:.4f}"
    )
    return {
        "n_queries": part.n_queries,
        "verifier": args.automix_verifier,
        "samples": args.automix_samples,
        "seconds": seconds,
        "parsed_share": log.parsed_share,
        "verifier_auc": auc,
        "log": log.to_dict(),
        "automix": ev.to_dict(),
        "frugalgpt_same_slice": ev_f.to_dict(),
    }


if __name__ == "__main__":
    main()
