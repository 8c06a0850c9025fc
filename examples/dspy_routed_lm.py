"""A routed language model in DSPy, offline: RouterBench's recorded answers stand in for the
models.

A kNN router is trained on part of RouterBench; ``RoutedLM`` makes it DSPy's language model.
Each call goes to the model the router picks for the prompt, and the ``replay`` provider
answers with the response that model really gave, at its recorded cost. DSPy's history and
``track_usage`` show which model answered and what it cost.

Run (from the repository root, with the real data next to it):
    LLMROUTER_DATA_DIR=../shared/data python examples/dspy_routed_lm.py
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy
import numpy as np
from dspy_llmrouter import RoutedLM
from dspy_llmrouter.recorded import RecordedOutcomes, RecordedPromptAdapter

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.providers.replay import replay_pool, set_replay_data


def main(n_questions: int = 6, cost_weight: float = 20.0, n_train: int = 400) -> list[dict]:
    """Answer ``n_questions`` RouterBench test prompts with a routed LM; return one row each."""
    train, test = load_split("routerbench")
    everything = lr.RoutingData.concat([train, test])
    set_replay_data(everything)  # replay/<model> answers with the recorded responses

    rows = np.random.default_rng(0).choice(train.n_queries, n_train, replace=False)
    router = lr.get_router("knn", n_neighbors=10, blend=1.0).fit(train.subset(np.sort(rows)))
    lm = RoutedLM(router, pool=replay_pool(router.pool_), cost_weight=cost_weight)
    dspy.configure(lm=lm, adapter=RecordedPromptAdapter())

    qa = dspy.Predict("prompt -> answer")
    scores = RecordedOutcomes(everything)
    out = []
    with dspy.track_usage() as usage:
        for row in range(n_questions):
            prompt = test.queries[row]
            answer = qa(prompt=prompt).answer
            entry = lm.history[-1]
            out.append(
                {
                    "task": test.tasks[row],
                    "model": entry["response_model"],
                    "cost": entry["cost"],
                    "score": scores.score(prompt, answer),
                    "answer": answer,
                }
            )
    for row in out:
        print(
            f"{row['task']:>14}  {row['model']:<34} ${row['cost']:.6f}  score {row['score']:.0f}"
            f"  {row['answer'][:40]!r}"
        )
    total = usage.get_total_tokens()[lm.model]
    print(
        f"total ${total['cost']:.6f} over {n_questions} calls; by model: "
        + ", ".join(f"{m} x{v['calls']}" for m, v in total["by_model"].items())
    )
    dspy.configure(lm=None, adapter=None)
    return out


if __name__ == "__main__":
    main()
