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
    """A question whose routed model's recorded answer is long enough to stream in pieces."""
    found = [q for q in data.queries if len(recorded(data, q, router.route(q).model)[0]) > 200]
    assert len(found) > skip
    return found[skip]
