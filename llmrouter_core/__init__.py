"""llmrouter-core: route each LLM request to the right model of a pool.

The public surface is small and lazy: importing the package loads numpy only; routers,
loaders and the execution layer load on first use.

Example:
    >>> import llmrouter_core as lr
    >>> sorted(r.name for r in lr.list_routers())[:3]
    ['auto', 'cheapest', 'knn']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "BudgetPolicy": "llmrouter_core.policy",
    "CostWeightPolicy": "llmrouter_core.policy",
    "DataError": "llmrouter_core.errors",
    "Decision": "llmrouter_core.decision",
    "LLMRouterError": "llmrouter_core.errors",
    "MissingExtraError": "llmrouter_core.errors",
    "ModelSpec": "llmrouter_core.pool",
    "NotFittedError": "llmrouter_core.errors",
    "PersistenceError": "llmrouter_core.errors",
    "Pool": "llmrouter_core.pool",
    "Router": "llmrouter_core.routers.base",
    "RoutingData": "llmrouter_core.data.core",
    "ThresholdPolicy": "llmrouter_core.policy",
    "UnknownModelError": "llmrouter_core.errors",
    "UnknownRouterError": "llmrouter_core.errors",
    "get_router": "llmrouter_core.routers.registry",
    "list_routers": "llmrouter_core.routers.registry",
    "load_data": "llmrouter_core.data",
    "load_dataset": "llmrouter_core.data",
    "load_router": "llmrouter_core.routers.persistence",
    "register_router": "llmrouter_core.routers.registry",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrouter_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from llmrouter_core.data import load_data, load_dataset
    from llmrouter_core.data.core import RoutingData
    from llmrouter_core.decision import Decision
    from llmrouter_core.errors import (
        DataError,
        LLMRouterError,
        MissingExtraError,
        NotFittedError,
        PersistenceError,
        UnknownModelError,
        UnknownRouterError,
    )
    from llmrouter_core.policy import BudgetPolicy, CostWeightPolicy, ThresholdPolicy
    from llmrouter_core.pool import ModelSpec, Pool
    from llmrouter_core.routers.base import Router
    from llmrouter_core.routers.persistence import load_router
    from llmrouter_core.routers.registry import get_router, list_routers, register_router
