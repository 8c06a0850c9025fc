"""The agentic flow on recorded RouterBench answers (replay pool) and on scripted models."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from flow_helpers import recorded

from llmrouter_core.data import RoutingData
from llmrouter_core.execution import Executor
from llmrouter_core.flows import (
    FlowStep,
    aagentic,
    agentic,
    flow_outcome,
    make_composites,
    parse_parts,
    structural_parts,
)
from llmrouter_core.testing import ScriptedProvider, dummy_router

# -- the structural decomposer ---------------------------------------------------------------


def test_structural_parts_headers_items_context_and_none() -> None:
    text = (
        "Intro line.\n### Part 1\nFirst?\n1. not an item split\n2. inside part 1\n"
        "### part 2 (x)\nSecond?"
    )
    assert structural_parts(text) == [
        "Intro line.\n\nFirst?\n1. not an item split\n2. inside part 1",
        "Intro line.\n\nSecond?",
    ]
    items = (
        "Do both:\n1. Add 2 and 2.\n   Show work.\n2) Name a prime.\n  3. indented, not top level"
    )
    assert structural_parts(items) == [
        "Do both:\n\nAdd 2 and 2.\n   Show work.",
        "Do both:\n\nName a prime.\n  3. indented, not top level",
    ]
    # Numbering that does not run 1, 2, ... or a lone item is no structure.
    assert structural_parts("2. a\n3. b") == ["2. a\n3. b"]
    assert structural_parts("1. only one") == ["1. only one"]
    assert structural_parts("  plain question  ") == ["plain question"]


def test_structural_parts_split_composites_back_into_recorded_prompts(rb_test: RoutingData) -> None:
    for c in make_composites(rb_test, 40, seed=1):
        parts = structural_parts(c.query)
        assert parts == [rb_test.queries[r].strip() for r in c.rows]
        tasks = [rb_test.tasks[r] for r in c.rows]  # type: ignore[index]
        assert len(set(tasks)) == len(tasks) in (2, 3)


def test_parse_parts_reports_what_is_wrong() -> None:
    assert parse_parts('```json\n{"parts": ["a", "b"]}\n```', 4) == ["a", "b"]
    for bad, why in [
        ("no json here", "no JSON object"),
        ('{"steps": ["a"]}', 'no "parts"'),
        ('{"parts": []}', "empty"),
        ('{"parts": ["a", ""]}', "non-empty string"),
        ('{"parts": ["a", "b", "c"]}', "more than 2"),
        ('{"parts": ["a",', "not valid JSON"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_parts(bad, 2)


# -- replayed RouterBench composites ------------------------------------------------------------


def _check_replayed(
    data: RoutingData, executor: Executor, c: Any, result: Any, weight: float
) -> None:
    calls = [s for s in result.steps if s.role == "call"]
    routes = [s for s in result.steps if s.role == "route"]
    assert [s.part for s in routes] == list(range(len(c.rows)))
    assert sorted(s.part for s in calls) == list(range(len(c.rows)))
    total = 0.0
    for step in calls:
        row = c.rows[step.part]
        # Each part went to the model the router picks for it with the knob...
        assert step.model == executor.route(data.queries[row], cost_weight=weight).model
        assert step.model == routes[step.part].model
        # ... and its answer and cost are that model's recorded ones.
        text, cost = recorded(data, row, step.model)
        assert step.reply == text
        assert step.cost == pytest.approx(cost, rel=1e-9, abs=1e-12)
        assert f"### Part {step.part + 1}\n{text}" in result.answer
        total += cost
    assert result.cost == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert flow_outcome(data, c, result)[1] == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert result.stopped is None
    assert result.steps[0].role == "plan" and result.steps[-1].role == "aggregate"


def test_agentic_parts_answered_by_their_routed_models_at_recorded_costs(
    replay_executor: Executor, replaying: RoutingData
) -> None:
    data = replaying
    comps = make_composites(data, 6, seed=2)
    spent = {}
    for weight in (0.0, 2000.0):
        spent[weight] = 0.0
        for c in comps:
            seen: list[FlowStep] = []
            result = agentic(
                c.query, executor=replay_executor, cost_weight=weight, on_step=seen.append
            )
            assert seen == result.steps  # reported live, in order
            _check_replayed(data, replay_executor, c, result, weight)
            spent[weight] += result.cost
    # The cost knob reaches the parts: paying for cost makes the flow cheaper.
    assert spent[2000.0] < spent[0.0]


def test_aagentic_matches_agentic(replay_executor: Executor, replaying: RoutingData) -> None:
    c = make_composites(replaying, 1, parts=(3,), seed=5)[0]
    sync = agentic(c.query, executor=replay_executor, cost_weight=50.0)
    result = asyncio.run(aagentic(c.query, executor=replay_executor, cost_weight=50.0))
    assert result.answer == sync.answer
    assert result.cost == pytest.approx(sync.cost)
    assert sorted(result.models) == sorted(sync.models)
    _check_replayed(replaying, replay_executor, c, result, 50.0)


def test_aagentic_passes_on_the_text_of_the_call_that_makes_its_answer(
    replay_executor: Executor, replaying: RoutingData
) -> None:
    (one,) = make_composites(replaying, 1, parts=(1,), seed=3)
    (three,) = make_composites(replaying, 1, parts=(3,), seed=5)

    def run(query: str) -> tuple[list[str], Any]:
        pieces: list[str] = []
        result = asyncio.run(
            aagentic(query, executor=replay_executor, cost_weight=50.0, on_text=pieces.append)
        )
        return pieces, result

    # One part: its call streams, and the streamed text is the answer (the recorded response).
    pieces, result = run(one.query)
    (call,) = [s for s in result.steps if s.role == "call"]
    assert (
        call.model == replay_executor.route(replaying.queries[one.rows[0]], cost_weight=50.0).model
    )
    assert (
        pieces
        and "".join(pieces) == result.answer == recorded(replaying, one.rows[0], call.model)[0]
    )
    # Three parts joined without a model call: nothing streams; the answer is unchanged.
    pieces, result = run(three.query)
    assert pieces == []
    assert result.answer == agentic(three.query, executor=replay_executor, cost_weight=50.0).answer


def test_agentic_budget_takes_only_the_steps_that_fit(
    replay_executor: Executor, replaying: RoutingData
) -> None:
    data = replaying
    c = make_composites(data, 1, parts=(3,), seed=11)[0]
    full = agentic(c.query, executor=replay_executor, cost_weight=0.0)
    assert full.cost > 0
    nothing = agentic(c.query, executor=replay_executor, cost_weight=0.0, budget=0.0)
    assert nothing.cost == 0.0 and nothing.models == []
    assert nothing.stopped is not None and nothing.stopped.startswith("budget:")
    assert nothing.answer.count("(not answered: budget:") == 3
    # Under a budget the parts share what is left: a part goes to a model whose cost fits
    # its share (the router's best among those), or is not answered.
    assert data.costs is not None
    cheapest = sorted(float(data.costs[r].min()) for r in c.rows)
    assert cheapest[1] < cheapest[2]
    for budget in (full.cost / 2, 3 * cheapest[1]):
        part = agentic(c.query, executor=replay_executor, cost_weight=0.0, budget=budget)
        assert part.cost <= budget
        answered = [s for s in part.steps if s.role == "call" and s.error is None]
        for s in answered:  # what was answered is still the recorded answer, within its share
            text, cost = recorded(data, c.rows[s.part], s.model)  # type: ignore[index, arg-type]
            assert s.reply == text and cost <= budget / 3 + 1e-12
        refused = [s for s in part.steps if s.error]
        assert all(s.error.startswith("budget:") for s in refused)  # type: ignore[union-attr]
        assert len(answered) + len(refused) == 3
        if refused:
            assert part.stopped is not None and part.stopped.startswith("budget:")
    # The middle share fits the two cheaper parts only: the costliest is not taken.
    assert len(refused) == 1 and part.answer.count("(not answered: budget:") == 1


# -- scripted models: the LLM decomposer and aggregator, failures ----------------------------


def _scripted(scripts: dict[str, Any]) -> tuple[ScriptedProvider, Executor]:
    provider = ScriptedProvider(scripts)
    prices = {name: float(i + 1) for i, name in enumerate(scripts)}
    pool = provider.pool(prices=prices)
    router = dummy_router(
        {"cheap": 0.6, "strong": 0.9},
        {"cheap": 1e-6, "strong": 1e-3},
        pool,
    )
    return provider, Executor(router, pool=pool, max_retries=0)


def _answers(messages: list[dict[str, Any]]) -> str:
    return f"A<{messages[-1]['content']}>"


def test_llm_decomposer_repairs_once_and_every_call_is_counted() -> None:
    provider, ex = _scripted(
        {
            "cheap": _answers,
            "strong": _answers,
            "planner": ['Here: {"parts": ["x?"', '{"parts": ["What is x?", "What is y?"]}'],
            "writer": "x and y",
        }
    )
    result = agentic(
        "What are x and y?",
        executor=ex,
        decomposer="llm",
        aggregate="llm",
        plan_model="planner",
        aggregate_model="writer",
        cost_weight=0.0,
    )
    plans = [s for s in result.steps if s.role == "plan"]
    assert [s.error is not None and s.error.startswith("format:") for s in plans] == [True, False]
    assert plans[1].why.startswith("LLM decomposer, repair pass")
    calls = [s for s in result.steps if s.role == "call"]
    assert sorted(s.reply for s in calls) == ["A<What is x?>", "A<What is y?>"]
    assert all(s.model == "strong" for s in calls)
    assert result.answer == "x and y"
    # The planner's two calls, the parts' and the aggregation are all in the cost.
    assert result.cost == pytest.approx(sum(s.cost or 0.0 for s in result.steps))
    assert sum(1 for s in result.steps if s.cost) == 5
    assert result.models[0] == "planner" and result.models[-1] == "writer"
    repair = [c for c in provider.calls if c.model == "planner"][1]
    assert "not valid" in repair.messages[-1]["content"]


def test_llm_decomposer_falls_back_to_structure_after_a_failed_repair() -> None:
    _, ex = _scripted({"cheap": _answers, "strong": _answers, "planner": "I cannot."})
    result = agentic(
        "Do both:\n1. one?\n2. two?",
        executor=ex,
        decomposer="llm",
        plan_model="planner",
        cost_weight=1e9,
    )
    plans = [s for s in result.steps if s.role == "plan"]
    assert len(plans) == 3 and plans[-1].model is None
    assert "structural fallback: 2" in plans[-1].why
    assert [s.model for s in result.steps if s.role == "call"] == ["cheap", "cheap"]
    assert "A<Do both:\n\none?>" in result.answer


def test_a_failing_part_is_reported_and_the_others_answered() -> None:
    import litellm

    boom = litellm.BadRequestError("no", model="strong", llm_provider="scripted")
    _, ex = _scripted({"cheap": boom, "strong": _answers})
    ex.fallback = False
    result = agentic(
        "### Part 1\nfirst\n### Part 2\nsecond",
        executor=ex,
        decomposer=lambda q: ["first", "second"],
        cost_weight=0.0,
    )
    assert "A<first>" in result.answer and "A<second>" in result.answer
    _, ex2 = _scripted({"cheap": boom, "strong": boom})
    failed = agentic("### Part 1\nfirst\n### Part 2\nsecond", executor=ex2, cost_weight=0.0)
    errs = [s for s in failed.steps if s.role == "call"]
    assert len(errs) == 2 and all(s.error and "AllModelsFailedError" in s.error for s in errs)
    assert failed.answer.count("(not answered: AllModelsFailedError") == 2
    assert failed.cost == 0.0 and failed.stopped is None


def test_flow_result_json_and_bad_arguments() -> None:
    _, ex = _scripted({"cheap": _answers, "strong": _answers})
    result = agentic("one question", executor=ex, cost_weight=0.0)
    assert result.answer == "A<one question>"  # one part: no label
    out = json.loads(json.dumps(result.to_dict()))
    assert set(out) == {"answer", "models", "cost", "stopped", "steps"}
    assert math.isclose(out["cost"], result.cost)
    with pytest.raises(ValueError, match="empty"):
        agentic("  ", executor=ex)
    with pytest.raises(ValueError, match="aggregate"):
        agentic("q", executor=ex, aggregate="vote")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget"):
        agentic("q", executor=ex, budget=-1.0)
    with pytest.raises(ValueError, match="max_parts"):
        agentic("q", executor=ex, decomposer="llm", max_parts=0)
    with pytest.raises(ValueError, match="decomposer"):
        agentic("q", executor=ex, decomposer="magic")  # type: ignore[arg-type]


def test_any_router_routes_the_parts() -> None:
    _, ex = _scripted({"cheap": _answers, "strong": _answers})
    prefers_cheap = dummy_router(
        {"cheap": 0.9, "strong": 0.5}, {"cheap": 1e-6, "strong": 1e-3}, ex.pool
    )
    result = agentic("1. a?\n2. b?", executor=ex, router=prefers_cheap, cost_weight=0.0)
    assert [s.model for s in result.steps if s.role == "call"] == ["cheap", "cheap"]
    assert ex.route("a?", cost_weight=0.0).model == "strong"  # the executor's own router
