"""DSPy model assignment on RouterBench, offline: the tuned program vs every single model.

The program is ``dspy_llmrouter.recorded.VerifiedAnswer`` (draft, independent check, arbiter
on disagreement) over RouterBench's ARC-Challenge and WinoGrande prompts. Every stage's answer
is the response its model really gave (``replay`` provider), at the recorded cost; the metric
is the recorded score. A kNN router is trained on part of RouterBench's train split, the
:class:`~dspy_llmrouter.ModelAssignmentOptimizer` is tuned on another part (the devset), and
everything is judged on RouterBench's test split (held out), at the lambda tuned for:

* the tuned program;
* the program with every stage on one fixed model, for each of the 11 models;
* the program with every stage on the router at lambda;
* for reference, each model answering once, alone (a one-stage program).

Usage:
    LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_dspy_optimizer.py \\
        [--cost-weight 20] [--dev 300] [--router-train 600] [--held-out 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy
import numpy as np
from dspy_llmrouter import ModelAssignmentOptimizer, RoutedLM, RoutingPolicy
from dspy_llmrouter.recorded import (
    RecordedOutcomes,
    RecordedPromptAdapter,
    RecordedQA,
    VerifiedAnswer,
    recorded_examples,
)

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.providers.replay import replay_pool, set_replay_data

TASKS = ("arc-challenge", "winogrande")


class AnswerOnce(dspy.Module):
    """One model answers once (the reference a single model gives on its own)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = dspy.Predict(RecordedQA)

    def forward(self, prompt: str) -> dspy.Prediction:
        with dspy.context(adapter=RecordedPromptAdapter()):
            return self.answer(prompt=prompt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-weight", type=float, default=20.0, help="lambda, quality per USD")
    parser.add_argument("--dev", type=int, default=300, help="devset size (train split)")
    parser.add_argument("--router-train", type=int, default=600, help="router training size")
    parser.add_argument("--held-out", type=int, default=0, help="test prompts (0 = all)")
    parser.add_argument("--sweep", type=int, default=5, help="router settings from its sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    lam = args.cost_weight

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    train, test = load_split("routerbench")
    set_replay_data(lr.RoutingData.concat([train, test]))
    outcomes = RecordedOutcomes(lr.RoutingData.concat([train, test]))
    rows = np.array([i for i in range(train.n_queries) if train.tasks[i] in TASKS])
    rows = np.random.default_rng(args.seed).permutation(rows)
    dev_rows = [int(i) for i in rows[: args.dev]]
    router_rows = np.sort(rows[args.dev : args.dev + args.router_train])
    held_rows = [i for i in range(test.n_queries) if test.tasks[i] in TASKS]
    if args.held_out:
        held_rows = sorted(
            np.random.default_rng(args.seed + 1)
            .choice(held_rows, args.held_out, replace=False)
            .tolist()
        )

    t0 = time.perf_counter()
    router = lr.get_router("knn", n_neighbors=10, blend=1.0).fit(train.subset(router_rows))
    fit_s = time.perf_counter() - t0
    lm = RoutedLM(router, pool=replay_pool(router.pool_))
    devset = recorded_examples(train, dev_rows)
    held_out = recorded_examples(test, held_rows)

    optimizer = ModelAssignmentOptimizer(outcomes.metric, lm, lam, router_weights=args.sweep)
    t0 = time.perf_counter()
    tuned = optimizer.compile(VerifiedAnswer(), trainset=devset)
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    chosen = optimizer.evaluate(tuned, held_out)
    fixed = {}
    alone = {}
    for model in lm.pool_models:
        program = VerifiedAnswer()
        program.set_lm(RoutingPolicy(model=model).lm_from(lm))
        fixed[model] = optimizer.evaluate(program, held_out)
        single = AnswerOnce()
        single.set_lm(RoutingPolicy(model=model).lm_from(lm))
        alone[model] = optimizer.evaluate(single, held_out)
    routed = VerifiedAnswer()
    routed.set_lm(RoutingPolicy(cost_weight=lam).lm_from(lm))
    router_only = optimizer.evaluate(routed, held_out)
    eval_s = time.perf_counter() - t0

    best_fixed = max(fixed.items(), key=lambda kv: kv[1].objective)
    best_alone = max(alone.items(), key=lambda kv: kv[1].objective)
    print(
        f"lambda = {lam:g} per USD; devset {len(devset)} (train split), held-out "
        f"{len(held_out)} (test split); router trained on {len(router_rows)} queries"
    )
    print(f"candidates: {', '.join(p.label for p in optimizer.policies_)}")
    print(f"chosen: {optimizer.best_.describe()}  [devset]")
    print()
    print("| held-out | objective | score | $/example |")
    print("|---|---|---|---|")
    print(f"| tuned program | {chosen.objective:.4f} | {chosen.quality:.4f} | {chosen.cost:.6f} |")
    print(
        f"| router @ lambda, every stage | {router_only.objective:.4f} | "
        f"{router_only.quality:.4f} | {router_only.cost:.6f} |"
    )
    for model, score in sorted(fixed.items(), key=lambda kv: -kv[1].objective):
        print(
            f"| {model}, every stage | {score.objective:.4f} | {score.quality:.4f} | "
            f"{score.cost:.6f} |"
        )
    print()
    print(
        f"best single model in the program: {best_fixed[0]} {best_fixed[1].objective:.4f}; "
        f"tuned - best = {chosen.objective - best_fixed[1].objective:+.4f}; beats all "
        f"{len(fixed)}: {all(chosen.objective > s.objective for s in fixed.values())}"
    )
    print(
        f"reference, best model answering once alone: {best_alone[0]} "
        f"{best_alone[1].objective:.4f} (score {best_alone[1].quality:.4f}, "
        f"${best_alone[1].cost:.6f}); tuned - it = "
        f"{chosen.objective - best_alone[1].objective:+.4f}"
    )
    print(
        f"evaluated {len(optimizer.results_)} assignments; router fit {fit_s:.1f}s, compile "
        f"{compile_s:.1f}s, held-out evaluation {eval_s:.1f}s"
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "cost_weight": lam,
                    "dev": len(devset),
                    "held_out": len(held_out),
                    "chosen_dev": optimizer.best_.to_dict(),
                    "chosen": chosen.to_dict(),
                    "router_only": router_only.to_dict(),
                    "fixed": {m: s.to_dict() for m, s in fixed.items()},
                    "alone": {m: s.to_dict() for m, s in alone.items()},
                    "seconds": {"fit": fit_s, "compile": compile_s, "evaluate": eval_s},
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
