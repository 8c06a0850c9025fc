"""RoutingMiddleware in a ``create_agent`` agent: a real kNN router (RouterBench) routes each
model call; tool-capable models are served by the scripted stand-in (rule-based, not a
language model), the others by replay."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_llmrouter import RoutedChatModel, RoutingMiddleware
from langgraph.checkpoint.memory import InMemorySaver

from llmrouter_core.execution._support import supports

QUESTION = "What is the weather in Paris today?"


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"It is sunny in {city}."


@pytest.fixture(scope="module")
def llm(router: Any, tool_pool: Any) -> RoutedChatModel:
    return RoutedChatModel(router=router, pool=tool_pool)


def tool_models(llm: RoutedChatModel) -> set[str]:
    ex = llm.executor
    return {m for m in ex.models if supports(ex._litellm, ex.pool[m], "tools")}


def best(router: Any, allowed: set[str], cost_weight: float) -> str:
    return next(m for m in router.route(QUESTION, cost_weight=cost_weight).ranked if m in allowed)


def test_planning_and_tool_result_steps_route_separately(llm: RoutedChatModel, router: Any) -> None:
    middleware = RoutingMiddleware(llm, cost_weights={"tool_result": math.inf})
    agent = create_agent(
        llm, tools=[get_weather], middleware=[middleware], checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "agent"}}
    state = agent.invoke({"messages": [HumanMessage(QUESTION)]}, config)
    allowed = tool_models(llm)
    plan, after_tool = best(router, allowed, 0.0), best(router, allowed, math.inf)
    assert plan != after_tool
    records = state["routing_decisions"]
    assert [r["step"] for r in records] == ["plan", "tool_result"]
    assert [r["model"] for r in records] == [plan, after_tool]
    # both calls are paid and known; the tool-result step went to the cheaper model
    assert records[0]["cost"] > 0 and records[1]["cost"] > 0
    pool = llm.executor.pool
    assert pool[after_tool].estimate_cost(1000, 100) < pool[plan].estimate_cost(1000, 100)
    kinds = [type(m).__name__ for m in state["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    call = state["messages"][1]
    assert call.tool_calls[0]["name"] == "get_weather"
    assert call.tool_calls[0]["args"] == {"city": "Paris"}
    assert state["messages"][2].content == "It is sunny in Paris."
    assert "It is sunny in Paris." in state["messages"][3].text
    # A second turn on the same thread appends two more records.
    state = agent.invoke({"messages": [HumanMessage(QUESTION)]}, config)
    assert len(state["routing_decisions"]) == 4


def test_agent_streams_messages_once_and_runs_async(llm: RoutedChatModel) -> None:
    agent = create_agent(
        llm, tools=[get_weather], middleware=[RoutingMiddleware(llm)], checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "stream"}}
    by_id: dict[str, str] = {}
    for message, _ in agent.stream(
        {"messages": [HumanMessage(QUESTION)]}, config, stream_mode="messages"
    ):
        if isinstance(message, AIMessageChunk):
            by_id[message.id or ""] = by_id.get(message.id or "", "") + message.text
        else:
            assert isinstance(message, ToolMessage)
    messages = agent.get_state(config).values["messages"]
    answers = [m for m in messages if isinstance(m, AIMessage)]
    assert len(by_id) == len(answers) == 2
    assert sorted(by_id.values()) == sorted(m.text for m in answers)

    state = asyncio.run(
        agent.ainvoke(
            {"messages": [HumanMessage(QUESTION)]}, {"configurable": {"thread_id": "async"}}
        )
    )
    assert [r["step"] for r in state["routing_decisions"]] == ["plan", "tool_result"]


def test_bad_step_name_is_rejected(llm: RoutedChatModel) -> None:
    with pytest.raises(ValueError, match="tool_result"):
        RoutingMiddleware(llm, cost_weights={"summary": 1.0})
