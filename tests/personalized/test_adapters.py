"""Naming the user from each framework (LangChain's ``configurable`` / metadata, LangGraph's
config, LlamaIndex and DSPy call arguments) and one-call feedback, answered offline from
RouterBench's recorded responses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llmrouter_core.providers.replay import replay_pool, set_replay_data

CHEAP = "mistralai/mistral-7b-chat"


@pytest.fixture()
def taught(router: Any, rb_small: Any, frugal: Any) -> Iterator[tuple[Any, Any, str]]:
    """The router with a frugal user's feedback, a replay pool, and a query on which the
    user's choice differs from everyone else's."""
    train, test = rb_small
    frugal(router, "frugal", train.queries, 25)
    query = next(
        q for q in test.queries if router.route(q, user="frugal").model != router.route(q).model
    )
    set_replay_data(test)
    try:
        yield router, replay_pool(router.pool_), query
    finally:
        set_replay_data(None)


def test_langchain_reads_the_user_and_takes_feedback_in_one_call(
    taught: tuple[Any, Any, str], base: Any
) -> None:
    from langchain_llmrouter import RoutedChatModel

    router, pool, query = taught
    mine, theirs = router.route(query, user="frugal").model, router.route(query).model
    llm = RoutedChatModel(router=router, pool=pool)
    by_config = llm.invoke(query, config={"configurable": {"user_id": "frugal"}})
    assert by_config.response_metadata["model_name"] == mine
    by_metadata = llm.invoke(query, config={"metadata": {"user_id": "frugal"}})
    assert by_metadata.response_metadata["model_name"] == mine
    assert llm.invoke(query, user="frugal").response_metadata["model_name"] == mine
    assert llm.invoke(query).response_metadata["model_name"] == theirs
    before = router.feedback_store.count("frugal")
    event = llm.feedback(by_config, rating=0.25)
    assert (event.user, event.query, event.model, event.rating) == ("frugal", query, mine, 0.25)
    assert router.feedback_store.count("frugal") == before + 1
    with pytest.raises(TypeError, match="personalized"):
        RoutedChatModel(router=base, pool=pool).feedback(by_config, rating=1.0)


def test_langgraph_passes_the_user_from_the_graph_config(taught: tuple[Any, Any, str]) -> None:
    from langchain_llmrouter import RoutedChatModel
    from langgraph.graph import START, MessagesState, StateGraph

    router, pool, query = taught
    llm = RoutedChatModel(router=router, pool=pool)

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    app = graph.compile()
    out = app.invoke(
        {"messages": [("user", query)]}, config={"configurable": {"user_id": "frugal"}}
    )
    last = out["messages"][-1]
    assert last.response_metadata["model_name"] == router.route(query, user="frugal").model
    event = llm.feedback(last, preferred_over=router.route(query).model)
    assert event.user == "frugal" and event.query == query


def test_llamaindex_routes_for_the_user(taught: tuple[Any, Any, str]) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.llmrouter import RoutedLLM

    router, pool, query = taught
    mine = router.route(query, user="frugal").model
    llm = RoutedLLM(router, pool=pool, user="frugal")
    response = llm.chat([ChatMessage(role="user", content=query)])
    assert response.additional_kwargs["model"] == mine
    anyone = RoutedLLM(router, pool=pool).complete(query)
    assert anyone.additional_kwargs["model"] == router.route(query).model
    per_call = RoutedLLM(router, pool=pool).chat(
        [ChatMessage(role="user", content=query)], user="frugal"
    )
    assert per_call.additional_kwargs["model"] == mine
    event = llm.feedback(response, query, rating=0.5)
    assert (event.user, event.model) == ("frugal", mine)


def test_dspy_routes_for_the_user(taught: tuple[Any, Any, str]) -> None:
    from dspy_llmrouter import RoutedLM

    router, pool, query = taught
    mine = router.route(query, user="frugal").model
    lm = RoutedLM(router, pool=pool, user="frugal")
    assert lm.routing_deterministic is False  # answers depend on feedback: not cached
    lm(query)
    assert lm.history[-1]["response_model"] == mine
    other = lm.copy(user="someone")
    other(query)
    assert other.history[-1]["response_model"] == router.route(query).model
    event = lm.feedback(rating=0.75)
    assert (event.user, event.query, event.model) == ("frugal", query, mine)
