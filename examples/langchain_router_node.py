"""Add a router node to an existing LangGraph graph.

The existing graph answers every question with its strong model::

    START -> strong -> END            (a "fast" node exists but is never used)

The change is one node and two edges: a router node in front sends each question to the
node of the model a trained router picks, and records its decision in the state::

    START -> route -> strong | fast -> END

Runs offline on real data: the router is a logistic-regression router trained on RouterBench
outcomes of gpt-4-1106-preview and mixtral-8x7b-chat; the models answer with the responses
they really gave to RouterBench's test questions (the ``replay`` provider), at their recorded
cost, and each answer is scored with RouterBench's own label for it. The knob is set in its
budget form: a target mean cost per question.

Usage:
    python examples/langchain_router_node.py [--questions 200] [--train N] [--target-cost 0.002]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
from langchain_core.messages import HumanMessage
from langchain_llmrouter import (
    RoutedChatModel,
    RouterState,
    create_model_node,
    create_router_node,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.providers.replay import replay_pool, set_replay_data

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO.parent / "shared" / "data"))
STRONG, FAST = "gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"


def existing_graph(llm: RoutedChatModel, *, with_router: bool) -> Any:
    builder = StateGraph(RouterState)
    builder.add_node("strong", create_model_node(llm, STRONG))
    builder.add_node("fast", create_model_node(llm, FAST))
    builder.add_edge("strong", END)
    builder.add_edge("fast", END)
    if with_router:
        routes = {STRONG: "strong", FAST: "fast"}
        builder.add_node("route", create_router_node(llm, routes), destinations=("strong", "fast"))
        builder.add_edge(START, "route")
    else:
        builder.add_edge(START, "strong")
    return builder.compile(checkpointer=InMemorySaver())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument(
        "--train", type=int, default=0, help="training questions (default: the whole train split)"
    )
    parser.add_argument(
        "--target-cost",
        type=float,
        default=0.002,
        help="target mean USD per question (the router's knob)",
    )
    args = parser.parse_args(argv)

    train, test = load_split("routerbench", data_dir=DATA_DIR)
    if args.train:
        train = train.subset(np.arange(min(args.train, train.n_queries)))
    router = lr.get_router("logistic").fit(train.select_models([STRONG, FAST]))
    test = test.select_models([STRONG, FAST])
    set_replay_data(test)
    cost_weight = router.cost_weight_for_budget(args.target_cost)
    llm = RoutedChatModel(router=router, pool=replay_pool(router.pool_), cost_weight=cost_weight)
    rng = np.random.default_rng(0)
    rows = rng.choice(test.n_queries, size=min(args.questions, test.n_queries), replace=False)

    results: dict[str, Any] = {"cost_weight": cost_weight}
    for name, graph in (
        ("existing", existing_graph(llm, with_router=False)),
        ("routed", existing_graph(llm, with_router=True)),
    ):
        score = cost = 0.0
        picks: dict[str, int] = {}
        for i in rows:
            state = graph.invoke(
                {"messages": [HumanMessage(test.queries[i])]},
                {"configurable": {"thread_id": f"{name}-{i}"}},
            )
            meta = state["messages"][-1].response_metadata
            model = meta["model_name"]
            picks[model] = picks.get(model, 0) + 1
            score += float(test.scores[i, test.models.index(model)])
            cost += meta["cost"]
        n = len(rows)
        results[name] = {
            "accuracy": score / n,
            "cost_per_question": cost / n,
            "answers_by_model": picks,
        }
        print(
            f"{name:>8}: accuracy {score / n:.3f}, ${cost / n:.5f} per question, "
            f"answered by {picks}"
        )
    saved = 1 - results["routed"]["cost_per_question"] / results["existing"]["cost_per_question"]
    print(
        f"the router node saves {saved:.0%} of the cost (cost weight {cost_weight:.3g}, "
        f"target ${args.target_cost}/question)"
    )
    return results


if __name__ == "__main__":
    main()
