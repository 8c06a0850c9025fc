"""Composite questions from recorded routing data, to evaluate agentic flows offline.

A composite joins 2-3 recorded prompts of *different* tasks under ``### Part N`` headers;
each part is scored with its recorded label and costed with its recorded cost, so a flow run
on the replay pool (:mod:`llmrouter_core.providers.replay`) is measured without any new
model output.

Example:
    >>> import numpy as np
    >>> from llmrouter_core.data.core import RoutingData
    >>> d = RoutingData(query_ids=["a", "b"], queries=["2+2?", "Name a prime."],
    ...                 models=["m"], scores=np.array([[1.0], [0.0]]),
    ...                 costs=np.array([[0.1], [0.2]]), tasks=["math", "trivia"])
    >>> c = make_composites(d, 1, parts=(2,), seed=0)[0]
    >>> print(c.query)
    ### Part 1
    Name a prime.
    <BLANKLINE>
    ### Part 2
    2+2?
    >>> single_outcome(d, c, "m")
    (0.5, 0.30000000000000004)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError
from llmrouter_core.flows.decompose import _HEADER
from llmrouter_core.flows.steps import FlowResult

__all__ = ["Composite", "composite_text", "flow_outcome", "make_composites", "single_outcome"]


@dataclass(frozen=True, slots=True)
class Composite:
    """A composite question.

    Attributes:
        query: The parts under ``### Part N`` headers.
        rows: The data row of each part, in order.
    """

    query: str
    rows: tuple[int, ...]


def composite_text(prompts: Sequence[str]) -> str:
    """``prompts`` under ``### Part N`` headers."""
    return "\n\n".join(f"### Part {i}\n{p.strip()}" for i, p in enumerate(prompts, start=1))


def make_composites(
    data: RoutingData, n: int, *, parts: Sequence[int] = (2, 3), seed: int = 0
) -> list[Composite]:
    """``n`` composites of ``k`` parts (``k`` drawn from ``parts``), each part a prompt of
    a different task (prompts that hold a ``### Part`` header line themselves are skipped).

    Raises:
        DataError: The data has no tasks, or fewer tasks than a composite needs.
    """
    if data.tasks is None:
        raise DataError("composites need the data's tasks")
    by_task: dict[str, list[int]] = {}
    for i, (task, query) in enumerate(zip(data.tasks, data.queries, strict=True)):
        if _HEADER.search(query) is None and query.strip():
            by_task.setdefault(task, []).append(i)
    tasks = sorted(by_task)
    if not parts or max(parts) > len(tasks) or min(parts) < 1:
        raise DataError(f"composites of {list(parts)} parts need as many tasks; data has {tasks}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.choice(list(parts)))
        chosen = rng.choice(len(tasks), size=k, replace=False)
        rows = tuple(int(rng.choice(by_task[tasks[t]])) for t in chosen)
        out.append(Composite(composite_text([data.queries[r] for r in rows]), rows))
    return out


def _require_costs(data: RoutingData) -> np.ndarray:
    if data.costs is None:
        raise DataError("composite outcomes need recorded costs")
    return data.costs


def single_outcome(data: RoutingData, composite: Composite, model: str) -> tuple[float, float]:
    """``(mean recorded score, summed recorded cost)`` of ``model`` answering every part."""
    j = data.model_index(model)
    rows = list(composite.rows)
    costs = _require_costs(data)
    return float(np.mean(data.scores[rows, j])), float(np.sum(costs[rows, j]))


def flow_outcome(
    data: RoutingData, composite: Composite, result: FlowResult
) -> tuple[float, float]:
    """``(mean recorded score, recorded cost)`` of an agentic flow's answers to the parts:
    each part scored with the recorded label of the model that answered it (0 if none did),
    costed with the recorded cost of every call of a part."""
    costs = _require_costs(data)
    scores = [0.0] * len(composite.rows)
    spent = 0.0
    for step in result.steps:
        if step.role != "call" or step.part is None or step.error is not None:
            continue
        row, j = composite.rows[step.part], data.model_index(str(step.model))
        scores[step.part] = float(data.scores[row, j])
        spent += float(costs[row, j])
    return float(np.mean(scores)), spent
