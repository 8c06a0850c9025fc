"""The agentic and multi-round flows as LangGraph graphs, offline: a kNN router over
RouterBench's models answering with recorded responses (replay), a scripted policy, an
in-memory checkpointer, interrupts resumed with ``Command(resume=...)``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import lc_testkit as kit
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_llmrouter import create_agentic_graph, create_multiround_graph, flow_result
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import Command

from llmrouter_core.execution import Executor
from llmrouter_core.flows import Composite, agentic, make_composites, multi_round
from llmrouter_core.pool import Pool
from llmrouter_core.providers.replay import register_replay_provider
from llmrouter_core.testing import ScriptedProvider

STRONG, CHEAP = "gpt-4-1106-preview", "mistralai/mistral-7b-chat"


@pytest.fixture()
def executor(router: Any, replay: Any) -> Executor:
    register_replay_provider()
    kit.replay_pool(router)  # (re)selects the recorded test split
    return Executor(router, pool=replay, max_retries=0)


@pytest.fixture(scope="module")
def composite(rb_test: Any) -> Composite:
    return make_composites(rb_test, 1, parts=(3,), seed=4)[0]


def _thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def test_agentic_graph_equals_the_core_flow(executor: Executor, composite: Composite) -> None:
    core = agentic(composite.query, executor=executor, cost_weight=30.0)
    graph = create_agentic_graph(executor, cost_weight=30.0, checkpointer=InMemorySaver())
    out = graph.invoke({"query": composite.query}, _thread("a"))
    assert out["answer"] == core.answer
    assert out["spent"] == pytest.approx(core.cost)
    result = flow_result(out)
    assert sorted(s.to_dict()["reply"] for s in result.steps) == sorted(s.reply for s in core.steps)
    for step in result.steps:
        if step.role == "call":  # each part's answer is its routed model's recorded one
            text, cost = kit.recorded(step.prompt, str(step.model))
            assert (step.reply, step.cost) == (text, pytest.approx(cost))
    assert isinstance(out["messages"][-1], AIMessage) and out["messages"][-1].content == core.answer
    # The checkpointer holds the finished state.
    assert graph.get_state(_thread("a")).values["answer"] == core.answer


def test_agentic_graph_streams_steps_and_the_answer(
    executor: Executor, composite: Composite
) -> None:
    graph = create_agentic_graph(executor, cost_weight=30.0, checkpointer=InMemorySaver())
    updates = list(graph.stream({"query": composite.query}, _thread("u"), stream_mode="updates"))
    nodes = [next(iter(u)) for u in updates]
    assert nodes == ["plan", "part", "part", "part", "aggregate"]
    roles = [[s["role"] for s in u[n]["steps"]] for u, n in zip(updates, nodes, strict=True)]
    assert roles == [
        ["plan"],
        ["route", "call"],
        ["route", "call"],
        ["route", "call"],
        ["aggregate"],
    ]
    graph = create_agentic_graph(executor, cost_weight=30.0, checkpointer=InMemorySaver())
    messages = [
        m for m, _ in graph.stream({"query": composite.query}, _thread("m"), stream_mode="messages")
    ]
    assert [m.content for m in messages if isinstance(m, AIMessage)][-1].startswith("### Part 1\n")


def test_interrupt_before_expensive_parts_resumed_by_command(
    executor: Executor, composite: Composite
) -> None:
    graph = create_agentic_graph(
        executor, cost_weight=0.0, approve_above=1e-4, checkpointer=InMemorySaver()
    )
    first = graph.invoke({"query": composite.query}, _thread("i"))
    pending = first["__interrupt__"]
    assert len(pending) == 3 and "answer" not in first
    for item in pending:
        assert item.value["predicted_cost"] > 1e-4 and item.value["model"] == STRONG
    by_question = {i.value["question"]: i.id for i in pending}
    parts = [q.strip() for q in first["parts"]]
    decisions = {parts[0]: False, parts[1]: True, parts[2]: CHEAP}
    resume = {by_question[p]: v for p, v in decisions.items()}
    out = graph.invoke(Command(resume=resume), _thread("i"))
    calls = {s["prompt"]: s for s in out["steps"] if s["role"] == "call"}
    assert calls[parts[0]]["error"].startswith("rejected on review")
    assert calls[parts[0]]["cost"] is None
    assert calls[parts[1]]["model"] == STRONG and calls[parts[2]]["model"] == CHEAP
    for p in parts[1:]:
        text, cost = kit.recorded(p, calls[p]["model"])
        assert calls[p]["reply"] == text and calls[p]["cost"] == pytest.approx(cost)
    assert out["spent"] == pytest.approx(calls[parts[1]]["cost"] + calls[parts[2]]["cost"])
    assert "### Part 1\n(not answered: rejected on review" in out["answer"]


def test_agentic_graph_as_a_subgraph_of_a_messages_graph(
    executor: Executor, composite: Composite
) -> None:
    flow = create_agentic_graph(executor, cost_weight=1e4)
    builder = StateGraph(MessagesState)
    builder.add_node("flow", flow)
    builder.add_edge(START, "flow")
    parent = builder.compile(checkpointer=InMemorySaver())
    out = asyncio.run(parent.ainvoke({"messages": [HumanMessage(composite.query)]}, _thread("s")))
    core = agentic(composite.query, executor=executor, cost_weight=1e4)
    assert out["messages"][-1].content == core.answer


# -- multi-round ------------------------------------------------------------------------


def _mixed(executor: Executor, script: Any) -> tuple[ScriptedProvider, Executor]:
    provider = ScriptedProvider({"policy": script})
    priced = [
        replace(s, input_price=1.0 + i, output_price=2.0 + i) for i, s in enumerate(executor.pool)
    ]
    pool = Pool([*priced, *provider.pool(prices={"policy": 0.5})])
    return provider, Executor(executor.router, pool=pool, max_retries=0)


def test_multiround_graph_equals_the_core_flow_with_an_approved_consultation(
    executor: Executor, rb_test: Any
) -> None:
    prompt = rb_test.queries[3]
    script = ["<answer", f"<search> {STRONG}: {prompt} </search>", "<answer>B</answer>"]
    _, ex = _mixed(executor, script)
    core = multi_round("Which?", executor=ex, policy_model="policy")
    _, ex = _mixed(executor, script)
    graph = create_multiround_graph(
        ex, policy_model="policy", approve_above=1e-4, checkpointer=InMemorySaver()
    )
    first = graph.invoke({"query": "Which?"}, _thread("r"))
    (item,) = first["__interrupt__"]
    assert item.value["model"] == STRONG and item.value["question"] == prompt
    out = graph.invoke(Command(resume=True), _thread("r"))
    result = flow_result(out)
    assert result.answer == core.answer == "B"
    assert [(s.role, s.model, s.error) for s in result.steps] == [
        (s.role, s.model, s.error) for s in core.steps
    ]
    assert result.format_violations == 1 and result.cost == pytest.approx(core.cost)
    assert result.messages == core.messages


def test_multiround_graph_rejected_consultation_goes_back_to_the_policy(
    executor: Executor, rb_test: Any
) -> None:
    prompt = rb_test.queries[3]
    provider, ex = _mixed(
        executor, [f"<search> {STRONG}: {prompt} </search>", "<answer>A</answer>"]
    )
    graph = create_multiround_graph(
        ex, policy_model="policy", approve_above=1e-4, checkpointer=InMemorySaver()
    )
    graph.invoke({"query": "Which?"}, _thread("n"))
    out = graph.invoke(Command(resume=False), _thread("n"))
    assert out["answer"] == "A"
    assert not [s for s in out["steps"] if s["role"] == "call" and s["cost"]]
    last = provider.calls[-1].messages[-1]["content"]
    assert last.startswith("<information>error: the call was not approved")


def test_multiround_graph_tool_calls_one_consultation_per_node(
    executor: Executor, rb_test: Any
) -> None:
    import json

    from llmrouter_core.testing import ScriptedReply

    prompts = rb_test.queries[20], rb_test.queries[21]
    calls = [
        {
            "id": f"c{i}",
            "type": "function",
            "function": {
                "name": "consult",
                "arguments": json.dumps({"model": model, "question": prompt}),
            },
        }
        for i, (model, prompt) in enumerate(zip((CHEAP, STRONG), prompts, strict=True))
    ]
    provider = ScriptedProvider({"policy": [ScriptedReply("", calls), "done"]})
    priced = [replace(s, input_price=1.0, output_price=2.0) for s in executor.pool]
    pool = Pool([*priced, *provider.pool(prices={"policy": 0.5}, supports_tools=True)])
    ex = Executor(executor.router, pool=pool, max_retries=0)
    graph = create_multiround_graph(
        ex, policy_model="policy", approve_above=1e-3, checkpointer=InMemorySaver()
    )
    updates = list(graph.stream({"query": "q"}, _thread("t"), stream_mode="updates"))
    assert [next(iter(u)) for u in updates] == ["policy", "consult", "__interrupt__"]
    (item,) = updates[-1]["__interrupt__"]
    assert item.value["model"] == STRONG
    out = graph.invoke(Command(resume=True), _thread("t"))
    result = flow_result(out)
    consulted = [(s.model, s.prompt) for s in result.steps if s.role == "call"]
    assert consulted == [(CHEAP, prompts[0]), (STRONG, prompts[1])]  # each called once
    for model, prompt in consulted:
        step = next(s for s in result.steps if s.role == "call" and s.model == model)
        assert step.reply == kit.recorded(prompt, model)[0]
    assert result.answer == "done"
    tool_messages = [m for m in result.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["c0", "c1"]
