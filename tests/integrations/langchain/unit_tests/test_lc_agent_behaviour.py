"""Inside real agents and graphs: a call with tools answered without a tool call is flagged
(a warning on the result, an error in strict mode), and a fan-out under
``stream_mode="messages"`` shows only the answer it keeps unless asked to stream every
candidate, tagged. Real kNN router (RouterBench), real recorded answers (replay)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import lc_testkit as kit
import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_llmrouter import FanOutState, RoutedChatModel, create_fanout_nodes
from langchain_llmrouter.graph import CANDIDATE_TAG
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from llmrouter_core.errors import MissingToolCallError
from llmrouter_core.integration import ToolCallWarning
from llmrouter_core.pool import Pool


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


class Answer(BaseModel):
    """The answer to the question."""

    answer: str


@pytest.fixture(scope="module")
def declared_tools(replay: Any) -> Pool:
    """The replay pool with every model declared tool-capable (replay answers text only)."""
    return Pool(dataclasses.replace(s, supports_tools=True) for s in replay)


@pytest.fixture(scope="module")
def prompt(rb_test: Any) -> str:
    return str(rb_test.queries[10])


def test_tools_answered_without_a_tool_call_warn(
    router: Any, declared_tools: Pool, prompt: str
) -> None:
    llm = RoutedChatModel(router=router, pool=declared_tools)
    with pytest.warns(ToolCallWarning, match="answered without calling a tool"):
        message = llm.bind_tools([get_weather]).invoke(prompt)
    assert not message.tool_calls
    assert message.content == kit.recorded(prompt, message.response_metadata["model_name"])[0]
    [warning] = message.response_metadata["warnings"]
    assert "replay/ models answer with text only" in warning
    # streamed: the last chunk carries it too
    with pytest.warns(ToolCallWarning):
        chunks = list(llm.bind_tools([get_weather]).stream(prompt))
    assert chunks[-1].response_metadata["warnings"] == [warning]


def test_structured_output_without_a_tool_call_is_not_silent(
    router: Any, declared_tools: Pool, prompt: str
) -> None:
    llm = RoutedChatModel(router=router, pool=declared_tools)
    with pytest.warns(ToolCallWarning, match="answered without calling a tool"):
        assert llm.with_structured_output(Answer).invoke(prompt) is None
    strict = RoutedChatModel(router=router, pool=declared_tools, strict_tool_calls=True)
    with pytest.raises(MissingToolCallError, match="answered without calling a tool"):
        strict.with_structured_output(Answer).invoke(prompt)
    with pytest.raises(MissingToolCallError):
        strict.bind_tools([get_weather]).invoke(prompt)


def test_a_tool_call_or_a_free_answer_raises_no_warning(
    router: Any, tool_pool: Pool, rb_test: Any
) -> None:
    llm = RoutedChatModel(router=router, pool=tool_pool, strict_tool_calls=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ToolCallWarning)
        message = llm.bind_tools([get_weather]).invoke("What is the weather in Lisbon?")
        assert message.tool_calls and message.tool_calls[0]["args"] == {"city": "Lisbon"}
        assert message.response_metadata["warnings"] == []
        # without tools, text is the answer: nothing to flag
        plain = llm.invoke(str(rb_test.queries[10]))
        assert plain.response_metadata["warnings"] == []


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


def test_fanout_streams_only_the_kept_answer(router: Any, replay: Any, prompt: str) -> None:
    llm = RoutedChatModel(router=router, pool=replay)
    graph = fanout_graph(llm, k=3)
    config = {"configurable": {"thread_id": "kept"}}
    streamed = list(
        graph.stream({"messages": [HumanMessage(prompt)]}, config, stream_mode="messages")
    )
    state = graph.get_state(config).values
    chosen = state["routing"]["fanout"]["chosen"]
    assert len(state["routing"]["fanout"]["candidates"]) == 3
    assert [m.text for m, _ in streamed] == [kit.recorded(prompt, chosen)[0]]
    assert {meta["langgraph_node"] for _, meta in streamed} == {"aggregate"}


def test_fanout_can_stream_tagged_candidates(router: Any, replay: Any, prompt: str) -> None:
    llm = RoutedChatModel(router=router, pool=replay)
    graph = fanout_graph(llm, k=3, stream_candidates=True)
    config = {"configurable": {"thread_id": "tagged"}}
    streamed = list(
        graph.stream({"messages": [HumanMessage(prompt)]}, config, stream_mode="messages")
    )
    state = graph.get_state(config).values
    candidates = state["routing"]["fanout"]["candidates"]
    by_model: dict[str, str] = {}
    for message, meta in streamed:
        tags = meta.get("tags") or []
        assert CANDIDATE_TAG in tags
        [name] = [t.removeprefix("candidate:") for t in tags if t.startswith("candidate:")]
        by_model[name] = by_model.get(name, "") + message.text
    assert sorted(by_model) == sorted(candidates)
    for name, text in by_model.items():
        assert text == kit.recorded(prompt, name)[0]
