"""Helpers of the flow tests."""

from __future__ import annotations

from llmrouter_core.data import RoutingData


def recorded(data: RoutingData, row: int, model: str) -> tuple[str, float]:
    """The recorded answer and cost of ``model`` on ``row``."""
    j = data.model_index(model)
    assert data.responses is not None and data.costs is not None
    return str(data.responses[row, j]), float(data.costs[row, j])
