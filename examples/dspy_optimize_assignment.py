"""Choose a model (or a routing setting) for each stage of a DSPy program, offline.

``VerifiedAnswer`` answers a multiple-choice prompt in three stages: ``draft``, an independent
``check``, and an ``arbiter`` called only when the two disagree. Which model runs each stage
decides both the accuracy and how often the arbiter is paid for. ``ModelAssignmentOptimizer``
searches, per stage, a fixed pool model or the router at a willingness-to-pay setting, to
maximise ``score - lambda x cost`` on a devset; the choice is saved with the program.

Everything runs on RouterBench's recorded answers (ARC-Challenge, WinoGrande): each stage's
answer is what the assigned model really answered, at its recorded cost, and the score is the
recorded one. The result is then checked on held-out prompts from RouterBench's test split.
``benchmarks/bench_dspy_optimizer.py`` runs the same at full size over all 11 models.

Run (from the repository root, with the real data next to it):
    LLMROUTER_DATA_DIR=../shared/data python examples/dspy_optimize_assignment.py
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy
import numpy as np
from dspy_llmrouter import (
    ModelAssignmentOptimizer,
    RoutedLM,
    RoutingPolicy,
    assignment_of,
    load_program,
)
from dspy_llmrouter.recorded import RecordedOutcomes, VerifiedAnswer, recorded_examples

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.providers.replay import replay_pool, set_replay_data

MODELS = ("mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat", "gpt-4-1106-preview")
TASKS = ("arc-challenge", "winogrande")


def main(
    dev: int = 150,
    held_out: int = 150,
    cost_weight: float = 20.0,
    models: Sequence[str] = MODELS,
    router_train: int = 500,
) -> dict:
    """Tune on ``dev`` training prompts, report on ``held_out`` test prompts."""
    dspy.configure_cache(enable_disk_cache=False)
    train, test = load_split("routerbench")
    everything = lr.RoutingData.concat([train, test])
    set_replay_data(everything)
    rows = np.random.default_rng(0).permutation(
        [i for i in range(train.n_queries) if train.tasks[i] in TASKS]
    )
    router = lr.get_router("knn", n_neighbors=10, blend=1.0).fit(
        train.subset(np.sort(rows[dev : dev + router_train]))
    )
    lm = RoutedLM(router, pool=replay_pool(router.pool_))
    devset = recorded_examples(train, [int(i) for i in rows[:dev]])
    test_rows = [i for i in range(test.n_queries) if test.tasks[i] in TASKS]
    heldset = recorded_examples(test, np.random.default_rng(1).permutation(test_rows)[:held_out])

    metric = RecordedOutcomes(everything).metric
    optimizer = ModelAssignmentOptimizer(
        metric, lm, cost_weight, models=list(models), router_weights=[cost_weight]
    )
    tuned = optimizer.compile(VerifiedAnswer(), trainset=devset)
    print(f"chosen on {len(devset)} dev prompts: {optimizer.best_.describe()}")

    with tempfile.TemporaryDirectory() as tmp:  # the choice travels with the program
        tuned.save(Path(tmp) / "tuned.json")
        tuned = load_program(VerifiedAnswer(), Path(tmp) / "tuned.json", router=lm.executor)

    results = {"tuned": optimizer.evaluate(tuned, heldset)}
    for model in models:
        program = VerifiedAnswer()
        program.set_lm(RoutingPolicy(model=model).lm_from(lm))
        results[model] = optimizer.evaluate(program, heldset)
    print(f"held out ({len(heldset)} test prompts), lambda = {cost_weight:g} per USD:")
    for name, score in sorted(results.items(), key=lambda kv: -kv[1].objective):
        print(
            f"  {name:<30} objective {score.objective:.4f}  score {score.quality:.3f}  "
            f"${score.cost:.6f}/prompt"
        )
    return {"assignment": assignment_of(tuned), "results": results}


if __name__ == "__main__":
    main()
