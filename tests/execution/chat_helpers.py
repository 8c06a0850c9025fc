"""Helpers of the chat tests: recorded RouterBench answers."""

from __future__ import annotations

from typing import Any

from llmrouter_core.data import RoutingData


def recorded(data: RoutingData, query: str, model: str) -> tuple[str, float]:
    i = data.queries.index(query)
    j = data.model_index(model)
    assert data.responses is not None and data.costs is not None
    return str(data.responses[i, j]), float(data.costs[i, j])


def wordy(data: RoutingData, router: Any, skip: int = 0) -> str:
    """A question whose routed model's recorded answer is long enough to stream in pieces
    (the ``skip``-th such question, in the data's order)."""
    assert data.responses is not None
    found: list[str] = []
    for i, q in enumerate(data.queries):
        # Cheap first: some model's answer must be long before the router is asked.
        if max(len(str(r)) for r in data.responses[i]) <= 200:
            continue
        if len(str(data.responses[i, data.model_index(router.route(q).model)])) > 200:
            found.append(q)
            if len(found) > skip:
                return q
    raise AssertionError(f"fewer than {skip + 1} questions with long recorded answers")
