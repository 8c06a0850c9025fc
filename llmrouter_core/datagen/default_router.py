"""The router ``llmrouter chat`` and ``llmrouter infer`` use offline when no router directory
is given: trained on the measured outcomes of the local models (``local`` extra) on the
benchmark tasks, with features that need nothing beyond the core (hashed TF-IDF).

It ships inside the package (``llmrouter_core/resources/local_router``: ``router.json`` and
``arrays.npz``, the project's save format) and was made with ``llmrouter datagen`` then
``llmrouter train``; ``docs/datagen.md`` gives the commands and the measured scores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["LOCAL_ROUTER_DIR", "default_local_router"]

logger = logging.getLogger(__name__)

#: The shipped router directory.
LOCAL_ROUTER_DIR = Path(__file__).resolve().parents[1] / "resources" / "local_router"


def default_local_router(available: Sequence[str] | None = None) -> Any:
    """The shipped local router, over the installed local models.

    Args:
        available: Installed local model names (default: probed).

    Returns:
        The trained router when every model it routes between is installed, else a
        :class:`~llmrouter_core.execution.PoolOrderRouter` over the installed ones.
    """
    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.providers.local import default_local_pool, local_models_available

    names = list(available) if available is not None else local_models_available()
    pool = default_local_pool().subset(names)
    if (LOCAL_ROUTER_DIR / "router.json").is_file():
        from llmrouter_core.persistence import load_router

        router = load_router(LOCAL_ROUTER_DIR)
        if set(router.models_) <= set(names):
            return router
        logger.info(
            "the shipped local router needs %s; routing in pool order instead",
            ", ".join(sorted(set(router.models_) - set(names))),
        )
    return PoolOrderRouter(pool)
