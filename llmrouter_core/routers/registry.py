"""The router registry: short names -> router classes.

Built-in routers are listed here and imported only when used. Plugins register through the
entry-point group ``llmrouter.routers`` (``name = "package.module:RouterClass"``), at run time
with :func:`register_router`, or are named by a dotted path (``"package.module:RouterClass"``)
in the caller's own code or command line.

A name read from a file (a saved router, a stack's members) goes through
:func:`registered_router_class`, which knows only registered names and entry points and refuses
anything else *before* importing it: a file never decides which module runs.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmrouter_core.errors import UnknownRouterError

if TYPE_CHECKING:
    from llmrouter_core.routers.base import Router

__all__ = [
    "DEFAULT_ROUTER",
    "RouterInfo",
    "get_router",
    "get_router_class",
    "list_routers",
    "register_router",
    "registered_router_class",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "llmrouter.routers"

#: The router used when none is named (chosen by cross-validated AIQ on training data across
#: datasets; see the README's comparison table).
DEFAULT_ROUTER = "auto"

_BUILTIN: dict[str, str] = {
    "random": "llmrouter_core.routers.baselines:RandomRouter",
    "cheapest": "llmrouter_core.routers.baselines:CheapestRouter",
    "single": "llmrouter_core.routers.baselines:BestSingleRouter",
    "smallest": "llmrouter_core.routers.baselines:SmallestRouter",
    "largest": "llmrouter_core.routers.baselines:LargestRouter",
    "oracle": "llmrouter_core.routers.baselines:OracleRouter",
    "knn": "llmrouter_core.routers.supervised:KNNRouter",
    "linear": "llmrouter_core.routers.supervised:LinearRouter",
    "logistic": "llmrouter_core.routers.supervised:LogisticRouter",
    "svm": "llmrouter_core.routers.supervised:SVMRouter",
    "mlp": "llmrouter_core.routers.supervised:MLPRouter",
    "auto": "llmrouter_core.routers.ensemble:AutoRouter",
    "irt": "llmrouter_core.routers.irt:IRTRouter",
    "mf": "llmrouter_core.routers.mf:MFRouter",
    "elo": "llmrouter_core.routers.elo:EloRouter",
    "sw_ranking": "llmrouter_core.routers.elo:SWRankingRouter",
    "hybrid": "llmrouter_core.routers.hybrid:HybridRouter",
    "carrot": "llmrouter_core.routers.carrot:CarrotRouter",
    "cluster": "llmrouter_core.routers.cluster:ClusterRouter",
    "task": "llmrouter_core.routers.cluster:TaskRouter",
    "bandit": "llmrouter_core.routers.bandit:BanditRouter",
    "graph": "llmrouter_core.routers.graph:GraphRouter",
    "routerdc": "llmrouter_core.routers.contrastive:RouterDCRouter",
    "encoder": "llmrouter_core.routers.encoder:EncoderRouter",
    "frugalgpt": "llmrouter_core.routers.cascade:FrugalGPTRouter",
    "automix": "llmrouter_core.routers.cascade:AutoMixRouter",
    "llm": "llmrouter_core.routers.llm:CausalLMRouter",
}

_registry: dict[str, Any] = dict(_BUILTIN)  # name -> "module:Class" or class
_entry_points_loaded = False
_lock = threading.Lock()


@dataclass(frozen=True)
class RouterInfo:
    """One registry entry."""

    name: str
    family: str
    description: str
    evaluation_only: bool
    target: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "evaluation_only": self.evaluation_only,
            "class": self.target,
        }


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _registry:
                logger.warning("router plugin %r ignored: the name is taken", ep.name)
                continue
            _registry[ep.name] = ep.value


def _import_target(target: str) -> type[Router]:
    module_name, _, attr = target.partition(":")
    if not attr:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise UnknownRouterError(f"not a router path: {target!r} (expected 'module:Class')")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownRouterError(f"cannot import router {target!r}: {exc}") from exc
    return _check_router_class(cls, target)


def _check_router_class(cls: Any, label: str) -> type[Router]:
    from llmrouter_core.routers.base import Router

    if not (isinstance(cls, type) and issubclass(cls, Router)):
        raise UnknownRouterError(f"{label!r} is not a Router subclass")
    return cls


def register_router(name: str, router: type | str, *, overwrite: bool = False) -> None:
    """Register a router class (or ``"module:Class"`` path) under ``name``."""
    _load_entry_points()
    with _lock:
        if name in _registry and not overwrite:
            raise ValueError(f"router name {name!r} is already registered")
        if isinstance(router, type):
            _check_router_class(router, name)
        _registry[name] = router


def get_router_class(name: str) -> type[Router]:
    """The class registered as ``name`` (or named by a ``module:Class`` path)."""
    _load_entry_points()
    target = _registry.get(name)
    if target is None:
        if ":" in name:
            return _import_target(name)
        known = ", ".join(sorted(_registry))
        raise UnknownRouterError(f"unknown router {name!r}; known routers: {known}")
    if isinstance(target, str):
        cls = _import_target(target)
        with _lock:
            _registry[name] = cls
        return cls
    return _check_router_class(target, name)


def registered_router_class(name: str) -> type[Router]:
    """The class registered as ``name`` (built in, an installed entry point, or registered at
    run time); a dotted path or any other name is refused without importing anything.

    Raises:
        UnknownRouterError: ``name`` is not registered.
    """
    _load_entry_points()
    if not isinstance(name, str) or name not in _registry:
        known = ", ".join(sorted(_registry))
        raise UnknownRouterError(
            f"{name!r} is not a registered router (known: {known}); a router named by a path "
            "must be registered (llmrouter_core.register_router, or the 'llmrouter.routers' "
            "entry point of an installed package) before it can be loaded"
        )
    return get_router_class(name)


def registered_name(cls: type) -> str | None:
    """The registry name of ``cls`` (None if unregistered)."""
    _load_entry_points()
    for name, target in _registry.items():
        if target is cls:
            return name
        if isinstance(target, str) and target == f"{cls.__module__}:{cls.__qualname__}":
            return name
    return None


def get_router(name: str | None = None, **params: Any) -> Any:
    """Build a router by registry name with hyperparameters (``None`` = the default router).

    Example:
        >>> r = get_router("knn", n_neighbors=20)
        >>> r.n_neighbors
        20
    """
    cls = get_router_class(name or DEFAULT_ROUTER)
    return cls(**params)


def list_routers(*, include_evaluation_only: bool = True) -> list[RouterInfo]:
    """Every registered router, sorted by name."""
    _load_entry_points()
    out = []
    for name in sorted(_registry):
        cls = get_router_class(name)
        if cls.evaluation_only and not include_evaluation_only:
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        out.append(
            RouterInfo(
                name=name,
                family=cls.family or "custom",
                description=doc[0] if doc else "",
                evaluation_only=bool(cls.evaluation_only),
                target=f"{cls.__module__}:{cls.__qualname__}",
            )
        )
    return out
