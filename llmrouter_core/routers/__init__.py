"""Routers: the base contract, the registry, and the built-in routers."""

from __future__ import annotations

from llmrouter_core.routers.base import Router
from llmrouter_core.routers.persistence import load_router, save_router
from llmrouter_core.routers.registry import (
    DEFAULT_ROUTER,
    RouterInfo,
    get_router,
    get_router_class,
    list_routers,
    register_router,
)

__all__ = [
    "DEFAULT_ROUTER",
    "Router",
    "RouterInfo",
    "get_router",
    "get_router_class",
    "list_routers",
    "load_router",
    "register_router",
    "save_router",
]
