"""``RoutedLM``: a DSPy language model that routes each call to a model of a pool."""

from __future__ import annotations

import logging
import math
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import dspy

from dspy_llmrouter._provider import (
    PIN_KEY,
    PROVIDER,
    USER_KEY,
    executor_for,
    register_executor,
    router_fingerprint,
    setup_fingerprint,
)
from llmrouter_core.errors import LLMRouterError
from llmrouter_core.integration import build_executor, renamed_options, send_feedback

__all__ = ["CostMeter", "RoutedCall", "RoutedLM", "cost_meter"]

logger = logging.getLogger(__name__)

#: Key of the active cost meters in DSPy's settings (propagated to DSPy's worker threads).
_METERS_KEY = "llmrouter_cost_meters"
#: Executor options that are saved with a program (never keys or budgets).
_SAVED_OPTIONS = (
    "max_retries",
    "timeout",
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
    ``model`` pins one), the call is retried and falls back down the ranking, and budgets are
    enforced. DSPy's history records the model that actually answered
    (``entry["response_model"]``) and its USD cost (``entry["cost"]``); ``track_usage``
    reports the cost and a per-model breakdown (``usage["cost"]``, ``usage["by_model"]``).

    **The pin is ``model``.** The options shared by the three adapters mean the same in each
    (see :mod:`llmrouter_core.integration`), but a DSPy LM's own ``model`` attribute is its
    LiteLLM id: here it stays the routing id ``llmrouter/<key>``. The pinned pool model is
    the constructor's ``model=`` (and ``copy(model=...)``); it travels with each request as
    the ``pinned_model`` argument and reads back as ``lm.policy["model"]``. ``fixed_model``
    is the deprecated old name of the constructor's ``model``.

    **Caching.** DSPy caches answers by request; a cached answer skips the router. The
    default (``cache=None``) caches only when routing is a pure function of the request: the
    router's capabilities say so (``router.tags.deterministic`` and not
    ``router.tags.calls_models``: not an LLM judge), or it is a fixed pool order, and there
    is no budget (a budget makes the decision depend on what was spent). The cache key
    contains a fingerprint of the router, the pool and the routing options, so a retrained
    router or another ``cost_weight`` never reuses stale answers. A router of another kind
    (no fingerprint) is not cached by default; ``cache=True`` for a router that is not a pure
    function logs a warning. An online router's feedback does not change the key: pass
    ``cache=False`` to route every call afresh while it learns.

    Args:
        router: A trained router, the path of a saved router directory, or a ready
            :class:`~llmrouter_core.execution.Executor`.
        pool: The execution pool: a ``Pool`` or a pool file (default: the router's), e.g.
            ``replay/<model>`` ids.
        cost_weight: lambda in utility = quality - lambda x cost (USD); ``None`` uses the
            router's default, ``math.inf`` the cheapest model.
        model: Call this pool model every time instead of routing (the pin; ``lm.model``
            stays the routing id).
        max_cost: Per-call cap in USD.
        budget: A spend limit shared by every call (see :class:`~llmrouter_core.execution.Budget`).
        routing_text: What the router reads: ``"fields"`` (default: the text of the input
            fields of the last user message, without the field markers and output
            instructions that DSPy's chat and JSON adapters add, see
            :func:`input_fields_text`), ``"last_user"`` (that message as sent),
            ``"conversation"``, ``"retrieval"`` (the current query and the
            ``retrieval_top_k`` earlier user turns most similar to it) or a callable
            ``messages -> str``.
        retrieval_top_k: Earlier turns the ``"retrieval"`` routing text reads.
        cache: DSPy response cache: ``None`` (default) decides as described above.
        temperature: Sampling temperature sent to the models.
        max_tokens: Output token limit sent to the models.
        num_retries: DSPy-level retries of a failed call (default 0: the executor already
            retries and falls back).
        callbacks: DSPy callbacks.
        executor_options: Further :class:`~llmrouter_core.execution.Executor` arguments
            (``keys``, ``max_retries``, ``timeout``, ``fallback``, ...).
        trust_endpoints: Use the endpoints and key variables saved with a router directory
            (not saved with a program: pass it again to :func:`~dspy_llmrouter.load_program`).

    A personalized router reads the user of the calls: ``RoutedLM(router, user="alice")`` or
    ``dspy.context(lm=lm.copy(user="bob"))``; :meth:`feedback` gives it the user's feedback
    on the last answer.
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
        model: str | None = None,
        max_cost: float | None = None,
        budget: Any = None,
        routing_text: Any = None,
        retrieval_top_k: int = 3,
        cache: bool | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        num_retries: int = 0,
        callbacks: list[Any] | None = None,
        executor_options: Mapping[str, Any] | None = None,
        trust_endpoints: bool = False,
        **kwargs: Any,
    ) -> None:
        if model is not None:
            kwargs["model"] = model
        model = renamed_options(kwargs, "RoutedLM").pop("model", None)  # or fixed_model=
        if "user" in kwargs:  # sent under a name LiteLLM passes through
            kwargs[USER_KEY] = kwargs.pop("user")
        options = dict(executor_options or {})
        if routing_text is None and "routing_text" in options:  # where it used to be given
            routing_text = options.pop("routing_text")
        from llmrouter_core.execution import Executor

        if routing_text is None and not isinstance(router, Executor):
            routing_text = "fields"
        executor, router_path = build_executor(
            router,
            pool=pool,
            budget=budget,
            cost_weight=cost_weight,
            model=model,
            max_cost=max_cost,
            routing_text=input_fields_text if routing_text == "fields" else routing_text,
            retrieval_top_k=retrieval_top_k,
            options=options,
            trust_endpoints=trust_endpoints,
            owner="RoutedLM",
        )
        weight = None if cost_weight is None else float(cost_weight)
        routing = {"routing_text": routing_text, "retrieval_top_k": retrieval_top_k}
        key, deterministic = _register(executor, options, routing, given=executor is router)
        if cache is None:
            cache = deterministic
        elif cache and not deterministic:
            logger.warning(
                "RoutedLM(cache=True) with a router whose decisions are not a pure function of "
                "the request (random routing, an LLM judge, or a budget): cached answers skip "
                "the router"
            )
        policy = {
            k: v
            for k, v in (("cost_weight", weight), (PIN_KEY, model), ("max_cost", max_cost))
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
        self._pool_state = None if pool is None or executor is router else executor.pool.to_dict()
        self._saved_options = {k: options[k] for k in _SAVED_OPTIONS if k in options}
        if isinstance(routing_text, str):
            self._saved_options["routing_text"] = routing_text
            if routing_text == "retrieval":
                self._saved_options["retrieval_top_k"] = retrieval_top_k

    def copy(self, **kwargs: Any) -> RoutedLM:
        """A copy with updated parameters, as ``dspy.LM.copy``; ``model=`` pins a pool model
        (``None``: route), as in the constructor: the copy keeps this LM's routing id."""
        if "model" in kwargs or "fixed_model" in kwargs:
            pin = renamed_options(kwargs, "RoutedLM.copy").pop("model", None)
            if pin is not None and pin not in self.executor.models:
                from llmrouter_core.errors import UnknownModelError

                raise UnknownModelError(
                    f"model {pin!r} is not in the pool; it has: {', '.join(self.executor.models)}"
                )
            kwargs[PIN_KEY] = pin
        if "user" in kwargs:
            kwargs[USER_KEY] = kwargs.pop("user")
        copied = super().copy(**kwargs)
        assert isinstance(copied, RoutedLM)
        return copied

    # -- what it routes with --------------------------------------------------------------
    @property
    def executor(self) -> Any:
        """The :class:`~llmrouter_core.execution.Executor` behind this LM."""
        return executor_for(self.model.split("/", 1)[1])

    @property
    def router(self) -> Any:
        """The router deciding each call."""
        return self.executor.router

    def feedback(
        self,
        rating: float | None = None,
        preferred_over: str | None = None,
        *,
        entry: Mapping[str, Any] | None = None,
        user: str | None = None,
    ) -> Any:
        """Give a personalized router the user's feedback on one answer, in one call.

        Args:
            rating: The user's rating of the answer, in [0, 1].
            preferred_over: Another pool model whose answer the user liked less.
            entry: The history entry of the answer (default: this LM's last call).
            user: Who gives it (default: the ``user`` the call was made for).
        """
        from llmrouter_core.errors import DataError
        from llmrouter_core.execution._support import routing_text

        if entry is None:
            if not self.history:
                raise DataError("this LM has made no call to give feedback on")
            entry = self.history[-1]
        messages = entry.get("messages") or [{"role": "user", "content": entry.get("prompt")}]
        call_kwargs = entry.get("kwargs") or {}
        return send_feedback(
            self.executor,
            user=user or call_kwargs.get(USER_KEY) or self.kwargs.get(USER_KEY),
            query=routing_text(list(messages), self.executor.routing_text),
            model=entry.get("response_model"),
            rating=rating,
            preferred_over=preferred_over,
        )

    @property
    def pool_models(self) -> tuple[str, ...]:
        """The pool models this LM may call."""
        return tuple(self.executor.models)

    @property
    def policy(self) -> dict[str, Any]:
        """The routing options sent with every call, by their option names (``cost_weight``,
        ``model``: the pinned pool model, ``max_cost``)."""
        names = (("cost_weight", "cost_weight"), (PIN_KEY, "model"), ("max_cost", "max_cost"))
        return {name: self.kwargs[k] for k, name in names if self.kwargs.get(k) is not None}

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
            PIN_KEY,
            "max_cost",
            "user",
            USER_KEY,
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

        Budgets, keys, ``trust_endpoints`` and a callable ``routing_text`` are not saved. A
        RoutedLM made from an in-memory router saves ``"router": None``; give the router when
        loading (:func:`dspy_llmrouter.load_program`).
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
        cls,
        state: dict[str, Any],
        *,
        allow_custom_lm_class: bool = False,
        router: Any = None,
        trust_endpoints: bool = False,
    ) -> RoutedLM:
        """Rebuild a RoutedLM from :meth:`dump_state` (``router`` overrides the saved path;
        ``trust_endpoints`` applies to a router directory, as in the constructor)."""
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
        options = dict(state.pop("executor_options", None) or {})
        # The pin, saved under its request name (or its old one, by earlier versions).
        pin = state.pop(PIN_KEY, None) or state.pop("fixed_model", None)
        if isinstance(router, Executor):  # it brings its own pool and options
            pool, options = None, {}
        return cls(
            router,
            pool=None if pool is None else Pool.from_dict(pool),
            model=pin,
            routing_text=options.pop("routing_text", None),
            retrieval_top_k=options.pop("retrieval_top_k", 3),
            executor_options=options,
            trust_endpoints=trust_endpoints,
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


_FIELD = re.compile(r"^\[\[ ## (\w+) ## \]\]\s*$", re.MULTILINE)
#: The output instructions DSPy's chat and JSON adapters end the current request with.
_OUTPUT_REQUIREMENTS = re.compile(
    r"\n*Respond with (the corresponding output fields|a JSON object)"
)


def input_fields_text(messages: list[dict[str, Any]]) -> str:
    """What a routed DSPy call is routed on: the values of the input fields of the last user
    message, one paragraph each, without DSPy's ``[[ ## field ## ]]`` markers and output
    instructions (a message without markers is read as it is).

    Example:
        >>> msg = ("[[ ## question ## ]]\nWhat is 2 + 2?\n\nRespond with the corresponding "
        ...        "output fields, starting with the field `[[ ## answer ## ]]`.")
        >>> input_fields_text([{"role": "user", "content": msg}])
        'What is 2 + 2?'
    """
    from llmrouter_core.execution import content_text

    users = [m for m in messages if m.get("role") == "user"]
    text = content_text((users or messages[-1:] or [{}])[-1].get("content"))
    markers = list(_FIELD.finditer(text))
    if not markers:
        return text
    values = []
    for k, marker in enumerate(markers):
        end = markers[k + 1].start() if k + 1 < len(markers) else len(text)
        value = text[marker.end() : end]
        if k + 1 == len(markers):
            cut = _OUTPUT_REQUIREMENTS.search(value)
            value = value[: cut.start()] if cut else value
        values.append(value.strip())
    return "\n\n".join(v for v in values if v) or text


def _register(
    executor: Any, options: Mapping[str, Any], routing: Mapping[str, Any], *, given: bool
) -> tuple[str, bool]:
    """Register ``executor``; returns ``(key, routing is a pure function of the request)``.

    ``routing`` is the routing text as given; ``given``: the executor was passed in ready.
    """
    router = executor.router
    tags = getattr(router, "tags", None)
    pure = tags is None or (tags.deterministic and not tags.calls_models)
    # A personalized router's decisions change with each user's feedback.
    pure = pure and not getattr(router, "supports_feedback", False)
    digest = router_fingerprint(router) if pure else None
    deterministic = digest is not None and executor.budget is None
    if not deterministic:
        return register_executor(executor), False
    saved = {k: v for k, v in options.items() if k != "keys"}
    saved["cost_weight"] = executor.cost_weight
    text = routing["routing_text"]
    if text is not None:
        saved["routing_text"] = text if isinstance(text, str) else repr(text)
        if text == "retrieval":
            saved["retrieval_top_k"] = routing["retrieval_top_k"]
    setup = setup_fingerprint(digest or "", executor.pool, saved)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(getattr(router, "name", "") or "router"))
    key = f"{name}-{setup[:16]}"
    if given or "keys" in options:
        # Own API keys (or an executor whose keys and options are its own): never share the
        # executor (nor put anything derived from a key in the model id); answers stay
        # cacheable within this process.
        return register_executor(executor, key=f"{key}-{uuid.uuid4().hex[:8]}"), True
    return register_executor(executor, key=key), True


def _capable(executor: Any, capability: Literal["tools", "json_schema"]) -> list[str]:
    return list(executor.capable(capability))
