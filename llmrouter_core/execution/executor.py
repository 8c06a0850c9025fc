"""Route a request, call the chosen model through LiteLLM, fall back down the ranking.

The :class:`Executor` is the one place where a routing decision meets a model call. Per
request it:

1. leaves out the pool models that cannot serve the request (context window, tools, JSON
   schema) or whose cost bound does not fit the per-request cap or the remaining budget;
2. asks the router for a :class:`~llmrouter_core.decision.Decision` among the rest;
3. calls the chosen model with LiteLLM; transient failures (rate limit, timeout, connection,
   5xx) are retried with exponential backoff, other failures (context window, content
   filter, bad request, auth) move on to the next model of the ranking;
4. returns an :class:`ExecutionResult` with the answer, the decision, the model that actually
   answered, tokens, cost, latency and every attempt; or raises
   :class:`AllModelsFailedError` listing each attempt.

Budgets hold under concurrency: each call reserves its cost bound before it starts and
settles with its actual cost when it ends (see :mod:`llmrouter_core.execution.budget`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from llmrouter_core.decision import Decision
from llmrouter_core.errors import NotFittedError, UnknownModelError
from llmrouter_core.execution import _support as sup
from llmrouter_core.execution.budget import (
    Budget,
    BudgetExceededError,
    BudgetLike,
    BudgetManager,
    Reservation,
)
from llmrouter_core.execution.keys import KeyPool, redact_secrets
from llmrouter_core.execution.results import (
    AllModelsFailedError,
    Attempt,
    ExecutionResult,
    InvalidRequestError,
    NoEligibleModelError,
    StreamChunk,
    StreamInterruptedError,
)
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.providers._registry import known_call_cost

#: A capability a request may need from the model that answers it.
Capability = Literal["tools", "json_schema", "vision"]

__all__ = ["Executor", "RouterLike", "StreamedResponse"]

logger = logging.getLogger(__name__)

#: LiteLLM arguments a pool entry may carry in ``ModelSpec.extra`` (other extra fields, such
#: as LLMRouter's ``size``, describe the model and are not sent). ``extra["litellm_kwargs"]``
#: may hold any further arguments.
SPEC_CALL_KWARGS = frozenset(
    {
        "api_version",
        "custom_llm_provider",
        "extra_body",
        "extra_headers",
        "frequency_penalty",
        "max_tokens",
        "organization",
        "presence_penalty",
        "reasoning_effort",
        "seed",
        "stop",
        "temperature",
        "top_p",
    }
)
# In-process providers of this package: they need no key.
_KEYLESS_PROVIDERS = frozenset({"replay", "local"})
# Aliases between LiteLLM provider prefixes and the service names of LLMRouter pools.
_SERVICE_ALIASES = {"nvidia_nim": "nvidia", "azure_ai": "azure", "vertex_ai": "google"}
_MAX_ERROR_CHARS = 600


class RouterLike(Protocol):
    """What the executor needs from a router (every :class:`~llmrouter_core.Router` has it)."""

    models_: list[str]
    pool_: Pool

    def route(
        self, query: str, *, cost_weight: float | None = ..., allowed: Any = ...
    ) -> Decision: ...


@dataclass(frozen=True)
class _ModelFacts:
    """What planning reads of one pool model, looked up once per executor: the spec, its
    context window and its bounding prices (LiteLLM's table is offline and static)."""

    spec: ModelSpec
    window: int | None
    prices: tuple[float, float] | None


@dataclass
class _Plan:
    messages: list[sup.Message]
    decision: Decision
    order: tuple[str, ...]
    excluded: dict[str, str]
    budget: BudgetLike | None
    kwargs: dict[str, Any]
    bounds: dict[str, float]
    secrets: frozenset[str]
    started: float
    attempts: list[Attempt] = field(default_factory=list)
    reservation: Reservation | None = None
    route_args: tuple[str, float | None, tuple[str, ...] | None] | None = None


class Executor:
    """Routes requests and executes them with LiteLLM, with retries, fallbacks and budgets.

    Args:
        router: A fitted router (anything with ``models_``, ``pool_`` and ``route``).
        pool: The pool used to call the models (default: the router's). Use it to point a
            trained router at other endpoints, e.g. ``replay/<model>`` ids that answer with
            recorded responses. It must contain every model the router knows.
        budget: A shared spend limit: a :class:`Budget` (one for all requests), a
            :class:`BudgetManager` (one per ``user``), or a number of USD.
        keys: API keys: a :class:`KeyPool`, an ``API_KEYS``-formatted string, or ``None`` to
            read the ``API_KEYS`` environment variable.
        max_retries: Retries of one model on a transient failure before falling back.
        timeout: Seconds per call.
        cost_weight: Default lambda for routing (``None``: the router's default).
        routing_text: What the router reads: ``"last_user"`` (the last user message),
            ``"conversation"`` (every message), or a callable ``messages -> str``.
        fallback: Fall back down the decision's ranking when a model fails.
        backoff: First retry delay in seconds (doubles per retry, with jitter).
        max_backoff: Longest retry delay in seconds.
        limit_max_tokens: ``max_tokens`` set on calls under a budget or a per-request cap when
            the caller gives none, so every call's cost has an upper bound.
        litellm_kwargs: Default arguments of every LiteLLM call (e.g. ``temperature``).

    Example:
        >>> import llmrouter_core as lr                                     # doctest: +SKIP
        >>> router = lr.load_router("my-router")                           # doctest: +SKIP
        >>> ex = Executor(router, budget=5.0)                               # doctest: +SKIP
        >>> result = ex.complete("What is the capital of France?")          # doctest: +SKIP
        >>> result.answer, result.model, result.cost                        # doctest: +SKIP
    """

    def __init__(
        self,
        router: Any,
        *,
        pool: Pool | None = None,
        budget: Budget | BudgetManager | BudgetLike | float | None = None,
        keys: KeyPool | str | None = None,
        max_retries: int = 2,
        timeout: float = 60.0,
        cost_weight: float | None = None,
        routing_text: sup.RoutingText = "last_user",
        fallback: bool = True,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        limit_max_tokens: int = 1024,
        litellm_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        from llmrouter_core._lazy import import_litellm

        try:
            models = list(router.models_)
        except AttributeError:
            raise NotFittedError(
                f"{type(router).__name__} is not fitted; fit it or load a trained router"
            ) from None
        pool = pool if pool is not None else router.pool_
        missing = [m for m in models if m not in pool]
        if missing:
            raise UnknownModelError(
                f"the execution pool lacks the router's models: {', '.join(missing)}"
            )
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        if isinstance(budget, int | float):
            budget = Budget(float(budget))
        if isinstance(routing_text, str) and routing_text not in ("last_user", "conversation"):
            raise ValueError("routing_text must be 'last_user', 'conversation' or a callable")
        self.router = router
        self.pool = pool
        self.models: tuple[str, ...] = tuple(models)
        self.budget = budget
        self.keys = (
            keys
            if isinstance(keys, KeyPool)
            else (KeyPool.from_string(keys) if isinstance(keys, str) else KeyPool.from_env())
        )
        self.max_retries = int(max_retries)
        self.timeout = float(timeout)
        self.cost_weight = cost_weight
        self.routing_text = routing_text
        self.fallback = fallback
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.limit_max_tokens = int(limit_max_tokens)
        self.litellm_kwargs = dict(litellm_kwargs or {})
        self._litellm = import_litellm()
        self._services: dict[str, tuple[str, ...]] = {}
        # Pool models outside the router's (callable with ``model=``) get theirs on first use.
        self._spec_kwargs = {name: _spec_call_kwargs(self.pool[name]) for name in self.models}
        self._model_facts: dict[str, _ModelFacts] = {}
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _RouteBatcher] = (
            weakref.WeakKeyDictionary()
        )
        from llmrouter_core.providers import ensure_providers

        ensure_providers(self.pool.subset(self.models))

    def __repr__(self) -> str:
        return (
            f"Executor(router={type(self.router).__name__}, models={list(self.models)}, "
            f"budget={self.budget!r}, keys={self.keys!r}, max_retries={self.max_retries})"
        )

    # -- public API ------------------------------------------------------------------------
    def route(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Any] | None = None,
        response_format: Any = None,
        max_cost: float | None = None,
        user: str | None = None,
        cost_weight: float | None = None,
        **litellm_kwargs: Any,
    ) -> Decision:
        """The decision :meth:`complete` would act on, without calling any model."""
        return self._plan(
            messages, tools, response_format, None, max_cost, user, cost_weight, litellm_kwargs
        ).decision

    def supports(self, model: str, capability: Capability) -> bool:
        """Whether pool model ``model`` can serve ``capability`` (``"tools"``,
        ``"json_schema"`` or ``"vision"``): the pool's flag, else LiteLLM's bundled table. The
        project's own providers (``replay/``, ``local/``) have only the pool's flags."""
        return sup.supports(self._litellm, self.pool[model], capability)

    def capable(self, capability: Capability, models: Iterable[str] | None = None) -> list[str]:
        """The models (default: the router's) that can serve ``capability``, in order."""
        names = self.models if models is None else models
        return [m for m in names if self.supports(m, capability)]

    def context_window(self, model: str) -> int | None:
        """Maximum prompt tokens of pool model ``model`` (the pool's, else LiteLLM's;
        ``None`` = unknown)."""
        return self._facts(model).window

    def cost_bound(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        model: str,
        *,
        tools: Sequence[Any] | None = None,
        max_tokens: int | None = None,
    ) -> float | None:
        """The USD a budget reserves for calling ``model`` on ``messages``: the exact cost if
        the provider knows it in advance (replay), else prompt tokens bounded at 2 characters
        per token plus ``max_tokens`` (default ``limit_max_tokens``) of output at the higher of
        the pool's and LiteLLM's prices. ``None`` if no price is known."""
        msgs = sup.normalize_messages(messages)
        return self._cost_bound(
            self._facts(model),
            msgs,
            sup.input_token_bound(sup.prompt_chars(msgs, tools), len(msgs)),
            max_tokens if max_tokens is not None else self.limit_max_tokens,
        )

    def complete(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Any] | None = None,
        response_format: Any = None,
        model: str | None = None,
        max_cost: float | None = None,
        user: str | None = None,
        cost_weight: float | None = None,
        decision: Decision | None = None,
        **litellm_kwargs: Any,
    ) -> ExecutionResult:
        """Route ``messages`` and answer them.

        Args:
            messages: A prompt string or OpenAI-style messages.
            tools: Tool schemas; only models that support tools are considered.
            response_format: A JSON-schema response format (or pydantic class); only models
                that support JSON schemas are considered.
            model: Call this pool model instead of routing (no fallback).
            max_cost: Per-request cap in USD: models whose cost bound exceeds it are left out.
            user: Whose budget to charge when the executor has a :class:`BudgetManager`.
            cost_weight: lambda for this request (default: the executor's).
            decision: Act on this decision (e.g. one from :meth:`route` for the same
                request) instead of routing again; models of its ranking that cannot serve
                the request are skipped.
            **litellm_kwargs: Passed to ``litellm.completion`` (``temperature``,
                ``max_tokens``, ``mock_response``...).

        Raises:
            NoEligibleModelError: No model can serve the request.
            BudgetExceededError: No model's cost fits the cap or the remaining budget.
            AllModelsFailedError: Every eligible model failed; lists each attempt.
        """
        plan = self._plan(
            messages,
            tools,
            response_format,
            model,
            max_cost,
            user,
            cost_weight,
            litellm_kwargs,
            decision=decision,
        )
        completion = self._litellm.completion
        for name in plan.order:
            if not self._reserve(plan, name):
                continue
            retry = 0
            try:
                while True:
                    call = self._call_kwargs(plan, name)
                    t0 = time.perf_counter()
                    try:
                        response = completion(**call)
                    except Exception as exc:  # every failure is recorded
                        delay = self._failure(plan, name, exc, retry, t0)
                        if delay is None:
                            break
                        time.sleep(delay)
                        retry += 1
                        continue
                    return self._success(plan, name, response, retry, t0)
            finally:
                self._release(plan)
        raise self._all_failed(plan)

    async def acomplete(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Any] | None = None,
        response_format: Any = None,
        model: str | None = None,
        max_cost: float | None = None,
        user: str | None = None,
        cost_weight: float | None = None,
        decision: Decision | None = None,
        **litellm_kwargs: Any,
    ) -> ExecutionResult:
        """Async :meth:`complete` (``litellm.acompletion``, ``asyncio.sleep`` between retries).

        Requests that arrive in the same event-loop turn are routed together, with one
        vectorised ``route_batch`` call; each still gets the decision ``route`` would give.
        """
        plan = await self._aplan(
            messages,
            tools,
            response_format,
            model,
            max_cost,
            user,
            cost_weight,
            litellm_kwargs,
            decision=decision,
        )
        acompletion = self._litellm.acompletion
        for name in plan.order:
            if not self._reserve(plan, name):
                continue
            retry = 0
            try:
                while True:
                    call = self._call_kwargs(plan, name)
                    t0 = time.perf_counter()
                    try:
                        response = await acompletion(**call)
                    except asyncio.CancelledError:
                        self._settle_unfinished(plan, name, None)
                        raise
                    except Exception as exc:
                        delay = self._failure(plan, name, exc, retry, t0)
                        if delay is None:
                            break
                        await asyncio.sleep(delay)
                        retry += 1
                        continue
                    return self._success(plan, name, response, retry, t0)
            finally:
                # Also runs when the task is cancelled mid-call: the hold must not leak.
                self._release(plan)
        raise self._all_failed(plan)

    def stream(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Any] | None = None,
        response_format: Any = None,
        model: str | None = None,
        max_cost: float | None = None,
        user: str | None = None,
        cost_weight: float | None = None,
        decision: Decision | None = None,
        **litellm_kwargs: Any,
    ) -> Iterator[StreamChunk | ExecutionResult]:
        """Stream the answer: :class:`StreamChunk` items, then one final :class:`ExecutionResult`.

        A model that fails before its first text falls back like :meth:`complete`; a failure
        after text was delivered raises :class:`StreamInterruptedError` (with the partial text).
        """
        plan = self._plan(
            messages,
            tools,
            response_format,
            model,
            max_cost,
            user,
            cost_weight,
            litellm_kwargs,
            decision=decision,
        )
        completion = self._litellm.completion
        for name in plan.order:
            if not self._reserve(plan, name):
                continue
            retry = 0
            try:
                while True:
                    call = self._call_kwargs(plan, name, stream=True)
                    t0 = time.perf_counter()
                    chunks: list[Any] = []
                    delivered: list[str] = []
                    try:
                        for chunk in completion(**call):
                            chunks.append(chunk)
                            text = _delta_text(chunk)
                            if text:
                                delivered.append(text)
                                yield StreamChunk(text, name)
                    except GeneratorExit:  # the caller stopped reading
                        self._settle_unfinished(plan, name, delivered)
                        raise
                    except Exception as exc:
                        if delivered:
                            raise self._interrupted(plan, name, exc, retry, t0, delivered) from exc
                        delay = self._failure(plan, name, exc, retry, t0)
                        if delay is None:
                            break
                        time.sleep(delay)
                        retry += 1
                        continue
                    response = _stream_response(chunks)
                    yield self._success(plan, name, response, retry, t0, text="".join(delivered))
                    return
            finally:
                self._release(plan)
        raise self._all_failed(plan)

    async def astream(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Any] | None = None,
        response_format: Any = None,
        model: str | None = None,
        max_cost: float | None = None,
        user: str | None = None,
        cost_weight: float | None = None,
        decision: Decision | None = None,
        **litellm_kwargs: Any,
    ) -> AsyncIterator[StreamChunk | ExecutionResult]:
        """Async :meth:`stream`."""
        plan = await self._aplan(
            messages,
            tools,
            response_format,
            model,
            max_cost,
            user,
            cost_weight,
            litellm_kwargs,
            decision=decision,
        )
        acompletion = self._litellm.acompletion
        for name in plan.order:
            if not self._reserve(plan, name):
                continue
            retry = 0
            try:
                while True:
                    call = self._call_kwargs(plan, name, stream=True)
                    t0 = time.perf_counter()
                    chunks: list[Any] = []
                    delivered: list[str] = []
                    try:
                        async for chunk in await acompletion(**call):
                            chunks.append(chunk)
                            text = _delta_text(chunk)
                            if text:
                                delivered.append(text)
                                yield StreamChunk(text, name)
                    except (GeneratorExit, asyncio.CancelledError):
                        self._settle_unfinished(plan, name, delivered)
                        raise
                    except Exception as exc:
                        if delivered:
                            raise self._interrupted(plan, name, exc, retry, t0, delivered) from exc
                        delay = self._failure(plan, name, exc, retry, t0)
                        if delay is None:
                            break
                        await asyncio.sleep(delay)
                        retry += 1
                        continue
                    response = _stream_response(chunks)
                    yield self._success(plan, name, response, retry, t0, text="".join(delivered))
                    return
            finally:
                self._release(plan)
        raise self._all_failed(plan)

    # -- planning ----------------------------------------------------------------------------
    def _budget_for(self, user: str | None) -> BudgetLike | None:
        if self.budget is None:
            return None
        if isinstance(self.budget, BudgetManager):
            return self.budget.get(user)
        return self.budget

    def _prepare(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        tools: Sequence[Any] | None,
        response_format: Any,
        model: str | None,
        max_cost: float | None,
        user: str | None,
        cost_weight: float | None,
        litellm_kwargs: Mapping[str, Any],
        *,
        decision: Decision | None = None,
    ) -> _Plan:
        started = time.perf_counter()
        msgs = sup.normalize_messages(messages)
        if max_cost is not None and not (max_cost >= 0):
            raise InvalidRequestError("max_cost must be a non-negative number of USD")
        for reserved in ("model", "messages", "stream"):
            if reserved in litellm_kwargs:
                raise InvalidRequestError(f"{reserved!r} is set by the executor")
        kwargs = {**self.litellm_kwargs, **litellm_kwargs}
        if tools:
            kwargs["tools"] = list(tools)
        if response_format is not None:
            kwargs["response_format"] = response_format
        budget = self._budget_for(user)
        limited = budget is not None or max_cost is not None
        max_tokens = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
        if limited and max_tokens is None:
            max_tokens = kwargs["max_tokens"] = self.limit_max_tokens
        chars = sup.prompt_chars(msgs, tools)
        n_msgs = len(msgs)
        secrets = self.keys.secrets
        if isinstance(kwargs.get("api_key"), str):
            secrets = secrets | {kwargs["api_key"]}

        if model is not None:
            if model not in self.pool:
                raise UnknownModelError(
                    f"unknown model {model!r}; the pool has: {', '.join(self.pool.names)}"
                )
            candidates: tuple[str, ...] = (model,)
        else:
            candidates = self.models
        excluded: dict[str, str] = {}
        cost_excluded: set[str] = set()
        bounds: dict[str, float] = {}
        left = budget.remaining if budget is not None else math.inf
        json_schema = sup.wants_json_schema(response_format)
        est_tokens = sup.input_token_estimate(chars, n_msgs)
        tokens_bound = sup.input_token_bound(chars, n_msgs)
        litellm = self._litellm
        for name in candidates:
            facts = self._facts(name)
            spec = facts.spec
            if model is None:
                if tools and not sup.supports(litellm, spec, "tools"):
                    excluded[name] = "does not support tools"
                    continue
                if json_schema and not sup.supports(litellm, spec, "json_schema"):
                    excluded[name] = "does not support JSON-schema output"
                    continue
                window = facts.window
                if window is not None and est_tokens > window:
                    excluded[name] = (
                        f"prompt of ~{est_tokens} tokens exceeds its context window of {window}"
                    )
                    continue
            if limited:
                bound = self._cost_bound(facts, msgs, tokens_bound, max_tokens)
                if bound is None:
                    continue
                bounds[name] = bound
                if max_cost is not None and bound > max_cost:
                    excluded[name] = f"cost bound ${bound:.6g} exceeds max_cost ${max_cost:.6g}"
                    cost_excluded.add(name)
                elif bound > left:
                    excluded[name] = (
                        f"cost bound ${bound:.6g} exceeds the ${left:.6g} left of the budget"
                    )
                    cost_excluded.add(name)
        eligible = [m for m in candidates if m not in excluded]
        if not eligible:
            if cost_excluded and cost_excluded == set(excluded):
                reasons = "; ".join(f"{m}: {why}" for m, why in excluded.items())
                raise BudgetExceededError(f"no model fits the spend limits ({reasons})")
            raise NoEligibleModelError(excluded)

        plan = _Plan(
            messages=msgs,
            decision=decision,  # type: ignore[arg-type]  # set below or by the caller
            order=(),
            excluded=excluded,
            budget=budget,
            kwargs=kwargs,
            bounds=bounds,
            secrets=secrets,
            started=started,
        )
        if model is not None:
            plan.decision = Decision(
                model=model,
                ranked=(model,),
                quality={},
                cost={},
                cost_weight=0.0,
                router="forced",
                reason="model named by the caller",
            )
            plan.order = (model,)
        elif decision is not None:
            unknown = [m for m in decision.ranked if m not in self.models]
            if unknown:
                raise UnknownModelError(
                    f"the decision ranks models the router does not know: {', '.join(unknown)}"
                )
            order = tuple(decision.ranked) if self.fallback else (decision.model,)
            plan.order = tuple(m for m in order if m in eligible)
            if not plan.order:
                raise NoEligibleModelError(
                    excluded or {m: "not among the eligible models" for m in decision.ranked}
                )
        else:
            text = sup.routing_text(msgs, self.routing_text)
            weight = cost_weight if cost_weight is not None else self.cost_weight
            allowed = tuple(eligible) if len(eligible) < len(self.models) else None
            plan.route_args = (text, weight, allowed)
        return plan

    def _plan(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        tools: Sequence[Any] | None,
        response_format: Any,
        model: str | None,
        max_cost: float | None,
        user: str | None,
        cost_weight: float | None,
        litellm_kwargs: Mapping[str, Any],
        *,
        decision: Decision | None = None,
    ) -> _Plan:
        plan = self._prepare(
            messages,
            tools,
            response_format,
            model,
            max_cost,
            user,
            cost_weight,
            litellm_kwargs,
            decision=decision,
        )
        if plan.route_args is not None:
            text, weight, allowed = plan.route_args
            self._routed(plan, self.router.route(text, cost_weight=weight, allowed=allowed))
        return plan

    async def _aplan(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        tools: Sequence[Any] | None,
        response_format: Any,
        model: str | None,
        max_cost: float | None,
        user: str | None,
        cost_weight: float | None,
        litellm_kwargs: Mapping[str, Any],
        *,
        decision: Decision | None = None,
    ) -> _Plan:
        """:meth:`_plan` for async callers: requests that arrive together are routed in one
        ``route_batch`` call (one vectorised prediction instead of one per request)."""
        plan = self._prepare(
            messages,
            tools,
            response_format,
            model,
            max_cost,
            user,
            cost_weight,
            litellm_kwargs,
            decision=decision,
        )
        if plan.route_args is not None:
            self._routed(plan, await self._batcher().route(*plan.route_args))
        return plan

    def _routed(self, plan: _Plan, decision: Decision) -> None:
        plan.decision = decision
        order = tuple(decision.ranked) if self.fallback else (decision.model,)
        plan.order = tuple(m for m in order if m not in plan.excluded)
        plan.route_args = None

    def _batcher(self) -> _RouteBatcher:
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _RouteBatcher(self.router, loop)
        return batcher

    def _facts(self, name: str) -> _ModelFacts:
        """The :class:`_ModelFacts` of pool model ``name`` (cached, like the model's call
        arguments: the executor's pool is fixed when it is built)."""
        facts = self._model_facts.get(name)
        if facts is None:
            spec = self.pool[name]
            facts = self._model_facts[name] = _ModelFacts(
                spec,
                sup.context_window(self._litellm, spec),
                sup.bound_prices(self._litellm, spec),
            )
        return facts

    @staticmethod
    def _cost_bound(
        facts: _ModelFacts,
        messages: list[sup.Message],
        tokens_in: int,
        max_tokens: int | None,
    ) -> float | None:
        """Upper bound of one call's cost given a bound on its prompt tokens (``None`` if
        neither the pool nor LiteLLM knows the model's prices and its provider cannot tell the
        cost in advance)."""
        exact = known_call_cost(facts.spec.litellm_model, messages)
        if exact is not None:
            return exact
        prices = facts.prices
        if prices is None:
            return None
        return prices[0] * tokens_in + prices[1] * float(max_tokens or 0)

    # -- attempts --------------------------------------------------------------------------
    def _reserve(self, plan: _Plan, name: str) -> bool:
        """Hold the model's cost bound on the budget; record a skip if it does not fit."""
        plan.reservation = None
        if plan.budget is None:
            return True
        amount = plan.bounds.get(name)
        if amount is None:
            # Unpriced model: the router's predicted cost is the best bound available.
            amount = max(float(plan.decision.cost.get(name, 0.0) or 0.0), 0.0)
        reservation = plan.budget.try_reserve(amount)
        if reservation is None:
            plan.attempts.append(
                Attempt(
                    model=name,
                    litellm_model=self.pool[name].litellm_model,
                    outcome="skipped",
                    error_type="budget",
                    error=f"cost bound ${amount:.6g} does not fit the "
                    f"${plan.budget.remaining:.6g} left of the budget",
                    action="fallback",
                )
            )
            return False
        plan.reservation = reservation
        return True

    def _release(self, plan: _Plan) -> None:
        if plan.reservation is not None and plan.budget is not None:
            plan.budget.release(plan.reservation)
        plan.reservation = None

    def _call_kwargs(self, plan: _Plan, name: str, *, stream: bool = False) -> dict[str, Any]:
        spec = self.pool[name]
        spec_kwargs = self._spec_kwargs.get(name)
        if spec_kwargs is None:
            from llmrouter_core.providers import ensure_providers

            ensure_providers([spec])
            spec_kwargs = self._spec_kwargs[name] = _spec_call_kwargs(spec)
        call = dict(spec_kwargs)
        call.update(plan.kwargs)
        call["model"] = spec.litellm_model
        call["messages"] = plan.messages
        call.setdefault("timeout", self.timeout)
        if spec.api_base and "api_base" not in call:
            call["api_base"] = spec.api_base
        if "api_key" not in call:
            key = self._key_for(spec)
            if key:
                call["api_key"] = key
        if stream:
            call["stream"] = True
            call.setdefault("stream_options", {"include_usage": True})
        return call

    def _key_for(self, spec: ModelSpec) -> str | None:
        if spec.api_key_env:
            value = os.environ.get(spec.api_key_env)
            if value:
                return value
        services = self._services.get(spec.name)
        if services is None:
            services = self._services[spec.name] = _services_of(spec, self._litellm)
        if not services:
            return None
        return self.keys.next_key(*services)

    def _redact(self, plan: _Plan, spec: ModelSpec, text: str) -> str:
        secrets = set(plan.secrets)
        if spec.api_key_env and os.environ.get(spec.api_key_env):
            secrets.add(os.environ[spec.api_key_env])
        text = redact_secrets(text, secrets)
        if len(text) > _MAX_ERROR_CHARS:
            text = text[:_MAX_ERROR_CHARS] + "..."
        return text

    def _failure(
        self, plan: _Plan, name: str, exc: BaseException, retry: int, t0: float
    ) -> float | None:
        """Record a failed call; return the delay before retrying, or ``None`` to move on."""
        spec = self.pool[name]
        kind = sup.classify_error(exc)
        will_retry = kind == "retry" and retry < self.max_retries
        plan.attempts.append(
            Attempt(
                model=name,
                litellm_model=spec.litellm_model,
                outcome="error",
                error_type=type(exc).__name__,
                error=self._redact(plan, spec, str(exc)),
                latency_s=time.perf_counter() - t0,
                retry=retry,
                action="retry" if will_retry else "fallback",
            )
        )
        logger.info(
            "model %s failed (%s), %s",
            name,
            type(exc).__name__,
            "retrying" if will_retry else "moving on",
        )
        if not will_retry:
            return None
        hinted = sup.retry_after(exc)
        if hinted is not None:
            return min(max(hinted, 0.0), self.max_backoff)
        with self._rng_lock:
            jitter = 0.5 + 0.5 * self._rng.random()
        return min(self.max_backoff, self.backoff * (2.0**retry)) * jitter

    def _interrupted(
        self,
        plan: _Plan,
        name: str,
        exc: BaseException,
        retry: int,
        t0: float,
        delivered: list[str],
    ) -> StreamInterruptedError:
        spec = self.pool[name]
        plan.attempts.append(
            Attempt(
                model=name,
                litellm_model=spec.litellm_model,
                outcome="error",
                error_type=type(exc).__name__,
                error=self._redact(plan, spec, str(exc)),
                latency_s=time.perf_counter() - t0,
                retry=retry,
                action="stop",
            )
        )
        self._settle_unfinished(plan, name, delivered)
        partial = "".join(delivered)
        return StreamInterruptedError(
            f"the stream from {name} failed after {len(partial)} characters: "
            f"{plan.attempts[-1].error_type}: {plan.attempts[-1].error}",
            tuple(plan.attempts),
            partial,
        )

    def _settle_unfinished(self, plan: _Plan, name: str, delivered: list[str] | None) -> None:
        """Account a call that started but did not end normally (a stream the caller stopped
        reading or that broke mid-answer, a cancelled task): the provider may bill it. Text
        already delivered is charged at its estimated cost; an unknown outcome at the reserved
        bound. Never more than was reserved, so the budget still holds."""
        reservation, budget = plan.reservation, plan.budget
        if reservation is None or budget is None:
            return
        amount = reservation.amount
        if delivered is not None:
            facts = self._facts(name)
            known = known_call_cost(facts.spec.litellm_model, plan.messages)
            prices = facts.prices
            if known is not None:
                amount = known
            elif prices is not None:
                chars = sup.prompt_chars(plan.messages, plan.kwargs.get("tools"))
                n_in = sup.input_token_estimate(chars, len(plan.messages))
                n_out = math.ceil(len("".join(delivered)) / 4)
                amount = prices[0] * n_in + prices[1] * n_out
        budget.settle(reservation, min(amount, reservation.amount))
        plan.reservation = None

    def _success(
        self,
        plan: _Plan,
        name: str,
        response: Any,
        retry: int,
        t0: float,
        *,
        text: str | None = None,
    ) -> ExecutionResult:
        spec = self.pool[name]
        latency = time.perf_counter() - t0
        answer = sup.answer_text(response) if text is None else text
        prompt_tokens, completion_tokens = sup.usage_tokens(response)
        if prompt_tokens is None:
            prompt_tokens = sup.input_token_estimate(
                sup.prompt_chars(plan.messages, plan.kwargs.get("tools")), len(plan.messages)
            )
        if completion_tokens is None:
            completion_tokens = math.ceil(len(answer) / 4)
        cost, source = self._cost_of(
            spec, response, plan.messages, prompt_tokens, completion_tokens
        )
        if plan.reservation is not None and plan.budget is not None:
            if cost > plan.reservation.amount * (1 + 1e-9) + 1e-12:
                logger.warning(
                    "model %s cost $%.6g, above the $%.6g reserved for it",
                    name,
                    cost,
                    plan.reservation.amount,
                )
            plan.budget.settle(plan.reservation, cost)
            plan.reservation = None
        plan.attempts.append(
            Attempt(
                model=name,
                litellm_model=spec.litellm_model,
                outcome="success",
                latency_s=latency,
                retry=retry,
                cost=cost,
            )
        )
        return ExecutionResult(
            answer=answer,
            model=name,
            litellm_model=spec.litellm_model,
            decision=plan.decision,
            attempts=tuple(plan.attempts),
            excluded=dict(plan.excluded),
            input_tokens=int(prompt_tokens),
            output_tokens=int(completion_tokens),
            cost=cost,
            cost_source=source,  # type: ignore[arg-type]
            latency_s=time.perf_counter() - plan.started,
            response=response,
        )

    def _cost_of(
        self,
        spec: ModelSpec,
        response: Any,
        messages: list[sup.Message],
        prompt_tokens: int,
        completion_tokens: int,
    ) -> tuple[float, str]:
        """USD cost of a call: LiteLLM's (or the custom provider's) figure, else the pool's
        prices x tokens."""
        # An in-process provider (replay) knows the exact cost; LiteLLM's own figure for a
        # streamed replay would price the tokens of the underlying model name instead.
        known = known_call_cost(spec.litellm_model, messages)
        if known is not None:
            return known, "provider"
        reported = sup.provider_cost(response)
        if reported is not None and (reported > 0 or not spec.has_prices):
            return reported, "provider"
        if reported is None and sup.litellm_model_info(self._litellm, spec.litellm_model):
            try:
                costs = self._litellm.cost_per_token(
                    model=spec.litellm_model,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                )
                value = float(sum(costs))
                if math.isfinite(value) and value >= 0:
                    return value, "provider"
            except Exception:  # fall back to the pool's prices
                logger.debug("LiteLLM could not cost a %s response", spec.litellm_model)
        if spec.has_prices:
            return spec.estimate_cost(prompt_tokens, completion_tokens), "pool"
        if reported is not None:
            return reported, "provider"
        return 0.0, "unknown"

    def _all_failed(self, plan: _Plan) -> AllModelsFailedError | BudgetExceededError:
        attempts = tuple(plan.attempts)
        if attempts and all(a.outcome == "skipped" for a in attempts):
            lines = "; ".join(a.describe() for a in attempts)
            return BudgetExceededError(f"no model fits the remaining budget ({lines})")
        return AllModelsFailedError(attempts, plan.excluded)


# -- helpers ---------------------------------------------------------------------------------


class _RouteBatcher:
    """Coalesces the routing of requests that arrive in the same event-loop turn.

    The first request of a turn schedules a flush with ``call_soon``; requests arriving before
    it runs join the batch; the flush routes them with one ``route_batch`` call per distinct
    (cost weight, allowed models) and resolves each request's future. Per-row predictions do
    not depend on the batch, so each decision equals what ``route`` would return.
    """

    def __init__(self, router: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.router = router
        self.loop = loop
        self.pending: dict[tuple[Any, ...], list[tuple[str, asyncio.Future[Decision]]]] = {}

    def route(
        self, text: str, weight: float | None, allowed: tuple[str, ...] | None
    ) -> asyncio.Future[Decision]:
        key = (weight, allowed)
        future: asyncio.Future[Decision] = self.loop.create_future()
        batch = self.pending.setdefault(key, [])
        batch.append((text, future))
        if len(batch) == 1:
            self.loop.call_soon(self._flush, key)
        return future

    def _flush(self, key: tuple[Any, ...]) -> None:
        batch = self.pending.pop(key, [])
        live = [(t, f) for t, f in batch if not f.done()]
        if not live:
            return
        weight, allowed = key
        try:
            route_batch = getattr(self.router, "route_batch", None)
            if len(live) == 1 or route_batch is None:
                decisions = [
                    self.router.route(t, cost_weight=weight, allowed=allowed) for t, _ in live
                ]
            else:
                decisions = route_batch([t for t, _ in live], cost_weight=weight, allowed=allowed)
        except Exception as exc:  # every waiting request gets the routing error
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), decision in zip(live, decisions, strict=True):
            if not fut.done():
                fut.set_result(decision)


def _spec_call_kwargs(spec: ModelSpec) -> dict[str, Any]:
    extra = dict(spec.extra)
    out = {k: v for k, v in extra.items() if k in SPEC_CALL_KWARGS}
    nested = extra.get("litellm_kwargs")
    if isinstance(nested, Mapping):
        out.update(nested)
    return out


def _services_of(spec: ModelSpec, litellm: Any) -> tuple[str, ...]:
    """Service names under which ``spec``'s keys may be listed in ``API_KEYS``."""
    names: list[str] = []
    service = spec.extra.get("service")
    if isinstance(service, str) and service:
        names.append(service)
    provider, sep, _ = spec.litellm_model.partition("/")
    if sep and provider in _KEYLESS_PROVIDERS:
        return ()
    if not sep:
        info = sup.litellm_model_info(litellm, spec.litellm_model) or {}
        provider = str(info.get("litellm_provider") or "")
    if provider:
        names.append(provider)
        if provider in _SERVICE_ALIASES:
            names.append(_SERVICE_ALIASES[provider])
    names.append(spec.name)
    return tuple(names)


@dataclass(frozen=True)
class StreamedResponse:
    """The ``response`` of a streamed :class:`ExecutionResult`: the LiteLLM chunks and the
    usage they reported."""

    chunks: tuple[Any, ...]
    usage: Any = None

    def tool_calls(self, *, fill_ids: bool = False) -> list[dict[str, Any]]:
        """The tool calls assembled from the chunks' deltas, in index order, as OpenAI-style
        dicts ``{"id", "type", "function": {"name", "arguments"}}`` (arguments: the JSON text).

        Args:
            fill_ids: Give a call whose chunks carried no id a fresh ``call_...`` id.

        Example:
            >>> from types import SimpleNamespace as NS
            >>> def chunk(**call):
            ...     delta = NS(tool_calls=[NS(**call)])
            ...     return NS(choices=[NS(delta=delta)])
            >>> fn = NS(name="add", arguments='{"a": ')
            >>> parts = [chunk(index=0, id="c1", function=fn),
            ...          chunk(index=0, id=None, function=NS(name=None, arguments="1}"))]
            >>> StreamedResponse(tuple(parts)).tool_calls()[0]["function"]
            {'name': 'add', 'arguments': '{"a": 1}'}
        """
        calls: dict[int, dict[str, Any]] = {}
        for chunk in self.chunks:
            try:
                deltas = chunk.choices[0].delta.tool_calls or []
            except (AttributeError, IndexError, TypeError):
                continue
            for delta in deltas:
                index = int(getattr(delta, "index", 0) or 0)
                entry = calls.setdefault(
                    index,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if getattr(delta, "id", None):
                    entry["id"] = delta.id
                fn = getattr(delta, "function", None)
                if fn is not None:
                    if getattr(fn, "name", None):
                        entry["function"]["name"] = fn.name
                    if getattr(fn, "arguments", None):
                        entry["function"]["arguments"] += fn.arguments
        out = [calls[i] for i in sorted(calls)]
        if fill_ids:
            for call in out:
                call["id"] = call["id"] or f"call_{uuid.uuid4().hex[:12]}"
        return out


def _stream_response(chunks: list[Any]) -> StreamedResponse:
    usage = None
    for chunk in reversed(chunks):
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            break
    return StreamedResponse(tuple(chunks), usage)


def _delta_text(chunk: Any) -> str:
    try:
        content = chunk.choices[0].delta.content
    except (AttributeError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""
