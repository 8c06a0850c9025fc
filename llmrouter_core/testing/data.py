"""Small synthetic routing data for checks and users' own tests (no files, no network)."""

from __future__ import annotations

import numpy as np

from llmrouter_core.data.core import RoutingData

__all__ = ["make_routing_data"]

_TASKS = {
    "math": (
        "What is {a} plus {b}? Add the two numbers and give the sum.",
        "Compute {a} times {b} and report the product as an integer.",
        "A train travels {a} km in {b} hours. What is its average speed?",
    ),
    "code": (
        "Write a Python function that returns the {a}th Fibonacci number.",
        "Implement a function that sorts a list of {a} integers without sorted().",
        "Fix the bug in this loop: for i in range({a}): total += i / {b}",
    ),
    "trivia": (
        "Which river flows through the capital city number {a} on the list?",
        "Who wrote the novel that was published in the year 18{a}?",
        "Name the chemical element with atomic number {a}.",
    ),
}
# Accuracy of each model on each task (a cheap generalist, a math and a code specialist, a
# strong expensive model, and an exact copy of the first to check that ties get equal credit).
_SKILL = np.array(
    [
        [0.55, 0.30, 0.70],
        [0.90, 0.35, 0.50],
        [0.40, 0.85, 0.45],
        [0.92, 0.90, 0.88],
    ]
)
_PRICE = np.array([0.0002, 0.0006, 0.0008, 0.004])


def make_routing_data(n_queries: int = 240, *, random_state: int = 0) -> RoutingData:
    """A routing dataset of three tasks and five models with real structure: which model is
    best depends on the task, which the query's words tell; costs grow with the query's
    length and the model's price; ``model-copy`` scores and costs exactly like
    ``generalist`` (a tie every router must treat as one).

    Example:
        >>> data = make_routing_data(30)
        >>> data.n_queries, data.models[:2]
        (30, ['generalist', 'math-expert'])
    """
    rng = np.random.default_rng(random_state)
    names = list(_TASKS)
    queries, tasks = [], []
    for i in range(n_queries):
        task = names[i % len(names)]
        template = _TASKS[task][int(rng.integers(len(_TASKS[task])))]
        text = template.format(a=int(rng.integers(2, 99)), b=int(rng.integers(2, 99)))
        queries.append(f"{text} (item {i})")
        tasks.append(task)
    rows = np.array([names.index(t) for t in tasks])
    p = _SKILL[:, rows].T  # (n, 4)
    scores = (rng.random(p.shape) < p).astype(np.float64)
    length = np.array([len(q) for q in queries], dtype=np.float64)
    costs = _PRICE[None, :] * (0.5 + length[:, None] / 100.0)
    scores = np.hstack([scores, scores[:, [0]]])
    costs = np.hstack([costs, costs[:, [0]]])
    return RoutingData(
        query_ids=[f"q{i}" for i in range(n_queries)],
        queries=queries,
        models=["generalist", "math-expert", "code-expert", "frontier", "model-copy"],
        scores=scores,
        costs=costs,
        tasks=tasks,
        name="synthetic",
    )
