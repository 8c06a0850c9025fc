"""Agentic routing versus whole-question routing on composite RouterBench questions.

Each composite joins 2-3 RouterBench *test* prompts of different tasks under ``### Part N``
headers. On the replay pool (every answer and cost is the recorded one, no network):

* **agentic**: :func:`llmrouter_core.flows.agentic` with the structural decomposer, each part
  routed by the default router (``auto``, trained on RouterBench train) at the cost knob
  ``lambda``; a part is scored with the recorded label of the model it was routed to, and
  the flow's cost is the sum of every call's recorded cost. The script checks, for every
  composite and knob, that each part's answer *is* the recorded answer of its model and that
  the flow's cost equals the sum of the recorded costs.
* **whole**: the same router routes the whole composite (one model for every part) at each
  ``lambda``; the model's score is the mean of its recorded labels on the parts and its cost
  the sum of its recorded costs on them (the composite itself has no recorded answer).
* **single models**: one model for every composite.

Reported: both cost-quality curves, their AIQ over the single models' cost range, and the
cost at which each curve reaches the best single model's score.

Usage: LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_flows.py [--n 300]
       [--local N]   (also run the LLM decomposer and the multi-round loop with the local
                      135M/270M models on N composites / questions and report their
                      format-violation rate and reward)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

from llmrouter_core import get_router
from llmrouter_core.benchmark import load_split
from llmrouter_core.evaluation.metrics import aiq, cost_at_score
from llmrouter_core.execution import Executor
from llmrouter_core.flows import agentic, flow_outcome, make_composites, single_outcome
from llmrouter_core.providers.replay import register_replay_provider, replay_pool, set_replay_data

WEIGHTS = [
    0.0,
    10.0,
    20.0,
    30.0,
    50.0,
    70.0,
    100.0,
    150.0,
    200.0,
    300.0,
    500.0,
    700.0,
    1e3,
    2e3,
    3e3,
    1e4,
]


def _check(data: Any, c: Any, result: Any) -> int:
    """Mismatches between the flow and the recorded data (0 expected)."""
    bad = 0
    total = 0.0
    for step in result.steps:
        if step.role != "call":
            continue
        j = data.model_index(step.model)
        row = c.rows[step.part]
        bad += int(step.error is not None or step.reply != str(data.responses[row, j]))
        total += float(data.costs[row, j])
    bad += int(not math.isclose(result.cost, total, rel_tol=1e-9, abs_tol=1e-12))
    return bad


def replay_comparison(n: int, seed: int) -> dict[str, Any]:
    train, test = load_split("routerbench")
    start = time.perf_counter()
    router = get_router("auto").fit(train)
    train_s = time.perf_counter() - start
    register_replay_provider()
    set_replay_data(test)
    executor = Executor(router, pool=replay_pool(router.pool_), max_retries=0)
    comps = make_composites(test, n, seed=seed)
    singles: dict[str, tuple[float, float]] = {}
    for m in test.models:
        score, cost = np.mean([single_outcome(test, c, m) for c in comps], axis=0)
        singles[m] = (float(cost), float(score))
    agentic_pts, whole_pts, mismatches = [], [], 0
    flow_s = 0.0
    steps = 0
    for w in WEIGHTS:
        a_out, w_out = [], []
        for c in comps:
            t = time.perf_counter()
            result = agentic(c.query, executor=executor, cost_weight=w)
            flow_s += time.perf_counter() - t
            steps += len(result.steps)
            mismatches += _check(test, c, result)
            a_out.append(flow_outcome(test, c, result))
            w_out.append(single_outcome(test, c, router.route(c.query, cost_weight=w).model))
        a, wh = np.mean(a_out, axis=0), np.mean(w_out, axis=0)
        agentic_pts.append((float(a[1]), float(a[0])))
        whole_pts.append((float(wh[1]), float(wh[0])))
        print(
            f"lambda={w:<9g} agentic cost ${a[1]:.6f} score {a[0]:.4f} | "
            f"whole cost ${wh[1]:.6f} score {wh[0]:.4f}"
        )
    costs = [c for c, _ in singles.values()]
    c_min, c_max = min(costs), max(costs)
    best_model = max(singles, key=lambda m: singles[m][1])
    best_cost, best_score = singles[best_model]
    single_pts = [(c, s) for c, s in singles.values()]
    out = {
        "composites": n,
        "parts": int(sum(len(c.rows) for c in comps)),
        "router": "auto",
        "train_s": train_s,
        "weights": WEIGHTS,
        "agentic": agentic_pts,
        "whole": whole_pts,
        "single_models": {m: {"cost": c, "score": s} for m, (c, s) in singles.items()},
        "aiq": {
            "agentic": aiq(agentic_pts, c_min, c_max),
            "whole": aiq(whole_pts, c_min, c_max),
            "single_model_hull": aiq(single_pts, c_min, c_max),
        },
        "best_single": {"model": best_model, "cost": best_cost, "score": best_score},
        "cost_at_best_single_score": {
            "agentic": cost_at_score(agentic_pts, best_score),
            "whole": cost_at_score(whole_pts, best_score),
        },
        "best_score": {
            "agentic": max(s for _, s in agentic_pts),
            "whole": max(s for _, s in whole_pts),
        },
        "mismatches_with_recorded_data": mismatches,
        "flow_seconds_per_step_incl_replay": flow_s / max(1, steps),
        "overhead_ms_per_step": overhead(executor, comps[:100]),
    }
    set_replay_data(None)
    return out


def overhead(executor: Executor, comps: list[Any]) -> dict[str, float]:
    """The flows' own time per step, in ms (median over composites).

    Core: the time spent inside the flow's generator (planning, bookkeeping, aggregation),
    minus the router's time (each ``route`` step's latency); model calls run outside it.
    LangGraph: the core's, plus the graph's wall time minus :func:`agentic`'s on the same
    composite (the same recorded calls, in parallel in both), per step.
    """
    from langchain_llmrouter import create_agentic_graph

    from llmrouter_core.flows.agentic import agentic_flow
    from llmrouter_core.flows.steps import FlowLedger

    graph = create_agentic_graph(executor, cost_weight=100.0)
    core_ms, graph_ms = [], []
    for c in comps:
        ledger = FlowLedger()
        flow = agentic_flow(c.query, executor=executor, cost_weight=100.0, ledger=ledger)
        own, outcomes = 0.0, None
        while True:
            t = time.perf_counter()
            try:
                calls = flow.send(outcomes) if outcomes is not None else next(flow)
            except StopIteration:
                own += time.perf_counter() - t
                break
            own += time.perf_counter() - t
            outcomes = [call.complete(executor) for call in calls]
        steps = ledger.steps
        t = time.perf_counter()
        agentic(c.query, executor=executor, cost_weight=100.0)  # parallel calls, as the graph
        wall = time.perf_counter() - t
        routing = sum(s.latency_s for s in steps if s.role == "route")
        core = (own - routing) / len(steps)
        t = time.perf_counter()
        graph.invoke({"query": c.query})
        graph_wall = time.perf_counter() - t
        core_ms.append(core * 1e3)
        graph_ms.append((core + (graph_wall - wall) / len(steps)) * 1e3)
    return {"core": float(np.median(core_ms)), "langgraph": float(np.median(graph_ms))}


def local_models(n: int, seed: int) -> dict[str, Any]:
    """The LLM decomposer and the multi-round loop run by the local CPU models.

    RouterBench's ARC and Winogrande prompts are 5-shot; to fit the small models' 2,048-token
    context, each part here is the prompt's last block (the question itself, zero-shot).
    """
    from collections import Counter

    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.flows import Composite, composite_text, multi_round, router_r1_reward
    from llmrouter_core.providers.local import default_local_pool

    _, test = load_split("routerbench")
    pool = default_local_pool()
    executor = Executor(PoolOrderRouter(pool), max_retries=0, timeout=600)
    comps = [
        Composite(composite_text([_last_block(test.queries[r]) for r in c.rows]), c.rows)
        for c in make_composites(test, n, seed=seed)
    ]
    out: dict[str, Any] = {}
    for policy in pool.names:
        errors: Counter[str] = Counter()
        samples: list[str] = []
        # LLM decomposer: how often the reply parses (first try / after the repair pass),
        # and how often it finds the composite's true number of parts.
        first_ok = repaired = right_count = 0
        for c in comps:
            r = agentic(
                c.query,
                executor=executor,
                decomposer="llm",
                plan_model=policy,
                aggregate="concat",
                max_cost=None,
            )
            plans = [s for s in r.steps if s.role == "plan"]
            errors.update(_error_kind(s.error) for s in plans if s.error)
            samples += [s.reply[:200] for s in plans[:1] if s.model]
            first_ok += int(plans[0].error is None)
            ok = any(s.model is not None and s.error is None for s in plans)
            repaired += int(ok and plans[0].error is not None)
            if ok:
                right_count += int(len(json.loads(_parts_of(r))) == len(c.rows))
        # Multi-round (tag protocol): the policy consults the other local model on
        # ARC-Challenge questions; reward with the gold letter (EM), a = 0.
        arc = [i for i, t in enumerate(test.tasks or []) if t == "arc-challenge"][:n]
        violations = turns = 0
        rewards = []
        for i in arc:
            gold = _arc_gold(test, i)
            r = multi_round(
                _last_block(test.queries[i]),
                executor=executor,
                policy_model=policy,
                protocol="tags",
                max_rounds=2,
            )
            turns += sum(1 for s in r.steps if s.role == "plan")
            errors.update(_error_kind(s.error) for s in r.steps if s.error)
            samples += [s.reply[:200] for s in r.steps[:1] if s.model]
            violations += r.format_violations
            if gold is not None:
                rewards.append(router_r1_reward(r, gold))
        out[policy] = {
            "decomposer_valid_first_try": first_ok / len(comps),
            "decomposer_valid_after_repair": repaired / len(comps),
            "decomposer_right_part_count": right_count / len(comps),
            "multi_round_questions": len(arc),
            "multi_round_policy_turns": turns,
            "multi_round_format_violation_rate": violations / max(1, turns),
            "multi_round_mean_reward": float(np.mean(rewards)) if rewards else None,
            "errors": dict(errors.most_common()),
            "first_replies": samples[:4],
        }
        print(policy, out[policy])
    return out


def _last_block(prompt: str) -> str:
    return prompt.strip().split("\n\n")[-1]


def _error_kind(error: str) -> str:
    head, _, rest = error.partition(":")
    return f"{head}: {rest.strip()[:50]}" if head == "format" else head


def _parts_of(result: Any) -> str:
    plans = [s for s in result.steps if s.role == "plan" and s.error is None and s.model]
    from llmrouter_core.flows import parse_parts

    return json.dumps(parse_parts(plans[-1].reply, 8))


def _arc_gold(data: Any, i: int) -> str | None:
    """The gold letter of an ARC row: the answer of a model that scored 1 on it (RouterBench
    stores labels, not gold answers)."""
    import re

    for j in range(len(data.models)):
        if data.scores[i, j] == 1.0:
            m = re.search(r"\b([ABCD])\b", str(data.responses[i, j]))
            if m:
                return m.group(1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="composites")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--local", type=int, default=0, help="also run the local models on N")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_flows.json"))
    args = parser.parse_args()
    report: dict[str, Any] = {"replay": replay_comparison(args.n, args.seed)}
    r = report["replay"]
    print(
        json.dumps(
            {
                k: r[k]
                for k in (
                    "aiq",
                    "best_single",
                    "cost_at_best_single_score",
                    "best_score",
                    "mismatches_with_recorded_data",
                )
            },
            indent=2,
        )
    )
    if args.local:
        report["local"] = local_models(args.local, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
