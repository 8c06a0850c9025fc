"""A fitted router with fixed predictions, for tests of code that routes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from llmrouter_core.data.core import RoutingData
from llmrouter_core.pool import Pool
from llmrouter_core.router import Router

__all__ = ["dummy_router"]


def dummy_router(
    quality: Mapping[str, float], cost: Mapping[str, float], pool: Pool | None = None
) -> Router:
    """A fitted router that predicts ``quality[m]`` and ``cost[m]`` (USD) for model ``m`` on
    every query; the knob, budgets, policies and saving work as for any router.

    Example:
        >>> r = dummy_router({"small": 0.6, "large": 0.9}, {"small": 0.001, "large": 0.01})
        >>> r.route("hi").model, r.route("hi", cost_weight=100).model
        ('large', 'small')
    """
    models = list(quality)
    if set(cost) != set(models):
        raise ValueError("give a quality and a cost for the same models")
    q = np.array([float(quality[m]) for m in models])
    if not np.all((q >= 0) & (q <= 1)):
        raise ValueError("quality must lie in [0, 1]")
    # Two rows whose mean is exactly the given quality (scores of 0 and 1 around it).
    scores = np.vstack([q, q])
    costs = np.tile([float(cost[m]) for m in models], (2, 1))
    data = RoutingData(
        query_ids=["a", "b"],
        queries=["first example query", "second example query"],
        models=models,
        scores=scores,
        costs=costs,
        name="dummy",
    )
    router = Router("prior", cost_model="mean", blend=1.0)
    router.name = "single"
    return router.fit(data, pool)
