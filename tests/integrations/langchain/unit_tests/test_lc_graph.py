"""LangGraph router node, model nodes and fan-out on a real kNN router (RouterBench) with real
recorded answers (replay), under a checkpointer and with ``stream_mode="messages"``."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import lc_testkit as kit
import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_llmrouter import (
    FanOutState,
    RoutedChatModel,
    RouterState,
    create_fanout_nodes,
    create_model_node,
    create_router_node,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from llmrouter_core.errors import UnknownModelError
from llmrouter_core.policy import FanOutPolicy

STRONG, MID, CHEAP = "gpt-4-1106-preview", "zero-one-ai/Yi-34B-Chat", "mistralai/mistral-7b-chat"


@pytest.fixture(scope="module")
def prompts(rb_test: Any) -> list[str]:
    return [rb_test.queries[i] for i in range(0, 900, 150)]


@pytest.fixture(scope="module")
def llm(router: Any, replay: Any) -> RoutedChatModel:
    return RoutedChatModel(router=router, pool=replay)


def routed_graph(llm: RoutedChatModel) -> Any:
    """An existing two-node graph ("strong", "fast") with a router node added in front."""
    routes = {STRONG: "strong", MID: "strong", CHEAP: "fast"}
    builder = StateGraph(RouterState)
    builder.add_node("route", create_router_node(llm, routes), destinations=("strong", "fast"))
    builder.add_node("strong", create_model_node(llm, STRONG))
    builder.add_node("fast", create_model_node(llm, CHEAP))
    builder.add_edge(START, "route")
    builder.add_edge("strong", END)
    builder.add_edge("fast", END)
    return builder.compile(checkpointer=InMemorySaver())


def expected_route(router: Any, prompt: str, allowed: set[str], **kw: Any) -> str:
    return next(m for m in router.route(prompt, **kw).ranked if m in allowed)


def test_router_node_goes_to_the_chosen_models_node(
    llm: RoutedChatModel, router: Any, prompts: list[str]
) -> None:
    graph = routed_graph(llm)
    node_model = {"strong": STRONG, "fast": CHEAP}
    seen = set()
    for k, prompt in enumerate(prompts):
        config = {"configurable": {"thread_id": f"t{k}"}}
        state = graph.invoke({"messages": [HumanMessage(prompt)]}, config)
        chosen = expected_route(router, prompt, {STRONG, MID, CHEAP})
        assert state["routing"]["model"] == chosen
        assert state["routing"]["ranked"][0] == chosen
        node = "fast" if chosen == CHEAP else "strong"
        answer = state["messages"][-1]
        assert isinstance(answer, AIMessage)
        assert answer.response_metadata["model_name"] == node_model[node]
        assert answer.content == kit.recorded(prompt, node_model[node])[0]
        seen.add(node)
    # The checkpointer keeps the thread: a second turn adds to the same history.
    config = {"configurable": {"thread_id": "t0"}}
    state = graph.invoke({"messages": [HumanMessage(prompts[1])]}, config)
    assert len(state["messages"]) == 4
    assert state["routing"]["model"] == expected_route(router, prompts[1], {STRONG, MID, CHEAP})


def test_router_node_restricts_to_cheap_routes_under_a_cost_weight(
    router: Any, replay: Any, prompts: list[str]
) -> None:
    llm = RoutedChatModel(router=router, pool=replay, cost_weight=math.inf)
    graph = routed_graph(llm)
    state = graph.invoke(
        {"messages": [HumanMessage(prompts[0])]}, {"configurable": {"thread_id": "cheap"}}
    )
    assert state["routing"]["model"] == expected_route(
        router, prompts[0], {STRONG, MID, CHEAP}, cost_weight=math.inf
    )
    with pytest.raises(UnknownModelError):
        create_router_node(llm, {"gpt-5": "x"})


def test_messages_stream_emits_each_token_once(
    llm: RoutedChatModel, router: Any, prompts: list[str]
) -> None:
    graph = routed_graph(llm)
    config = {"configurable": {"thread_id": "stream"}}
    pieces: list[str] = []
    ids = set()

    def answer_length(prompt: str) -> int:
        chosen = expected_route(router, prompt, {STRONG, MID, CHEAP})
        return len(kit.recorded(prompt, CHEAP if chosen == CHEAP else STRONG)[0])

    prompt = max(prompts, key=answer_length)
    recorder = kit.Recorder()
    config["callbacks"] = [recorder]
    for message, meta in graph.stream(
        {"messages": [HumanMessage(prompt)]}, config, stream_mode="messages"
    ):
        assert isinstance(message, AIMessageChunk), type(message)
        assert meta["langgraph_node"] in ("strong", "fast")
        pieces.append(message.text)
        ids.add(message.id)
    final = graph.get_state(config).values["messages"][-1]
    assert len(pieces) > 2 and len(ids) == 1
    assert "".join(pieces) == final.content
    # The trace shows the model call as a child run named after the model that answered.
    model = final.response_metadata["model_name"]
    [child] = [c for c in recorder.chains if "litellm_model" in (c["metadata"] or {})]
    assert child["name"] == model
    assert child["parent"] in recorder.chat_runs
    assert child["outputs"]["model"] == model


def fanout_graph(llm: RoutedChatModel, **kwargs: Any) -> Any:
    fan_out, work, pick = create_fanout_nodes(llm, **kwargs)
    builder = StateGraph(FanOutState)
    builder.add_node("fan_out", fan_out, destinations=("routed_call",))
    builder.add_node("routed_call", work)
    builder.add_node("aggregate", pick)
    builder.add_edge(START, "fan_out")
    builder.add_edge("routed_call", "aggregate")
    builder.add_edge("aggregate", END)
    return builder.compile(checkpointer=InMemorySaver())


def test_fanout_keeps_the_answer_with_the_best_predicted_quality(
    llm: RoutedChatModel, router: Any, prompts: list[str]
) -> None:
    graph = fanout_graph(llm, k=3)
    config = {"configurable": {"thread_id": "fan"}}
    for turn, prompt in enumerate(prompts[:2]):
        state = graph.invoke({"messages": [HumanMessage(prompt)]}, config)
        decision = router.route(prompt)
        top = list(decision.ranked[:3])
        assert sorted(c["model"] for c in state["candidates"]) == sorted(top)
        best = max(top, key=lambda m: (decision.quality[m], -decision.cost[m]))
        fanout = state["routing"]["fanout"]
        assert fanout == {"candidates": top, "chosen": best, "by": "quality"}
        # The candidates are the core's fan-out plan, recorded with the decision.
        plan = router.route(prompt, policy=FanOutPolicy(k=3)).plan
        assert state["routing"]["plan"] == plan.to_dict()
        assert plan.models == tuple(top)
        assert state["messages"][-1].content == kit.recorded(prompt, best)[0]
        # Candidates are reset at each fan-out; history grows by one answer per turn.
        assert len(state["candidates"]) == 3
        assert len(state["messages"]) == 2 * (turn + 1)


def test_fanout_with_a_judge(llm: RoutedChatModel, router: Any, prompts: list[str]) -> None:
    # The judge is a fake chat model that always prefers the third answer.
    judge = GenericFakeChatModel(messages=iter(["Answer 3 is best."] * 4))
    graph = fanout_graph(llm, k=3, aggregate="judge", judge=judge)
    prompt = prompts[3]
    config = {"configurable": {"thread_id": "judge"}}
    chunks = [
        m
        for m, _ in graph.stream(
            {"messages": [HumanMessage(prompt)]}, config, stream_mode="messages"
        )
    ]
    state = graph.get_state(config).values
    third = router.route(prompt).ranked[2]
    assert state["routing"]["fanout"]["chosen"] == third
    assert state["routing"]["fanout"]["by"] == "judge"
    assert state["messages"][-1].content == kit.recorded(prompt, third)[0]
    # Only the kept answer streams (once the judge has chosen it); the verdict does not.
    assert not any("Answer 3 is best" in m.text for m in chunks)
    assert [m.text for m in chunks] == [kit.recorded(prompt, third)[0]]
    with pytest.raises(ValueError, match="judge"):
        create_fanout_nodes(llm, aggregate="judge")


def test_fanout_keeping_the_first_answer_to_arrive(
    llm: RoutedChatModel, router: Any, prompts: list[str]
) -> None:
    graph = fanout_graph(llm, k=2, aggregate="first")
    state = graph.invoke(
        {"messages": [HumanMessage(prompts[5])]}, {"configurable": {"thread_id": "first"}}
    )
    first = min(state["candidates"], key=lambda c: c["arrived"])
    assert state["routing"]["plan"]["aggregate"] == "first"
    assert state["routing"]["fanout"] == {
        "candidates": list(router.route(prompts[5]).ranked[:2]),
        "chosen": first["model"],
        "by": "first",
    }
    assert state["messages"][-1].content == kit.recorded(prompts[5], first["model"])[0]
    with pytest.raises(ValueError, match="k must be"):
        create_fanout_nodes(llm, k=0)
    with pytest.raises(ValueError, match="aggregate"):
        create_fanout_nodes(llm, aggregate="vote")  # type: ignore[arg-type]


def test_fanout_runs_async(llm: RoutedChatModel, router: Any, prompts: list[str]) -> None:
    graph = fanout_graph(llm, k=2)
    state = asyncio.run(
        graph.ainvoke(
            {"messages": [HumanMessage(prompts[4])]}, {"configurable": {"thread_id": "async"}}
        )
    )
    assert sorted(state["routing"]["fanout"]["candidates"]) == sorted(
        router.route(prompts[4]).ranked[:2]
    )
    assert (
        state["messages"][-1].content
        == kit.recorded(prompts[4], state["routing"]["fanout"]["chosen"])[0]
    )
