"""A cost-capped agent: a hard budget in USD that the agent's model calls cannot pass.

``RoutedChatModel(budget=...)`` shares one spend limit across every call. Before a call, the
executor reserves the call's cost bound and leaves out the models whose bound no longer fits
what is left, so as the budget runs down the router's choice shifts to cheaper models; when
no model fits, the call raises ``BudgetExceededError`` before anything is spent. The total
never passes the limit, also under concurrency.

Runs offline on real data: a ``create_agent`` agent answers RouterBench test questions; the
router is a kNN router trained on RouterBench; the models answer with the responses they
really gave (the ``replay`` provider), at their recorded cost, and each answer is scored with
RouterBench's own label. It runs twice: quality first until the money runs out, and with
the router's knob set in its budget form so the budget lasts for every question.

Usage:
    python examples/langchain_budget_agent.py [--budget 0.03] [--questions 40]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_llmrouter import RoutedChatModel

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.execution import Budget, BudgetExceededError
from llmrouter_core.providers.replay import replay_pool, set_replay_data

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO.parent / "shared" / "data"))


def run(router: Any, test: Any, rows: Any, limit: float, cost_weight: float) -> dict[str, Any]:
    """Answer ``rows`` of ``test`` with an agent under a ``limit`` USD budget."""
    budget = Budget(limit, name="agent")
    llm = RoutedChatModel(
        router=router, pool=replay_pool(router.pool_), budget=budget, cost_weight=cost_weight
    )
    agent = create_agent(llm)
    answered: list[dict[str, Any]] = []
    stopped = None
    for i in rows:
        try:
            state = agent.invoke({"messages": [HumanMessage(test.queries[i])]})
        except BudgetExceededError as exc:
            stopped = str(exc)
            break
        meta = state["messages"][-1].response_metadata
        model = meta["model_name"]
        answered.append(
            {
                "model": model,
                "cost": meta["cost"],
                "score": float(test.scores[i, test.models.index(model)]),
                "remaining": budget.remaining,
            }
        )
    spent = sum(a["cost"] for a in answered)
    score = sum(a["score"] for a in answered)
    models: dict[str, int] = {}
    for a in answered:
        models[a["model"]] = models.get(a["model"], 0) + 1
    print(
        f"cost weight {cost_weight:<8.3g} answered {len(answered):>3} of {len(rows)}, "
        f"{score:.0f} correct, spent ${spent:.5f} of ${limit}; models {models}"
    )
    if stopped:
        print(f"  stopped: {stopped[:150]}...")
    return {
        "cost_weight": cost_weight,
        "answered": answered,
        "spent": spent,
        "budget_spent": budget.spent,
        "correct": score,
        "stopped": stopped,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.03, help="USD for the whole run")
    parser.add_argument("--questions", type=int, default=40)
    args = parser.parse_args(argv)

    train, test = load_split("routerbench", data_dir=DATA_DIR)
    router = lr.get_router("knn", n_neighbors=10).fit(train.subset(np.arange(600)))
    set_replay_data(test)
    rng = np.random.default_rng(1)
    rows = rng.choice(test.n_queries, size=min(args.questions, test.n_queries), replace=False)
    # Quality first until the budget runs out, vs the knob in its budget form: the cost
    # weight whose mean predicted cost spreads the budget over all the questions.
    paced = router.cost_weight_for_budget(args.budget / len(rows))
    return {
        "budget": args.budget,
        "questions": len(rows),
        "quality_first": run(router, test, rows, args.budget, 0.0),
        "paced": run(router, test, rows, args.budget, paced),
    }


if __name__ == "__main__":
    main()
