"""The router registry: short names -> configured compositions of the one :class:`Router`.

Every registered name is a :class:`Composition`: a scorer, a recipe and router settings
(``"mf"`` = the bilinear scorer with the pairwise recipe; ``"single"`` = the prior scorer with
each model's mean cost), so the CLI, saved routers and results keep their names. Keyword
arguments of :func:`get_router` go to the scorer when it has a hyperparameter of that name,
then to a trained policy (FrugalGPT's, AutoMix's), else to the router
(``get_router("knn", n_neighbors=20, cv=5)``, ``get_router("frugalgpt", max_length=3)``).

Plugins register a composition or a :class:`Router` subclass through the entry-point group
``llmrouter.routers`` (``name = "package.module:object"``) or at run time with
:func:`register_router`. A name read from a file (a saved router) goes through
:func:`registered_router_class` / :func:`get_composition`, which know only registered names and
refuse anything else *before* importing it: a file never decides which module runs.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmrouter_core.errors import UnknownRouterError
from llmrouter_core.router import Router
from llmrouter_core.scoring import scorer_class
from llmrouter_core.scoring.base import Tags

__all__ = [
    "DEFAULT_ROUTER",
    "Composition",
    "RouterInfo",
    "get_composition",
    "get_router",
    "list_routers",
    "register_router",
    "registered_name",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "llmrouter.routers"

#: The router used when none is named (chosen by cross-validated AIQ on training data across
#: datasets; see docs/router_zoo.md).
DEFAULT_ROUTER = "auto"


@dataclass(frozen=True)
class Composition:
    """A registered router: a scorer and the router settings that make the method.

    Attributes:
        scorer: Registered scorer name.
        family: Algorithm family (for listings).
        description: One line.
        settings: Router parameters of this method (``cost_model``, ``blend``, ...), the
            defaults of :func:`get_router`.
        scorer_params: Scorer hyperparameters of this method (defaults too).
        benchmark: Whether ``llmrouter benchmark`` trains it by default.
        policy: A trained policy of :data:`llmrouter_core.cascades.POLICIES` (``"frugalgpt"``,
            ``"automix"``) that the router fits and routes with, or ``None``.
        policy_params: Its hyperparameters (defaults too).
    """

    scorer: str
    family: str
    description: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    scorer_params: Mapping[str, Any] = field(default_factory=dict)
    benchmark: bool = True
    policy: str | None = None
    policy_params: Mapping[str, Any] = field(default_factory=dict)

    def _policy_class(self) -> Any:
        if self.policy is None:
            return None
        from llmrouter_core.cascades import POLICIES

        if self.policy not in POLICIES:
            raise UnknownRouterError(
                f"unknown trained policy {self.policy!r}; known: {', '.join(POLICIES)}"
            )
        return POLICIES[self.policy]

    def build(self, name: str, **params: Any) -> Router:
        """A new router of this composition; ``params`` override the defaults (a scorer
        hyperparameter, then a trained policy's, then a router parameter)."""
        cls = scorer_class(self.scorer)
        policy_cls = self._policy_class()
        scorer_keys = set(inspect.signature(cls.__init__).parameters) - {"self"}
        policy_keys = (
            set()
            if policy_cls is None
            else set(inspect.signature(policy_cls.__init__).parameters) - {"self"}
        )
        router_keys = set(inspect.signature(Router.__init__).parameters) - {"self", "scorer"}
        if policy_cls is not None:
            router_keys.discard("policy")
        scorer_params = dict(self.scorer_params)
        policy_params = dict(self.policy_params)
        settings = dict(self.settings)
        for key, value in params.items():
            if key in scorer_keys:
                scorer_params[key] = value
            elif key in policy_keys:
                policy_params[key] = value
            elif key in router_keys:
                settings[key] = value
            else:
                valid = sorted(scorer_keys | policy_keys | router_keys)
                raise ValueError(f"invalid parameter {key!r} for router {name!r}; valid: {valid}")
        if "members" in scorer_params:  # a stack's members may be given as router names
            scorer_params["members"] = tuple(_member_spec(m) for m in scorer_params["members"])
        if policy_cls is not None:
            settings["policy"] = policy_cls(**policy_params)
        router = Router(cls(**scorer_params), **settings)
        router.name = name
        router.family = self.family
        return router

    def tags(self) -> Tags:
        policy_cls = self._policy_class()
        extra = None if policy_cls is None else policy_cls.tags
        return scorer_class(self.scorer).tags.merged(extra)


_TOKENS = {"cost_model": "tokens"}
_CONSTANT = {"cost_model": "mean", "blend": 1.0}

_BUILTIN: dict[str, Composition] = {
    "auto": Composition(
        "stack",
        "ensemble",
        "Cross-validated stack of ridge, IRT, matrix factorisation, clusters, tasks and the "
        "per-model prior (the default)",
    ),
    "knn": Composition(
        "knn", "supervised", "k nearest training queries (cosine), similarity-weighted", _TOKENS
    ),
    "linear": Composition(
        "ridge", "supervised", "Ridge regression of each model's score on the features", _TOKENS
    ),
    "logistic": Composition(
        "logistic", "supervised", "Logistic regression per model on soft labels", _TOKENS
    ),
    "svm": Composition("svm", "supervised", "Linear support-vector regression per model", _TOKENS),
    "mlp": Composition(
        "mlp",
        "supervised",
        "A small multi-output MLP on a truncated SVD of the features",
        {**_TOKENS, "embedder_params": {"n_features": 2**14}},
    ),
    "irt": Composition("irt", "irt", "Multidimensional item response theory"),
    "mf": Composition(
        "bilinear",
        "matrix-factorization",
        "RouteLLM's bilinear model, trained on pairwise score gaps",
        {"recipe": "pairwise"},
    ),
    "elo": Composition("elo", "elo", "One Bradley-Terry rating per model", {"blend": 1.0}),
    "sw_ranking": Composition(
        "sw_ranking", "elo", "RouteLLM's similarity-weighted ranking (per-query Bradley-Terry)"
    ),
    "hybrid": Composition(
        "hybrid", "hybrid-llm", "Hybrid-LLM: per cheaper model, 'as good as the large model'"
    ),
    "carrot": Composition(
        "carrot", "carrot", "CARROT: separate quality and cost estimators, plug-in choice"
    ),
    "cluster": Composition(
        "cluster", "cluster", "k-means regions of query space, each with its best models"
    ),
    "task": Composition(
        "task", "cluster", "A classifier of the training data's tasks, mixing their best models"
    ),
    "bandit": Composition(
        "bandit",
        "bandit",
        "LinUCB / Thompson sampling over ridge posteriors; learns online from feedback",
        {"blend": 1.0, "recipe": "online"},
    ),
    "graph": Composition("graph", "graph", "GraphRouter-style message passing (torch)"),
    "routerdc": Composition(
        "contrastive",
        "contrastive",
        "RouterDC's dual contrastive learning (torch)",
        {"recipe": "contrastive"},
    ),
    "encoder": Composition(
        "encoder",
        "encoder",
        "A fine-tuned MiniLM layer reading the query text (torch)",
        benchmark=False,  # fine-tuning takes minutes on a CPU: opt in by name
    ),
    "llm": Composition(
        "judge",
        "llm",
        "An LLM rates every pool model for the query",
        _TOKENS,
        benchmark=False,
    ),
    "single": Composition(
        "prior", "baseline", "Best single model for the budget (each model's mean score)", _CONSTANT
    ),
    "cheapest": Composition(
        "cheapest", "baseline", "Always the cheapest model", {**_TOKENS, "blend": 1.0}
    ),
    "random": Composition(
        "random", "baseline", "A random model per query", {**_TOKENS, "blend": 1.0}
    ),
    "smallest": Composition("smallest", "baseline", "Always the pool's smallest model", _CONSTANT),
    "largest": Composition("largest", "baseline", "Always the pool's largest model", _CONSTANT),
    # Cascades: not in ``llmrouter benchmark`` by default (FrugalGPT needs recorded responses,
    # which most datasets lack, and AutoMix real verifier calls); benchmarks/bench_cascades.py
    # runs both.
    "frugalgpt": Composition(
        "prior",
        "cascade",
        "FrugalGPT: a chain called cheap to expensive until a scorer of the answer, trained on "
        "recorded answers, accepts it",
        {**_TOKENS, "blend": 1.0},
        benchmark=False,
        policy="frugalgpt",
    ),
    "automix": Composition(
        "prior",
        "cascade",
        "AutoMix: the small model answers, a few-shot verifier checks it, escalate if unsure",
        {**_TOKENS, "blend": 1.0},
        benchmark=False,
        policy="automix",
    ),
    "oracle": Composition(
        "oracle",
        "baseline",
        "The per-query best model (evaluation only)",
        {"cost_model": "measured", "blend": 1.0},
    ),
}

_registry: dict[str, Any] = {  # name -> Composition, Router subclass or path
    **_BUILTIN,
    # Personalized routing wraps any of the above (imported on first use).
    "personalized": "llmrouter_core.personalized.router:PersonalizedRouter",
}
_entry_points_loaded = False
_lock = threading.Lock()


@dataclass(frozen=True)
class RouterInfo:
    """One registry entry, as listed by :func:`list_routers`."""

    name: str
    family: str
    description: str
    evaluation_only: bool
    target: str
    tags: Tags = field(default_factory=Tags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "evaluation_only": self.evaluation_only,
            "class": self.target,
            "tags": self.tags.to_dict(),
        }


def _member_spec(spec: Any) -> Any:
    """A stack member given as a router name -> its scorer (``"mf"`` -> ``"bilinear"``)."""
    if isinstance(spec, str) and spec in _BUILTIN:
        comp = _BUILTIN[spec]
        return comp.scorer
    return spec


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


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not attr:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise UnknownRouterError(f"not an import path: {target!r} (expected 'module:object')")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownRouterError(f"cannot import router {target!r}: {exc}") from exc


def _resolve(name: str, entry: Any) -> Composition | type[Router]:
    if isinstance(entry, str):
        entry = _import(entry)
        with _lock:
            _registry[name] = entry
    if isinstance(entry, Composition) or (isinstance(entry, type) and issubclass(entry, Router)):
        return entry
    raise UnknownRouterError(f"{name!r} is registered as neither a Composition nor a Router class")


def register_router(
    name: str, router: Composition | type | str, *, overwrite: bool = False
) -> None:
    """Register a :class:`Composition`, a :class:`Router` subclass or a ``"module:object"``
    path of one under ``name``."""
    _load_entry_points()
    with _lock:
        if name in _registry and not overwrite:
            raise ValueError(f"router name {name!r} is already registered")
        if not isinstance(router, Composition | str) and not (
            isinstance(router, type) and issubclass(router, Router)
        ):
            raise TypeError("register a Composition, a Router subclass or a 'module:object' path")
        _registry[name] = router


def get_composition(name: str) -> Composition | type[Router]:
    """The entry registered as ``name`` (built in, an installed entry point, or registered
    at run time); any other name is refused without importing anything.

    Raises:
        UnknownRouterError: ``name`` is not registered.
    """
    _load_entry_points()
    entry = _registry.get(name) if isinstance(name, str) else None
    if entry is None:
        raise UnknownRouterError(
            f"unknown router {name!r}: it is not a registered router (known: "
            f"{', '.join(sorted(_registry))}); a "
            "router named by a path must be registered (llmrouter_core.register_router, or the "
            "'llmrouter.routers' entry point of an installed package) before it can be loaded"
        )
    return _resolve(name, entry)


def get_router(name: str | None = None, **params: Any) -> Router:
    """Build a router by registry name with hyperparameters (``None``: the default router).

    A ``"module:object"`` path (a :class:`Composition` or a :class:`Router` subclass) is
    imported: that is the caller's own choice (saved routers never do this).

    Example:
        >>> r = get_router("knn", n_neighbors=20)
        >>> r.scorer.n_neighbors, r.name
        (20, 'knn')
    """
    name = name or DEFAULT_ROUTER
    _load_entry_points()
    if name not in _registry and ":" in name:
        entry: Any = _import(name)
    else:
        entry = get_composition(name)
    if isinstance(entry, Composition):
        return entry.build(name, **params)
    if isinstance(entry, type) and issubclass(entry, Router):
        router = entry(**params)
        if name in _registry:  # a path stays unnamed: it cannot be saved under a name
            router.name = name
        return router
    raise UnknownRouterError(f"{name!r} is neither a Composition nor a Router class")


def registered_name(router: Router) -> str | None:
    """The registry name ``router`` can be saved and loaded under (``None`` if none)."""
    _load_entry_points()
    entry = _registry.get(router.name)
    if entry is None:
        return None
    if isinstance(entry, Composition | str) or entry is type(router):
        return router.name
    return None


def list_routers(*, include_evaluation_only: bool = True) -> list[RouterInfo]:
    """Every registered router, sorted by name."""
    _load_entry_points()
    out = []
    for name in sorted(_registry):
        entry = get_composition(name)
        if isinstance(entry, Composition):
            tags = entry.tags()
            family, description = entry.family, entry.description
            target = f"{entry.scorer} scorer"
        else:
            tags = Tags()
            family = entry.family
            doc = (entry.__doc__ or "").strip().splitlines()
            description = doc[0] if doc else ""
            target = f"{entry.__module__}:{entry.__qualname__}"
        if tags.evaluation_only and not include_evaluation_only:
            continue
        out.append(RouterInfo(name, family, description, tags.evaluation_only, target, tags))
    return out


def benchmark_by_default(name: str) -> bool:
    """Whether ``llmrouter benchmark`` trains ``name`` when no router list is given."""
    entry = get_composition(name)
    if isinstance(entry, Composition):
        return entry.benchmark
    return bool(getattr(entry, "benchmark_by_default", True))
