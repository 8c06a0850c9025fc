"""``RoutedLM``: a DSPy language model that routes each call to a model of a pool."""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import dspy

from dspy_llmrouter._provider import (
    PROVIDER,
    executor_for,
    register_executor,
    router_fingerprint,
    setup_fingerprint,
)
from llmrouter_core.errors import LLMRouterError, UnknownModelError

__all__ = ["CostMeter", "RoutedCall", "RoutedLM", "cost_meter"]

logger = logging.getLogger(__name__)

#: Key of the active cost meters in DSPy's settings (propagated to DSPy's worker threads).
_METERS_KEY = "llmrouter_cost_meters"
#: Executor options that are saved with a program (never keys or budgets).
_SAVED_OPTIONS = (
    "max_retries",
    "timeout",
    "routing_text",
    "fallback",
    "backoff",
    "max_backoff",
    "limit_max_tokens",
    "litellm_kwargs",
)
_CLASS_PATH_KEY = "_dspy_lm_class"


class RoutedLM(dspy.LM):
    """A DSPy LM whose every call is routed to a model of a pool by a trained router.

    Calls go through DSPy's LiteLLM path to the in-process ``llmrouter/<key>`` provider, which
    runs the core :class:`~llmrouter_core.execution.Executor`: the router picks the model (or
    ``fixed_model`` names one), the call is retried and falls back down the ranking, and
    budgets are enforced. DSPy's history records the model that actually answered
    (``entry["response_model"]``) and its USD cost (``entry["cost"]``); ``track_usage``
    reports the cost and a per-model breakdown (``usage["cost"]``, ``usage["by_model"]``).

    **Caching.** DSPy caches answers by request; a cached answer skips the router. The
    default (``cache=None``) caches only when routing is a pure function of the request: a
    trained router or a fixed pool order, with no budget (a budget makes the decision depend
    on what was spent). The cache key contains a fingerprint of the router, the pool and the
    routing options, so a retrained router or another ``cost_weight`` never reuses stale
    answers. A router whose decisions are random (it sets ``deterministic_routing = False``)
    is never cached by default; passing ``cache=True`` for it logs a warning.

    Args:
        router: A trained router, the path of a saved router directory, or a ready
            :class:`~llmrouter_core.execution.Executor`.
        pool: The execution pool (default: the router's), e.g. ``replay/<model>`` ids.
        cost_weight: lambda in utility = quality - lambda x cost (USD); ``None`` uses the
            router's default, ``math.inf`` the cheapest model.
        fixed_model: Call this pool model every time instead of routing.
        max_cost: Per-call cap in USD.
        budget: A spend limit shared by every call (see :class:`~llmrouter_core.execution.Budget`).
        cache: DSPy response cache: ``None`` (default) decides as described above.
        temperature: Sampling temperature sent to the models.
        max_tokens: Output token limit sent to the models.
        num_retries: DSPy-level retries of a failed call (default 0: the executor already
            retries and falls back).
        callbacks: DSPy callbacks.
        executor_options: Further :class:`~llmrouter_core.execution.Executor` arguments
            (``keys``, ``max_retries``, ``timeout``, ``routing_text``, ``fallback``, ...).
        **kwargs: Further LiteLLM arguments sent with every call.

    Example:
        >>> import dspy                                                      # doctest: +SKIP
        >>> from dspy_llmrouter import RoutedLM                              # doctest: +SKIP
        >>> lm = RoutedLM("runs/my-router", cost_weight=50.0)                # doctest: +SKIP
        >>> dspy.configure(lm=lm)                                            # doctest: +SKIP
        >>> dspy.Predict("question -> answer")(question="2 + 2?")            # doctest: +SKIP
        >>> lm.history[-1]["response_model"], lm.history[-1]["cost"]         # doctest: +SKIP
    """

    def __init__(
        self,
        router: Any,
        *,
        pool: Any = None,
        cost_weight: float | None = None,
        fixed_model: str | None = None,
        max_cost: float | None = None,
        budget: Any = None,
        cache: bool | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        num_retries: int = 0,
        callbacks: list[Any] | None = None,
        executor_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        options = dict(executor_options or {})
        if "cost_weight" in options:
            raise ValueError(
                "give cost_weight as RoutedLM(cost_weight=...), not in executor_options"
            )
        executor, router_path = _build_executor(router, pool, budget, options)
        if fixed_model is not None and fixed_model not in executor.models:
            raise UnknownModelError(
                f"fixed_model {fixed_model!r} is not in the pool; it has: "
                f"{', '.join(executor.models)}"
            )
        weight = _check_weight(cost_weight)
        if max_cost is not None and not max_cost >= 0:
            raise ValueError("max_cost must be a non-negative number of USD")
        key, deterministic = _register(executor, options)
        if cache is None:
            cache = deterministic
        elif cache and not deterministic:
            logger.warning(
                "RoutedLM(cache=True) with a router whose decisions are not a pure function of "
                "the request (random routing or a budget): cached answers skip the router"
            )
        policy = {
            k: v
            for k, v in (
                ("cost_weight", weight),
                ("fixed_model", fixed_model),
                ("max_cost", max_cost),
            )
            if v is not None
        }
        super().__init__(
            model=f"{PROVIDER}/{key}",
            model_type="chat",
            temperature=temperature,
            max_tokens=max_tokens,
            cache=cache,
            callbacks=callbacks,
            num_retries=num_retries,
            engine="litellm",
            **policy,
            **kwargs,
        )
        self.router_path = router_path
        self.routing_deterministic = deterministic
        self._pool_state = None if pool is None else pool.to_dict()
        self._saved_options = {k: options[k] for k in _SAVED_OPTIONS if k in options}

    # -- what it routes with --------------------------------------------------------------
    @property
    def executor(self) -> Any:
        """The :class:`~llmrouter_core.execution.Executor` behind this LM."""
        return executor_for(self.model.split("/", 1)[1])

    @property
    def router(self) -> Any:
        """The router deciding each call."""
        return self.executor.router

    @property
    def pool_models(self) -> tuple[str, ...]:
        """The pool models this LM may call."""
        return tuple(self.executor.models)

    @property
    def policy(self) -> dict[str, Any]:
        """The routing options sent with every call (``cost_weight``, ``fixed_model``,
        ``max_cost``)."""
        return {
            k: self.kwargs[k]
            for k in ("cost_weight", "fixed_model", "max_cost")
            if self.kwargs.get(k) is not None
        }

    @property
    def supports_function_calling(self) -> bool:
        return bool(_capable(self.executor, "tools"))

    @property
    def supports_response_schema(self) -> bool:
        return bool(_capable(self.executor, "json_schema"))

    @property
    def supports_reasoning(self) -> bool:
        return False

    @property
    def supported_params(self) -> set[str]:
        return {
            "temperature",
            "max_tokens",
            "top_p",
            "stop",
            "seed",
            "tools",
            "tool_choice",
            "response_format",
            "cost_weight",
            "fixed_model",
            "max_cost",
            "user",
        }

    def __repr__(self) -> str:
        return f"RoutedLM(model={self.model!r}, policy={self.policy!r})"

    # -- history ----------------------------------------------------------------------------
    def update_history(self, entry: dict[str, Any]) -> None:
        super().update_history(entry)
        meters = dspy.settings.get(_METERS_KEY) or ()
        if meters:
            call = RoutedCall.from_entry(self, entry)
            for meter in meters:
                meter._add(call)

    # -- persistence ------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        """JSON-safe state: the router's path, the pool, the routing policy and DSPy settings.

        Budgets and keys are not saved. A RoutedLM made from an in-memory router saves
        ``"router": None``; give the router when loading (:func:`dspy_llmrouter.load_program`).
        """
        state: dict[str, Any] = dict(super().dump_state())
        state.pop("model", None)
        state.pop("engine", None)
        for key in ("finetuning_model", "launch_kwargs", "train_kwargs"):
            state.pop(key, None)
        if isinstance(state.get("cost_weight"), float) and math.isinf(state["cost_weight"]):
            state["cost_weight"] = "inf"  # JSON has no infinity
        state[_CLASS_PATH_KEY] = "dspy_llmrouter.RoutedLM"
        state["router"] = self.router_path
        state["pool"] = self._pool_state
        state["executor_options"] = dict(self._saved_options)
        return state

    @classmethod
    def load_state(
        cls, state: dict[str, Any], *, allow_custom_lm_class: bool = False, router: Any = None
    ) -> RoutedLM:
        """Rebuild a RoutedLM from :meth:`dump_state` (``router`` overrides the saved path)."""
        from llmrouter_core.pool import Pool

        state = dict(state)
        for key in (
            _CLASS_PATH_KEY,
            "model",
            "engine",
            "finetuning_model",
            "launch_kwargs",
            "train_kwargs",
            "model_type",
        ):
            state.pop(key, None)
        saved_router = state.pop("router", None)
        router = router if router is not None else saved_router
        if router is None:
            raise LLMRouterError(
                "this RoutedLM was saved from an in-memory router; load the program with "
                "dspy_llmrouter.load_program(program, path, router=...)"
            )
        from llmrouter_core.execution import Executor

        pool = state.pop("pool", None)
        options = state.pop("executor_options", None) or {}
        if isinstance(router, Executor):  # it brings its own pool and options
            pool, options = None, {}
        return cls(
            router,
            pool=None if pool is None else Pool.from_dict(pool),
            executor_options=options,
            **state,
        )


# -- cost metering ------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutedCall:
    """One call of a :class:`RoutedLM`, as seen in DSPy's history.

    Attributes:
        lm: The LM that was called.
        model: The pool model that answered (``None`` if unknown).
        cost: USD cost of the answer (for a cached answer: what it cost when it was made).
        cached: Whether DSPy served it from its cache (no money was spent this time).
    """

    lm: Any
    model: str | None
    cost: float | None
    cached: bool

    @classmethod
    def from_entry(cls, lm: Any, entry: Mapping[str, Any]) -> RoutedCall:
        cost = entry.get("cost")
        return cls(
            lm=lm,
            model=entry.get("response_model"),
            cost=float(cost) if isinstance(cost, int | float) else None,
            cached=not entry.get("usage"),
        )


@dataclass
class CostMeter:
    """The routed calls made inside a :func:`cost_meter` block.

    Example:
        >>> with cost_meter() as meter:                                      # doctest: +SKIP
        ...     program(question="...")
        >>> meter.total_cost, meter.by_model()                               # doctest: +SKIP
    """

    calls: list[RoutedCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _add(self, call: RoutedCall) -> None:
        with self._lock:
            self.calls.append(call)

    @property
    def total_cost(self) -> float:
        """USD cost of every call (cached answers count what they cost when made)."""
        return float(sum(c.cost or 0.0 for c in self.calls))

    @property
    def spent(self) -> float:
        """USD actually spent (cached answers excluded)."""
        return float(sum(c.cost or 0.0 for c in self.calls if not c.cached))

    def by_model(self) -> dict[str, dict[str, float]]:
        """``{model: {"calls": n, "cost": usd}}``."""
        out: dict[str, dict[str, float]] = {}
        for c in self.calls:
            row = out.setdefault(c.model or "?", {"calls": 0, "cost": 0.0})
            row["calls"] += 1
            row["cost"] += c.cost or 0.0
        return out

    def cost_of(self, lm: Any) -> float:
        """USD cost of the calls made through ``lm``."""
        return float(sum(c.cost or 0.0 for c in self.calls if c.lm is lm))


@contextmanager
def cost_meter() -> Iterator[CostMeter]:
    """Record every :class:`RoutedLM` call made inside the block (also in DSPy's worker
    threads). DSPy's history must be enabled (it is by default)."""
    meter = CostMeter()
    active = tuple(dspy.settings.get(_METERS_KEY) or ())
    with dspy.context(**{_METERS_KEY: (*active, meter)}):
        yield meter


def replay_calls(calls: Sequence[RoutedCall]) -> None:
    """Record ``calls`` again in the active cost meters (a memoised answer's cost)."""
    for meter in dspy.settings.get(_METERS_KEY) or ():
        for call in calls:
            meter._add(call)


# -- helpers ------------------------------------------------------------------------------


def _check_weight(cost_weight: Any) -> float | None:
    if cost_weight is None:
        return None
    try:
        weight = float(cost_weight)
    except (TypeError, ValueError):
        raise ValueError(f"cost_weight must be a number >= 0, got {cost_weight!r}") from None
    if math.isnan(weight) or weight < 0:
        raise ValueError(f"cost_weight must be >= 0 (math.inf = cheapest), got {cost_weight!r}")
    return weight


def _build_executor(
    router: Any, pool: Any, budget: Any, options: dict[str, Any]
) -> tuple[Any, str | None]:
    from llmrouter_core.execution import Executor

    if isinstance(router, Executor):
        if pool is not None or budget is not None or options:
            raise ValueError("pool, budget and executor_options belong to the Executor given")
        return router, None
    path: str | None = None
    if isinstance(router, str | os.PathLike):
        from llmrouter_core.persistence import load_router

        path = os.fspath(router)
        router = load_router(path)
    return Executor(router, pool=pool, budget=budget, **options), path


def _register(executor: Any, options: Mapping[str, Any]) -> tuple[str, bool]:
    """Register ``executor``; returns ``(key, routing is a pure function of the request)``."""
    router = executor.router
    digest = None
    if getattr(router, "deterministic_routing", True) is not False:
        digest = router_fingerprint(router)
    deterministic = digest is not None and executor.budget is None
    if not deterministic:
        return register_executor(executor), False
    saved = {k: v for k, v in options.items() if k != "keys"}
    saved["cost_weight"] = executor.cost_weight
    setup = setup_fingerprint(digest or "", executor.pool, saved)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(getattr(router, "name", "") or "router"))
    key = f"{name}-{setup[:16]}"
    if "keys" in options:
        # Own API keys: never share the executor (nor put anything derived from a key in the
        # model id); answers stay cacheable within this process.
        return register_executor(executor, key=f"{key}-{uuid.uuid4().hex[:8]}"), True
    return register_executor(executor, key=key), True


def _capable(executor: Any, capability: Literal["tools", "json_schema"]) -> list[str]:
    return list(executor.capable(capability))
