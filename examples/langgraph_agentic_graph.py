"""A LangGraph chat graph with a router node, a fan-out for the hard questions and a
checkpointer: the graph an agent user writes around a routed model.

    START -> route -> answer ---------------------------------> END   (a cheaper model)
                   -> fan_out -> routed_call (x2) -> aggregate -> END   (the strong model's
                                                                        questions: ask the 2
                                                                        best, keep one)

The router node records its decision in the state under ``routing``; the answer node calls
the model it chose. Questions the router sends to the strongest model go to a fan-out
instead: the two best-ranked models answer in parallel and the answer with the higher
predicted quality is kept. One thread (the checkpointer's ``thread_id``) holds the whole
conversation. With ``stream_mode="messages"`` a chat UI sees only the kept answer.

Runs offline on real data: a kNN router trained on RouterBench; the models answer with the
responses they really gave (the ``replay`` provider), at their recorded cost.

Usage:
    python examples/langgraph_agentic_graph.py [--questions 6] [--target-cost 0.002]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_llmrouter import (
    FanOutState,
    RoutedChatModel,
    create_fanout_nodes,
    create_router_node,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.providers.replay import replay_pool, set_replay_data

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO.parent / "shared" / "data"))
STRONG = "gpt-4-1106-preview"
MODELS = (STRONG, "zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat")


def build_graph(llm: RoutedChatModel) -> Any:
    """The graph: a router node, an answer node, and a fan-out for the strong model's turns."""

    def answer(state: FanOutState, config: RunnableConfig) -> dict[str, Any]:
        chosen = state["routing"]["model"]  # what the router node decided
        return {"messages": [llm.invoke(state["messages"], config, model=chosen)]}

    routes = {m: ("fan_out" if m == STRONG else "answer") for m in MODELS}
    fan_out, work, pick = create_fanout_nodes(llm, k=2)
    builder = StateGraph(FanOutState)
    builder.add_node("route", create_router_node(llm, routes), destinations=("answer", "fan_out"))
    builder.add_node("answer", answer)
    builder.add_node("fan_out", fan_out, destinations=("routed_call",))
    builder.add_node("routed_call", work)
    builder.add_node("aggregate", pick)
    builder.add_edge(START, "route")
    builder.add_edge("answer", END)
    builder.add_edge("routed_call", "aggregate")
    builder.add_edge("aggregate", END)
    return builder.compile(checkpointer=InMemorySaver())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--train", type=int, default=600, help="training questions")
    parser.add_argument(
        "--target-cost", type=float, default=0.002, help="target mean USD per question"
    )
    args = parser.parse_args(argv)

    train, test = load_split("routerbench", data_dir=DATA_DIR)
    train = train.subset(np.arange(min(args.train, train.n_queries))).select_models(list(MODELS))
    router = lr.get_router("knn").fit(train)
    set_replay_data(test)
    cost_weight = router.cost_weight_for_budget(args.target_cost)
    llm = RoutedChatModel(router=router, pool=replay_pool(router.pool_), cost_weight=cost_weight)
    graph = build_graph(llm)

    config: RunnableConfig = {"configurable": {"thread_id": "conversation"}}
    rng = np.random.default_rng(1)
    rows = []
    for i in rng.choice(test.n_queries, size=min(args.questions, test.n_queries), replace=False):
        question = test.queries[int(i)]
        state = graph.invoke({"messages": [HumanMessage(question)]}, config)
        reply = state["messages"][-1]
        fanout = state["routing"].get("fanout") if "plan" in state["routing"] else None
        row = {
            "question": question,
            "path": "fan_out" if fanout else "answer",
            "model": reply.response_metadata["model_name"],
            "candidates": fanout["candidates"] if fanout else [],
            "answer": reply.content,
            "cost": sum(c["message"].response_metadata["cost"] for c in state["candidates"])
            if fanout
            else reply.response_metadata["cost"],
        }
        rows.append(row)
        print(f"{row['path']:>8} -> {row['model']:<28} ${row['cost']:.5f}  {question[:50]!r}")
    history = graph.get_state(config).values["messages"]
    print(f"one thread, {len(history)} messages ({len(rows)} questions and their answers)")

    # Streamed as a chat UI sees it: only the kept answer, even after a fan-out.
    streamed = [
        (message.text, meta["langgraph_node"])
        for message, meta in graph.stream(
            {"messages": [HumanMessage(rows[0]["question"])]}, config, stream_mode="messages"
        )
    ]
    return {"cost_weight": cost_weight, "rows": rows, "history": history, "streamed": streamed}


if __name__ == "__main__":
    main()
