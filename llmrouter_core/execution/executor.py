"""Route a request, call the chosen model through LiteLLM, fall back down the ranking.

The :class:`Executor` is the one place where a routing decision meets a model call. Per
request it:

1. leaves out the pool models that cannot serve the request (context window, tools, JSON
   schema, images) or whose cost bound does not fit the per-request cap or the budget;
2. asks the router for a :class:`~llmrouter_core.decision.Decision` among the rest;
3. calls the chosen model with LiteLLM; transient failures (rate limit, timeout, connection,
   5xx) are retried with exponential backoff, other failures (context window, content
   filter, bad request, auth) move on to the next model of the ranking;
4. returns an :class:`ExecutionResult` with the answer, the decision, the model that actually
   answered, tokens, cost, latency and every attempt; or raises
   :class:`AllModelsFailedError` listing each attempt.

A decision that carries a plan (a cascade or a fan-out, see :mod:`llmrouter_core.decision`)
is carried out by :mod:`llmrouter_core.execution.plans`, each of its calls through the same
attempt loop; a caller may ask for one per request with ``policy=``.

Steps 1-2 live here (:meth:`Executor._prepare`); steps 3-4 are one state machine,
:class:`~llmrouter_core.execution.attempts.AttemptLoop`, run by the four drivers of
:mod:`llmrouter_core.execution.drivers` behind :meth:`~Executor.complete`,
:meth:`~Executor.acomplete`, :meth:`~Executor.stream` and :meth:`~Executor.astream`.

Budgets hold under concurrency: each call reserves an upper bound of its cost before it starts
and settles with its actual cost when it ends (see :mod:`llmrouter_core.execution.budget`). A
model without a known price gets its bound from the executor's ``max_price``; without one it is
left out of any request under a budget or a cap.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

from llmrouter_core.decision import Decision
from llmrouter_core.errors import NotFittedError, UnknownModelError
from llmrouter_core.execution import _support as sup
from llmrouter_core.execution.attempts import AttemptLoop
from llmrouter_core.execution.budget import (
    Budget,
    BudgetExceededError,
    BudgetLike,
    BudgetManager,
    unspent_of,
)
from llmrouter_core.execution.drivers import (
    StreamedResponse,
    run_acomplete,
    run_astream,
    run_complete,
    run_stream,
)
from llmrouter_core.execution.keys import KeyPool
from llmrouter_core.execution.plans import aexecute_plan, astream_plan, execute_plan, stream_plan
from llmrouter_core.execution.request import ModelFacts, Plan, Request, RouteBatcher, cost_bound
from llmrouter_core.execution.results import (
    ExecutionResult,
    NoEligibleModelError,
    StreamChunk,
)
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.providers._registry import known_call_cost
from llmrouter_core.secrets import (
    install_log_redaction,
    is_secret_name,
    redact,
    register_env_secrets,
    register_secret,
)

#: A capability a request may need from the model that answers it.
Capability = Literal["tools", "json_schema", "vision"]

__all__ = ["Capability", "Executor", "RouterLike", "StreamedResponse"]

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
_NO_PRICE = "no known price bounds its cost (give the pool its prices, or the executor a max_price)"


class RouterLike(Protocol):
    """What the executor needs from a router (every :class:`~llmrouter_core.Router` has it).

    Optional: ``route(..., policy=...)`` for requests that name a policy,
    ``route(..., user=...)`` for requests that name a user (a personalized router), and
    ``acceptor(name)`` for decisions that carry a cascade (see
    :mod:`llmrouter_core.execution.plans`).
    """

    models_: list[str]
    pool_: Pool

    def route(
        self, query: str, *, cost_weight: float | None = ..., allowed: Any = ...
    ) -> Decision: ...


class Executor:
    """Routes requests and executes them with LiteLLM, with retries, fallbacks and budgets.

    Args:
        router: A fitted router (anything with ``models_``, ``pool_`` and ``route``).
        pool: The pool used to call the models (default: the router's). Use it to point a
            trained router at other endpoints, e.g. ``replay/<model>`` ids that answer with
            recorded responses. It must contain every model the router knows. With
            ``LLMROUTER_REPLAY_DATA`` set, the router's own pool is called as ``replay/<name>``
            (:func:`~llmrouter_core.providers.replay.replay_from_env`).
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
        max_price: USD per 1M tokens (input and output) assumed for a model whose price
            neither the pool nor LiteLLM knows, to bound its cost under a budget or a cap
            (and to charge it when the provider reports no cost). ``None``: such a model is
            left out of every request under a budget or a cap.
        admission_timeout: Longest wait, in seconds, for a budget to have room for a call's
            cost bound while other calls are in flight (0: refuse at once).
        transport: What makes the calls: LiteLLM (``None``) or an object with its interface,
            e.g. :class:`~llmrouter_core.execution.direct.DirectOpenAI`.

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
        max_price: float | None = None,
        admission_timeout: float = 60.0,
        transport: Any = None,
    ) -> None:
        from llmrouter_core._lazy import import_litellm

        try:
            models = list(router.models_)
        except AttributeError:
            raise NotFittedError(
                f"{type(router).__name__} is not fitted; fit it or load a trained router"
            ) from None
        if pool is None:
            from llmrouter_core.providers.replay import replay_from_env

            pool = replay_from_env(router.pool_)
        missing = [m for m in models if m not in pool]
        if missing:
            raise UnknownModelError(
                f"the execution pool lacks the router's models: {', '.join(missing)}"
            )
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        if max_price is not None and not (math.isfinite(max_price) and max_price >= 0):
            raise ValueError("max_price must be a non-negative number of USD per 1M tokens")
        if not admission_timeout >= 0:
            raise ValueError("admission_timeout must be >= 0 seconds")
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
        self.max_price = None if max_price is None else float(max_price)
        self.admission_timeout = float(admission_timeout)
        self._litellm = import_litellm() if transport is None else transport
        self._services: dict[str, tuple[str, ...]] = {}
        # Pool models outside the router's (callable with ``model=``) get theirs on first use.
        self._spec_kwargs = {name: _spec_call_kwargs(self.pool[name]) for name in self.models}
        self._model_facts: dict[str, ModelFacts] = {}
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RouteBatcher] = (
            weakref.WeakKeyDictionary()
        )
        # Every secret this executor may send is scrubbed by value from errors and logs.
        register_env_secrets()
        _register_call_secrets(self.litellm_kwargs)
        for spec in self.pool:
            _register_spec_secrets(spec)
        install_log_redaction()
        from llmrouter_core.providers import ensure_providers

        ensure_providers(self.pool.subset(self.models))

    def __repr__(self) -> str:
        return redact(
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
        policy: Any = None,
        **litellm_kwargs: Any,
    ) -> Decision:
        """The decision :meth:`complete` would act on, without calling any model."""
        request = Request.build(
            messages,
            tools=tools,
            response_format=response_format,
            max_cost=max_cost,
            user=user,
            cost_weight=cost_weight,
            policy=policy,
            **litellm_kwargs,
        )
        decision = self._plan(request).decision
        assert decision is not None
        return decision

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
        the pool's and LiteLLM's prices (``max_price`` where neither knows one). ``None`` if
        no price is known."""
        msgs = sup.normalize_messages(messages)
        facts = self._facts(model)
        return cost_bound(
            known_call_cost(facts.spec.litellm_model, msgs),
            facts.prices,
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
        policy: Any = None,
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
            user: Who asks: whose budget to charge when the executor has a
                :class:`BudgetManager`, and whose preferences a personalized router reads.
            cost_weight: lambda for this request (default: the executor's).
            decision: Act on this decision (e.g. one from :meth:`route` for the same
                request) instead of routing again; models of its ranking that cannot serve
                the request are skipped.
            policy: Route this request with this policy (e.g. a
                :class:`~llmrouter_core.policy.CascadePolicy` or
                :class:`~llmrouter_core.policy.FanOutPolicy`) instead of the router's.
                A decision that carries a plan (a cascade, a fan-out) is carried out by
                :mod:`llmrouter_core.execution.plans`: ``result.steps`` lists each model
                tried and ``result.cost`` is the total of every call.
            **litellm_kwargs: Passed to ``litellm.completion`` (``temperature``,
                ``max_tokens``, ``mock_response``...).

        Raises:
            NoEligibleModelError: No model can serve the request.
            BudgetExceededError: No model's cost fits the cap or the budget.
            AllModelsFailedError: Every eligible model failed; lists each attempt.
        """
        request = Request.build(
            messages,
            tools=tools,
            response_format=response_format,
            model=model,
            max_cost=max_cost,
            user=user,
            cost_weight=cost_weight,
            decision=decision,
            policy=policy,
            **litellm_kwargs,
        )
        plan = self._plan(request)
        if _has_plan(plan):
            return execute_plan(self, plan, self._litellm.completion)
        return run_complete(AttemptLoop(self, plan), self._litellm.completion)

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
        policy: Any = None,
        **litellm_kwargs: Any,
    ) -> ExecutionResult:
        """Async :meth:`complete` (``litellm.acompletion``, ``asyncio.sleep`` between retries).

        Requests that arrive in the same event-loop turn are routed together, with one
        vectorised ``route_batch`` call; each still gets the decision ``route`` would give.
        """
        request = Request.build(
            messages,
            tools=tools,
            response_format=response_format,
            model=model,
            max_cost=max_cost,
            user=user,
            cost_weight=cost_weight,
            decision=decision,
            policy=policy,
            **litellm_kwargs,
        )
        plan = await self._aplan(request)
        if _has_plan(plan):
            return await aexecute_plan(self, plan, self._litellm.acompletion)
        return await run_acomplete(AttemptLoop(self, plan), self._litellm.acompletion)

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
        policy: Any = None,
        **litellm_kwargs: Any,
    ) -> Iterator[StreamChunk | ExecutionResult]:
        """Stream the answer: :class:`StreamChunk` items, then one final :class:`ExecutionResult`.

        A model that fails before its first text falls back like :meth:`complete`; a failure
        after text was delivered raises :class:`StreamInterruptedError` (with the partial text).
        A plan streams the answer it keeps: a cascade's last stage for real, an answer
        accepted at an earlier stage (or a fan-out's) as one chunk once it is kept.
        """
        request = Request.build(
            messages,
            tools=tools,
            response_format=response_format,
            model=model,
            max_cost=max_cost,
            user=user,
            cost_weight=cost_weight,
            decision=decision,
            policy=policy,
            **litellm_kwargs,
        )
        plan = self._plan(request)
        if _has_plan(plan):
            yield from stream_plan(self, plan, self._litellm.completion)
            return
        yield from run_stream(AttemptLoop(self, plan, stream=True), self._litellm.completion)

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
        policy: Any = None,
        **litellm_kwargs: Any,
    ) -> AsyncIterator[StreamChunk | ExecutionResult]:
        """Async :meth:`stream`."""
        request = Request.build(
            messages,
            tools=tools,
            response_format=response_format,
            model=model,
            max_cost=max_cost,
            user=user,
            cost_weight=cost_weight,
            decision=decision,
            policy=policy,
            **litellm_kwargs,
        )
        plan = await self._aplan(request)
        driver = (
            astream_plan(self, plan, self._litellm.acompletion)
            if _has_plan(plan)
            else run_astream(AttemptLoop(self, plan, stream=True), self._litellm.acompletion)
        )
        try:
            async for item in driver:
                yield item
        finally:
            # Closing this generator closes the driver at once (not at garbage collection),
            # so an abandoned stream is accounted while the caller still holds the budget.
            await driver.aclose()

    # -- planning ----------------------------------------------------------------------------
    def _budget_for(self, user: str | None) -> BudgetLike | None:
        if self.budget is None:
            return None
        if isinstance(self.budget, BudgetManager):
            return self.budget.get(user)
        return self.budget

    def _prepare(self, request: Request, unspent: float | None = None) -> Plan:
        """The plan of ``request``: eligible models, their cost bounds, the arguments; routed
        here if the request names a model or a decision, else by the caller. ``unspent``:
        what the budget has not spent, if the caller asked it already."""
        started = time.perf_counter()
        msgs = request.messages
        tools = request.tools
        kwargs = {**self.litellm_kwargs, **request.litellm_kwargs}
        if tools:
            kwargs["tools"] = list(tools)
        if request.response_format is not None:
            kwargs["response_format"] = request.response_format
        _register_call_secrets(request.litellm_kwargs)
        budget = self._budget_for(request.user)
        max_cost = request.max_cost
        limited = budget is not None or max_cost is not None
        max_tokens = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
        if limited and max_tokens is None:
            max_tokens = kwargs["max_tokens"] = self.limit_max_tokens
        chars = sup.prompt_chars(msgs, tools)
        n_msgs = len(msgs)

        model = request.model
        if model is not None:
            if model not in self.pool.names:
                raise UnknownModelError(
                    f"unknown model {model!r}; the pool has: {', '.join(self.pool.names)}"
                )
            candidates: tuple[str, ...] = (model,)
        else:
            candidates = self.models
        excluded: dict[str, str] = {}
        cost_excluded: set[str] = set()
        bounds: dict[str, float] = {}
        # Calls in flight will give back what they hold beyond their cost, so a bound is
        # weighed against what is not spent yet; admission then waits for the room.
        left = unspent
        if left is None:
            left = math.inf if budget is None else unspent_of(budget)
        json_schema = sup.wants_json_schema(request.response_format)
        vision = sup.has_images(msgs)
        est_tokens = sup.input_token_estimate(chars, n_msgs)
        tokens_bound = sup.input_token_bound(chars, n_msgs)
        litellm = self._litellm
        for name in candidates:
            facts = self._facts(name)
            spec = facts.spec
            if model is None:
                lacking = sup.lacking(litellm, spec, bool(tools), json_schema, vision)
                if lacking is not None:
                    excluded[name] = lacking
                    continue
                window = facts.window
                if window is not None and est_tokens > window:
                    excluded[name] = (
                        f"prompt of ~{est_tokens} tokens exceeds its context window of {window}"
                    )
                    continue
            if limited:
                bound = cost_bound(
                    known_call_cost(spec.litellm_model, msgs),
                    facts.prices,
                    tokens_bound,
                    float(max_tokens or 0),
                )
                if bound is None:
                    excluded[name] = _NO_PRICE
                    cost_excluded.add(name)
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

        plan = Plan(
            request=request,
            decision=None,
            order=(),
            excluded=excluded,
            budget=budget,
            kwargs=kwargs,
            bounds=bounds,
            started=started,
        )
        decision = request.decision
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
            plan.decision = decision
            order = tuple(decision.ranked) if self.fallback else (decision.model,)
            plan.order = tuple(m for m in order if m in eligible)
            if not plan.order:
                raise NoEligibleModelError(
                    excluded or {m: "not among the eligible models" for m in decision.ranked}
                )
        else:
            text = sup.routing_text(msgs, self.routing_text)
            weight = request.cost_weight if request.cost_weight is not None else self.cost_weight
            allowed = tuple(eligible) if len(eligible) < len(self.models) else None
            plan.route_args = (text, weight, allowed, request.policy)
        return plan

    def _plan(self, request: Request) -> Plan:
        plan = self._prepare(request)
        if plan.route_args is not None:
            text, weight, allowed, policy = plan.route_args
            extra = _route_extra(policy, plan.request.user)
            self._routed(
                plan, self.router.route(text, cost_weight=weight, allowed=allowed, **extra)
            )
        return plan

    async def _aplan(self, request: Request) -> Plan:
        """:meth:`_plan` for async callers: requests that arrive together are routed in one
        ``route_batch`` call (one vectorised prediction instead of one per request)."""
        budget: Any = self._budget_for(request.user)
        ask = getattr(budget, "aunspent", None)  # a shared store's budget: ask it without blocking
        plan = self._prepare(request, None if ask is None else await ask())
        if plan.route_args is not None:
            decision = await self._batcher().route(*plan.route_args, user=plan.request.user)
            self._routed(plan, decision)
        return plan

    def _routed(self, plan: Plan, decision: Decision) -> None:
        plan.decision = decision
        order = tuple(decision.ranked) if self.fallback else (decision.model,)
        plan.order = tuple(m for m in order if m not in plan.excluded)
        plan.route_args = None

    def _batcher(self) -> RouteBatcher:
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = RouteBatcher(self.router, loop)
        return batcher

    def _facts(self, name: str) -> ModelFacts:
        """The :class:`ModelFacts` of pool model ``name`` (cached, like the model's call
        arguments: the executor's pool is fixed when it is built)."""
        facts = self._model_facts.get(name)
        if facts is None:
            spec = self.pool[name]
            facts = self._model_facts[name] = ModelFacts(
                spec,
                sup.context_window(self._litellm, spec),
                sup.bound_prices(self._litellm, spec, self.max_price),
            )
        return facts

    # -- what the attempt loop asks of the executor ------------------------------------------
    def _call_kwargs(self, plan: Plan, name: str, *, stream: bool = False) -> dict[str, Any]:
        """The LiteLLM arguments of one call of ``name`` (with the next key in rotation)."""
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
                register_secret(value)  # the variable may have changed since __init__
                return value
        services = self._services.get(spec.name)
        if services is None:
            services = self._services[spec.name] = _services_of(spec, self._litellm)
        if not services:
            return None
        return self.keys.next_key(*services)

    def _redact(self, text: str) -> str:
        """``text`` (an error message) with every secret scrubbed, cut to a readable size."""
        register_env_secrets()  # the environment may have changed since __init__
        text = redact(text)
        if len(text) > _MAX_ERROR_CHARS:
            text = text[:_MAX_ERROR_CHARS] + "..."
        return text

    def _random(self) -> float:
        with self._rng_lock:
            return self._rng.random()


# -- helpers ---------------------------------------------------------------------------------


def _route_extra(policy: Any, user: str | None) -> dict[str, Any]:
    """The optional arguments of a routing call: only a request that names a policy or a
    user passes them (a router of the caller's own may take neither)."""
    return {k: v for k, v in {"policy": policy, "user": user}.items() if v is not None}


def _has_plan(plan: Plan) -> bool:
    """Whether the routed request carries a plan (a cascade, a fan-out) to carry out."""
    return plan.decision is not None and plan.decision.plan is not None


def _register_call_secrets(kwargs: Mapping[str, Any]) -> None:
    """Register the credentials among LiteLLM arguments (``api_key``, headers, ...)."""
    for key, value in kwargs.items():
        if isinstance(value, Mapping):
            _register_call_secrets(value)
        elif isinstance(value, str) and is_secret_name(str(key)):
            register_secret(value)


def _register_spec_secrets(spec: ModelSpec) -> None:
    register_secret(os.environ.get(spec.api_key_env) if spec.api_key_env else None)
    _register_call_secrets(spec.extra)


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
