"""A routed LLM in LlamaIndex, offline: RouterBench's recorded answers stand in for the models.

A kNN router trained on part of RouterBench becomes LlamaIndex's ``Settings.llm``. Each call
goes to the model the router picks for the prompt; the ``replay`` provider answers with the
response that model really gave, at its recorded cost. The response says which model
answered, what it cost and why it was chosen. The cost weight (lambda, quality per USD) moves
the choice between cheap and strong models.

Run (from the repository root, with the real data next to it):
    LLMROUTER_DATA_DIR=../shared/data python examples/llamaindex_routed_llm.py
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
from llama_index.core import Settings
from llama_index.core.llms import ChatMessage
from llama_index.llms.llmrouter import RoutedLLM

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.providers.replay import replay_pool, set_replay_data


def main(n_questions: int = 4, n_train: int = 400) -> list[dict]:
    """Ask ``n_questions`` RouterBench test prompts at two cost weights; return one row each."""
    train, test = load_split("routerbench")
    set_replay_data(lr.RoutingData.concat([train, test]))
    rows = np.random.default_rng(0).choice(train.n_queries, n_train, replace=False)
    router = lr.get_router("knn", n_neighbors=10, blend=1.0).fit(train.subset(np.sort(rows)))
    pool = replay_pool(router.pool_)

    Settings.llm = RoutedLLM(router, pool=pool, cost_weight=20.0)
    meta = Settings.llm.metadata
    print(
        f"{meta.model_name}: context window {meta.context_window}, function calling "
        f"{meta.is_function_calling_model}"
    )
    out = []
    for weight in (0.0, 2000.0):  # quality first, then thrifty
        llm = RoutedLLM(router, pool=pool, cost_weight=weight)
        for row in range(n_questions):
            response = llm.complete(test.queries[row])
            info = response.additional_kwargs
            out.append(
                {
                    "cost_weight": weight,
                    "task": test.tasks[row],
                    "model": info["model"],
                    "cost": info["cost"],
                    "answer": response.text,
                    "predicted_cost": info["decision"]["cost"][info["model"]],
                }
            )
            print(
                f"lambda={weight:<6g} {test.tasks[row]:>14}  {info['model']:<34} "
                f"${info['cost']:.6f}  {response.text[:40]!r}"
            )

    # Streaming and chat go through the same router.
    pieces = list(Settings.llm.stream_chat([ChatMessage(role="user", content=test.queries[0])]))
    print(f"streamed {len(pieces)} pieces from {pieces[-1].additional_kwargs['model']}")
    return out


if __name__ == "__main__":
    main()
