"""llmrouter-core: route each LLM request to the right model of a pool.

Every router is one :class:`Router`: an embedder, a *scorer* that predicts each pool model's
quality (:mod:`llmrouter_core.scoring`), a cost model, and a *policy* that turns predictions
into a decision (:mod:`llmrouter_core.policy`). Registered names (``"auto"``, ``"knn"``,
``"mf"``, ...) are configured compositions; :func:`make_router` composes any other, with any
scikit-learn regressor as the scorer.

The public surface is small and lazy: importing the package loads numpy only; routers,
loaders and the execution layer load on first use.

Example:
    >>> import llmrouter_core as lr
    >>> sorted(r.name for r in lr.list_routers())[:3]
    ['auto', 'bandit', 'carrot']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    "BudgetPolicy": "llmrouter_core.policy",
    "CascadePlan": "llmrouter_core.decision",
    "CascadePolicy": "llmrouter_core.policy",
    "Composition": "llmrouter_core.registry",
    "CostWeightPolicy": "llmrouter_core.policy",
    "DataError": "llmrouter_core.errors",
    "Decision": "llmrouter_core.decision",
    "FanOutPlan": "llmrouter_core.decision",
    "FanOutPolicy": "llmrouter_core.policy",
    "LLMRouterError": "llmrouter_core.errors",
    "MissingExtraError": "llmrouter_core.errors",
    "ModelSpec": "llmrouter_core.pool",
    "NotFittedError": "llmrouter_core.errors",
    "PersistenceError": "llmrouter_core.errors",
    "Policy": "llmrouter_core.policy",
    "Pool": "llmrouter_core.pool",
    "Router": "llmrouter_core.router",
    "RoutingData": "llmrouter_core.data.core",
    "Scorer": "llmrouter_core.scoring",
    "ThresholdPolicy": "llmrouter_core.policy",
    "UnknownModelError": "llmrouter_core.errors",
    "UnknownRouterError": "llmrouter_core.errors",
    "UtilityPolicy": "llmrouter_core.policy",
    "get_router": "llmrouter_core.registry",
    "list_routers": "llmrouter_core.registry",
    "load_data": "llmrouter_core.data",
    "load_dataset": "llmrouter_core.data",
    "load_router": "llmrouter_core.persistence",
    "make_router": "llmrouter_core.router",
    "register_router": "llmrouter_core.registry",
    "replay_pool": "llmrouter_core.providers.replay",
    "set_replay_data": "llmrouter_core.providers.replay",
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
    from llmrouter_core.decision import CascadePlan, Decision, FanOutPlan
    from llmrouter_core.errors import (
        DataError,
        LLMRouterError,
        MissingExtraError,
        NotFittedError,
        PersistenceError,
        UnknownModelError,
        UnknownRouterError,
    )
    from llmrouter_core.persistence import load_router
    from llmrouter_core.policy import (
        BudgetPolicy,
        CascadePolicy,
        CostWeightPolicy,
        FanOutPolicy,
        Policy,
        ThresholdPolicy,
        UtilityPolicy,
    )
    from llmrouter_core.pool import ModelSpec, Pool
    from llmrouter_core.providers.replay import replay_pool, set_replay_data
    from llmrouter_core.registry import Composition, get_router, list_routers, register_router
    from llmrouter_core.router import Router, make_router
    from llmrouter_core.scoring import Scorer
