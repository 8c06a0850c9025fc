"""ModelAssignmentOptimizer on a real three-stage program over RouterBench, replayed offline.

The program (``VerifiedAnswer``: draft, independent check, arbiter on disagreement) answers
ARC-Challenge and WinoGrande prompts; every stage's answer is the response the assigned model
really gave, at its recorded cost, and the metric is the dataset's recorded score. The
optimizer is tuned on 300 training-split prompts and judged on 300 test-split prompts.
"""

from __future__ import annotations

import math
from typing import Any

import dspy
import pytest
from dspy_llmrouter import (
    ModelAssignmentOptimizer,
    RoutedLM,
    RoutingPolicy,
    assignment_of,
    load_program,
)
from dspy_llmrouter.recorded import (
    RecordedOutcomes,
    VerifiedAnswer,
    choice_letter,
    recorded_examples,
)

from llmrouter_core.errors import DataError, UnknownModelError

LAMBDA = 20.0  # quality points per USD
MODELS = ["mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat", "gpt-4-1106-preview"]


def _uniform(lm: RoutedLM, policy: RoutingPolicy) -> VerifiedAnswer:
    program = VerifiedAnswer()
    program.set_lm(policy.lm_from(lm))
    return program


def _recomputed(
    assignment: dict[str, RoutingPolicy], router: Any, data: Any, rows: list[int]
) -> tuple[float, float]:
    """(mean score, mean cost) of the program under ``assignment``, computed from the data
    alone: which model each stage calls, the recorded answers, scores and costs."""

    def model(policy: RoutingPolicy, row: int) -> int:
        name = policy.model or router.route(data.queries[row], cost_weight=policy.cost_weight).model
        return data.models.index(name)

    score = cost = 0.0
    for row in rows:
        draft, check = model(assignment["draft"], row), model(assignment["check"], row)
        first, second = data.responses[row, draft], data.responses[row, check]
        cost += data.costs[row, draft] + data.costs[row, check]
        if choice_letter(first) is not None and choice_letter(first) == choice_letter(second):
            score += data.scores[row, draft]
        else:
            arbiter = model(assignment["arbiter"], row)
            cost += data.costs[row, arbiter]
            score += data.scores[row, arbiter]
    return score / len(rows), cost / len(rows)


@pytest.fixture(scope="module")
def tuned(
    knn_router: Any, replay_pool: Any, outcomes: RecordedOutcomes, mc_split: dict[str, Any]
) -> tuple[ModelAssignmentOptimizer, Any, RoutedLM]:
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    lm = RoutedLM(knn_router, pool=replay_pool)
    devset = recorded_examples(mc_split["train"], mc_split["dev"])
    optimizer = ModelAssignmentOptimizer(
        outcomes.metric, lm, LAMBDA, models=MODELS, router_weights=[LAMBDA]
    )
    program = optimizer.compile(VerifiedAnswer(), trainset=devset)
    return optimizer, program, lm


def test_chosen_assignment_beats_every_single_fixed_model_on_held_out_data(
    tuned: tuple[ModelAssignmentOptimizer, Any, RoutedLM],
    knn_router: Any,
    mc_split: dict[str, Any],
) -> None:
    optimizer, program, lm = tuned
    best = optimizer.best_
    # On the devset: the chosen assignment is the best evaluated, uniform ones included.
    assert best.objective == max(r.objective for r in optimizer.results_)
    assert best.objective >= max(u.objective for u in optimizer.uniform_)
    assert len(optimizer.uniform_) == len(MODELS) + 1

    held_out = recorded_examples(mc_split["test"], mc_split["held_out"])
    chosen = optimizer.evaluate(program, held_out)
    fixed = {m: optimizer.evaluate(_uniform(lm, RoutingPolicy(model=m)), held_out) for m in MODELS}
    for model, score in fixed.items():
        assert chosen.objective > score.objective, (model, chosen.describe(), score.describe())

    # The objective's bookkeeping is exact: recomputed from the recorded data alone.
    quality, cost = _recomputed(
        chosen.assignment, knn_router, mc_split["test"], mc_split["held_out"]
    )
    assert chosen.quality == pytest.approx(quality)
    assert chosen.cost == pytest.approx(cost)
    assert chosen.objective == pytest.approx(quality - LAMBDA * cost)
    assert sum(chosen.cost_by_predictor.values()) == pytest.approx(chosen.cost)


def test_the_choice_is_saved_with_the_program(
    tuned: tuple[ModelAssignmentOptimizer, Any, RoutedLM],
    tmp_path: Any,
    mc_split: dict[str, Any],
) -> None:
    optimizer, program, lm = tuned
    chosen = assignment_of(program)
    assert chosen == optimizer.best_.assignment
    program.save(tmp_path / "tuned.json")
    loaded = load_program(VerifiedAnswer(), tmp_path / "tuned.json", router=lm.executor)
    assert assignment_of(loaded) == chosen
    devset = recorded_examples(mc_split["train"], mc_split["dev"][:40])
    assert optimizer.evaluate(loaded, devset).objective == pytest.approx(
        optimizer.evaluate(program, devset).objective
    )


def test_composes_with_bootstrap_fewshot(
    knn_router: Any, replay_pool: Any, outcomes: RecordedOutcomes, mc_split: dict[str, Any]
) -> None:
    from dspy.teleprompt import BootstrapFewShot

    lm = RoutedLM(knn_router, pool=replay_pool)
    trainset = recorded_examples(mc_split["train"], mc_split["dev"][:12])
    devset = recorded_examples(mc_split["train"], mc_split["dev"][12:52])
    small = ["mistralai/mistral-7b-chat", "zero-one-ai/Yi-34B-Chat"]

    # After: optimise the prompts first, then assign models; the demos are kept.
    student = VerifiedAnswer()
    student.set_lm(lm.copy(cost_weight=LAMBDA))
    bootstrapped = BootstrapFewShot(
        metric=outcomes.metric, max_bootstrapped_demos=2, max_labeled_demos=0
    ).compile(student, trainset=trainset)
    demos = {name: len(p.demos) for name, p in bootstrapped.named_predictors()}
    assert any(demos.values())
    after = ModelAssignmentOptimizer(
        outcomes.metric, lm, LAMBDA, models=small, router_weights=None, max_rounds=1
    )
    tuned = after.compile(bootstrapped, trainset=devset)
    assert {name: len(p.demos) for name, p in tuned.named_predictors()} == demos
    assert set(p.model for p in assignment_of(tuned).values()) <= set(small)

    # Inside: the prompt optimiser runs first within compile, on routed LMs.
    inside = ModelAssignmentOptimizer(
        outcomes.metric,
        lm,
        LAMBDA,
        models=small,
        router_weights=None,
        max_rounds=1,
        teleprompter=BootstrapFewShot(
            metric=outcomes.metric, max_bootstrapped_demos=2, max_labeled_demos=0
        ),
    )
    tuned_inside = inside.compile(VerifiedAnswer(), trainset=devset)
    assert any(len(p.demos) for _, p in tuned_inside.named_predictors())
    assert all(isinstance(p.lm, RoutedLM) for _, p in tuned_inside.named_predictors())


def test_candidates_and_bad_input(
    knn_router: Any, replay_pool: Any, outcomes: RecordedOutcomes, mc_split: dict[str, Any]
) -> None:
    lm = RoutedLM(knn_router, pool=replay_pool)
    default = ModelAssignmentOptimizer(outcomes.metric, lm, LAMBDA).candidate_policies()
    assert [p.model for p in default[:11]] == list(knn_router.models_)
    weights = [p.cost_weight for p in default[11:]]
    assert LAMBDA in weights and math.inf in weights and weights == sorted(weights, reverse=True)
    with pytest.raises(ValueError, match="cost_weight"):
        ModelAssignmentOptimizer(outcomes.metric, lm, -1.0)
    with pytest.raises(ValueError, match="cost_weight"):
        ModelAssignmentOptimizer(outcomes.metric, lm, math.inf)
    with pytest.raises(TypeError, match="RoutedLM"):
        ModelAssignmentOptimizer(outcomes.metric, dspy.LM("openai/gpt-4o-mini"), 1.0)
    with pytest.raises(UnknownModelError, match="not in the pool"):
        ModelAssignmentOptimizer(outcomes.metric, lm, 1.0, models=["gpt-5"]).candidate_policies()
    with pytest.raises(DataError, match="empty"):
        ModelAssignmentOptimizer(outcomes.metric, lm, 1.0).compile(VerifiedAnswer(), trainset=[])
    with pytest.raises(DataError, match="not a recorded response"):
        outcomes.score(mc_split["train"].queries[0], "Z) none of these")
