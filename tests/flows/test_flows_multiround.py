"""The multi-round flow: Router-R1's tags parsed robustly, native tool calls, budgets, the
reward's formula and the trajectory export."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flow_helpers import recorded

from llmrouter_core.data import RoutingData
from llmrouter_core.execution import Executor
from llmrouter_core.flows import (
    CostWindow,
    FlowResult,
    FlowStep,
    amulti_round,
    export_trajectories,
    multi_round,
    parse_tag_turn,
    router_r1_reward,
    token_f1,
)
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.providers.replay import replay_pool
from llmrouter_core.testing import ScriptedProvider, ScriptedReply

STRONG = "gpt-4-1106-preview"
CHEAP = "mistralai/mistral-7b-chat"


# -- the tag parser ------------------------------------------------------------------------------


def test_parse_tag_turn_never_raises_and_says_what_is_wrong() -> None:
    pool = ["gpt-4", "gpt-4-turbo", "ollama/llama3:8b"]
    ok = parse_tag_turn(
        "<think>a</think>\n<search> gpt-4-turbo : When: 10:30? </search> "
        "<information>made up</information>",
        pool,
    )
    assert (ok.kind, ok.model, ok.query) == ("search", "gpt-4-turbo", "When: 10:30?")
    assert ok.text.endswith("</search>") and "made up" not in ok.text
    assert parse_tag_turn("<search>ollama/llama3:8b: hi: there</search>", pool).model == (
        "ollama/llama3:8b"
    )
    assert parse_tag_turn("<search>GPT-4: x</search>", pool).model == "gpt-4"  # exact, any case
    # A search inside <think> is thought, not an action.
    turn = parse_tag_turn("<think><search>gpt-4: x</search></think><answer> 42 </answer>", pool)
    assert (turn.kind, turn.answer) == ("answer", "42")
    for text, error in [
        ("just text", "no <search> or <answer>"),
        ("<search> gpt-4: x", "unbalanced <search>"),
        ("<answer> 42", "unbalanced <answer>"),
        ("<think> hmm <answer>1</answer>", "unbalanced <think>"),
        ("<search> gpt: x </search>", "unknown model 'gpt'"),  # no substring matching
        ("<search> gpt-4 x </search>", "Model-Name: question"),
        ("<search> gpt-4: </search>", "empty sub-query"),
        ("<answer>  </answer>", "empty <answer>"),
        ("<answer><answer>1</answer>", "nested"),
        ("", "no <search> or <answer>"),
    ]:
        turn = parse_tag_turn(text, pool)
        assert turn.kind == "violation" and error in turn.error, text


# -- a scripted policy consulting the replay pool ----------------------------------------------


def _mixed(
    flow_router: Any, scripts: dict[str, Any], **spec: Any
) -> tuple[ScriptedProvider, Executor]:
    provider = ScriptedProvider(scripts)
    # The pool file's prices and descriptions (RouterBench's pool has none).
    described = [
        replace(
            s, input_price=float(i + 1), output_price=float(2 * i + 2), description=f"model #{i}"
        )
        for i, s in enumerate(replay_pool(flow_router.pool_))
    ]
    pool = Pool([*described, *provider.pool(prices={"policy": 0.5}, **spec)])
    return provider, Executor(flow_router, pool=pool, max_retries=0)


def test_tags_protocol_consults_recorded_models_and_answers(
    replaying: RoutingData, flow_router: Any
) -> None:
    data, row = replaying, 3
    prompt = data.queries[row]
    provider, ex = _mixed(
        flow_router,
        {
            "policy": [
                f"<think>ask</think><search> {STRONG}: {prompt} </search>",
                "<answer>B</answer>",
            ]
        },
    )
    seen: list[FlowStep] = []
    result = multi_round("Which answer?", executor=ex, policy_model="policy", on_step=seen.append)
    assert seen == result.steps
    assert result.answer == "B" and result.stopped is None and result.format_violations == 0
    assert [s.role for s in result.steps] == ["plan", "route", "call", "plan"]
    call = result.steps[2]
    text, cost = recorded(data, row, STRONG)
    assert (call.model, call.reply) == (STRONG, text)
    assert call.cost == pytest.approx(cost)
    policy_cost = sum(s.cost or 0.0 for s in result.steps if s.role == "plan")
    assert policy_cost > 0 and result.cost == pytest.approx(cost + policy_cost)
    assert result.models == ["policy", STRONG]
    # The pool, prices and descriptions come from the pool; the reply comes back as information.
    first, second = [c for c in provider.calls if c.model == "policy"]
    system = first.messages[0]["content"]
    for spec in flow_router.pool_:
        assert spec.name in system
    spec = ex.pool[STRONG]
    line = f"- {STRONG}: input ${spec.input_price:g} / output ${spec.output_price:g} per 1M tokens"
    assert f"{line}; {spec.description}" in system
    assert second.messages[-1]["content"] == f"<information>{text}</information>"


def test_malformed_policy_outputs_are_violations_never_crashes(
    replaying: RoutingData, flow_router: Any
) -> None:
    data = replaying
    prompt = data.queries[5]
    _, ex = _mixed(
        flow_router,
        {
            "policy": [
                "I think the answer is B",
                "<search> gpt-4: what? </search>",
                f"<search> {CHEAP}: {prompt}",
                f"<search> {CHEAP}: {prompt} </search>",
                "<answer>A</answer>",
            ]
        },
    )
    result = multi_round("q", executor=ex, policy_model="policy", protocol="tags")
    assert result.answer == "A" and result.format_violations == 3
    errors = [s.error for s in result.steps if s.format_violation]
    assert "no <search> or <answer>" in errors[0]
    assert "unknown model 'gpt-4'" in errors[1]
    assert "unbalanced <search>" in errors[2]
    assert [s.reply for s in result.steps if s.role == "call"] == [recorded(data, 5, CHEAP)[0]]


def test_a_colon_inside_the_sub_query_is_kept(replaying: RoutingData, flow_router: Any) -> None:
    data = replaying
    row = next(i for i, q in enumerate(data.queries) if q.count(":") >= 2)
    _, ex = _mixed(
        flow_router,
        {"policy": [f"<search>{CHEAP}: {data.queries[row]}</search>", "<answer>x</answer>"]},
    )
    result = multi_round("q", executor=ex, policy_model="policy")
    call = next(s for s in result.steps if s.role == "call")
    assert call.error is None and call.reply == recorded(data, row, CHEAP)[0]


def test_more_than_max_rounds_stops_with_what_it_has(
    replaying: RoutingData, flow_router: Any
) -> None:
    data = replaying
    _, ex = _mixed(flow_router, {"policy": f"<search> {CHEAP}: {data.queries[7]} </search>"})
    result = multi_round("q", executor=ex, policy_model="policy", max_rounds=2)
    assert sum(1 for s in result.steps if s.role == "call") == 2
    assert result.format_violations >= 1
    assert result.stopped is not None and result.stopped.startswith("max_rounds")
    assert result.answer == recorded(data, 7, CHEAP)[0]  # the last consulted reply
    assert router_r1_reward(result, result.answer) == -1.0


def test_budget_bounds_policy_turns_and_consultations(
    replaying: RoutingData, flow_router: Any
) -> None:
    data = replaying
    row = 9
    _, ex = _mixed(
        flow_router,
        {"policy": [f"<search> {STRONG}: {data.queries[row]} </search>", "<answer>C</answer>"]},
    )
    free = multi_round("q", executor=ex, policy_model="policy")
    strong_cost = recorded(data, row, STRONG)[1]
    budget = free.cost - strong_cost / 2  # room for the policy, not the consultation
    _, ex = _mixed(
        flow_router,
        {"policy": [f"<search> {STRONG}: {data.queries[row]} </search>", "<answer>C</answer>"]},
    )
    capped = multi_round("q", executor=ex, policy_model="policy", budget=budget)
    assert capped.cost <= budget
    assert capped.stopped is not None and capped.stopped.startswith("budget:")
    assert not [s for s in capped.steps if s.role == "call" and s.error is None]


def test_tools_protocol_with_pool_schema(replaying: RoutingData, flow_router: Any) -> None:
    data = replaying
    prompt = data.queries[11]
    tc = [
        {
            "id": "c1",
            "type": "function",
            "function": {
                "name": "consult",
                "arguments": json.dumps({"model": CHEAP, "question": prompt}),
            },
        },
        {"id": "c2", "type": "function", "function": {"name": "consult", "arguments": "{bad json"}},
        {
            "id": "c3",
            "type": "function",
            "function": {
                "name": "consult",
                "arguments": json.dumps({"model": "nope", "question": "x"}),
            },
        },
    ]
    provider, ex = _mixed(
        flow_router,
        {"policy": [ScriptedReply("", tc), "The answer is D"]},
        supports_tools=True,
    )
    result = asyncio.run(amulti_round("q", executor=ex, policy_model="policy"))
    assert result.answer == "The answer is D" and result.format_violations == 2
    assert [s.reply for s in result.steps if s.role == "call"] == [recorded(data, 11, CHEAP)[0]]
    first, second = [c for c in provider.calls if c.model == "policy"]
    (tool,) = first.params["tools"]
    params = tool["function"]["parameters"]["properties"]
    assert sorted(params["model"]["enum"]) == sorted(flow_router.models_)
    spec = ex.pool[CHEAP]
    line = f"- {CHEAP}: input ${spec.input_price:g} / output ${spec.output_price:g} per 1M tokens"
    assert f"{line}; {spec.description}" in tool["function"]["description"]
    tool_msgs = [m for m in second.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["c1", "c2", "c3"]
    assert tool_msgs[0]["content"] == recorded(data, 11, CHEAP)[0]
    assert tool_msgs[1]["content"].startswith("format: tool arguments are not JSON")


def test_a_router_pre_ranks_the_pool_the_policy_sees(
    replaying: RoutingData, flow_router: Any
) -> None:
    provider, ex = _mixed(flow_router, {"policy": "<answer>x</answer>"})
    query = replaying.queries[0]
    multi_round(query, executor=ex, policy_model="policy", router=flow_router)
    system = provider.calls[0].messages[0]["content"]
    ranked = flow_router.route(query).ranked
    positions = [system.index(f"- {m}:") for m in ranked]
    assert positions == sorted(positions)


# -- the reward ------------------------------------------------------------------------------


def _trajectory(answer: str, out_tokens: int, *, violation: bool = False) -> FlowResult:
    steps = [
        FlowStep("plan", "policy", "q", "<search>m: q</search>", 10, 0.0),
        FlowStep(
            "call", "m", "q", "gold", 10 + out_tokens, out_tokens * 1e-6, output_tokens=out_tokens
        ),
        FlowStep(
            "plan",
            "policy",
            "q",
            f"<answer>{answer}</answer>",
            10,
            0.0,
            error="format: no tag" if violation else None,
        ),
    ]
    return FlowResult(answer, steps, sum(s.cost or 0.0 for s in steps), ["policy", "m"])


def test_router_r1_reward_pins_the_formula() -> None:
    pool = Pool([ModelSpec("m", input_price=1.0, output_price=4.0)])
    cheap, dear = _trajectory("Paris", 100), _trajectory("Paris", 10_000)
    # A format violation is -1, whatever the answer.
    assert router_r1_reward(_trajectory("Paris", 1, violation=True), "Paris", a=0.3) == -1.0
    # Without the cost term, a right answer is 1 and a wrong one 0.
    assert router_r1_reward(cheap, "paris.", a=0.0) == 1.0
    assert router_r1_reward(_trajectory("Lyon", 1), "Paris", a=0.0) == 0.0
    # With it, on a window of both costs: right and cheap beats right and dear.
    window = CostWindow()
    window.add(math.sqrt(100 * 4.0 / 1e6))
    window.add(math.sqrt(10_000 * 4.0 / 1e6))
    r_cheap = router_r1_reward(cheap, "Paris", a=0.3, pool=pool, window=window)
    r_dear = router_r1_reward(dear, "Paris", a=0.3, pool=pool, window=window)
    assert r_cheap == pytest.approx(0.7 + 0.3 * 1.0)
    assert r_dear == pytest.approx(0.7 + 0.3 * 0.0)
    # The scaling: min-max between the window's 5th and 95th percentiles, clipped.
    lo, hi = math.sqrt(4e-4), math.sqrt(4e-2)
    p5, p95 = lo + 0.05 * (hi - lo), lo + 0.95 * (hi - lo)
    pair = CostWindow()
    pair.add(lo)
    pair.add(hi)
    assert pair.scale(lo + 0.3 * (hi - lo)) == pytest.approx(
        (0.3 * (hi - lo) - (p5 - lo)) / (p95 - p5)
    )
    assert (pair.scale(lo), pair.scale(hi)) == (0.0, 1.0)
    # A wrong answer gets no cost term, cheap or dear.
    wrong = router_r1_reward(_trajectory("Lyon", 100), "Paris", a=0.3, pool=pool, window=window)
    assert wrong == 0.0
    # F1: partial credit counts as right, and the answer is scored, never the trace (the
    # consulted reply "gold" contains no effect).
    f1 = token_f1("Paris France", "Paris")
    assert router_r1_reward(_trajectory("Paris France", 100), "Paris", metric="f1") == f1
    assert router_r1_reward(_trajectory("Lyon", 100), "gold", a=0.0) == 0.0
    with pytest.raises(ValueError, match="a must"):
        router_r1_reward(cheap, "Paris", a=2.0)


def test_export_trajectories_in_chat_format(
    tmp_path: Path, replaying: RoutingData, flow_router: Any
) -> None:
    data = replaying
    _, ex = _mixed(
        flow_router,
        {"policy": [f"<search> {CHEAP}: {data.queries[2]} </search>", "<answer>A</answer>"]},
    )
    result = multi_round("Which?", executor=ex, policy_model="policy")
    path = tmp_path / "t.jsonl"
    reward = router_r1_reward(result, "A", a=0.2, pool=ex.pool)
    assert export_trajectories([result], path, golds=["A"], rewards=[reward]) == 1
    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert [m["role"] for m in row["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert row["messages"][-1]["content"] == "<answer>A</answer>"
    assert (
        row["messages"][3]["content"] == f"<information>{recorded(data, 2, CHEAP)[0]}</information>"
    )
    assert row["gold"] == "A" and row["reward"] == pytest.approx(reward) and reward > 0.8
