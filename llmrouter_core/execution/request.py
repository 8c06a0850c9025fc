"""A request to the executor, the plan made for it, and the batching of async routing.

A :class:`Request` is everything one call of the executor needs, validated once; the
executor turns it into a :class:`Plan` (the eligible models in the order to try them, their
cost bounds, the budget to charge, the LiteLLM arguments), which the attempt loop
(:mod:`llmrouter_core.execution.attempts`) then carries out.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmrouter_core.decision import Decision
from llmrouter_core.execution import _support as sup
from llmrouter_core.execution.budget import BudgetLike
from llmrouter_core.execution.results import InvalidRequestError
from llmrouter_core.pool import ModelSpec

__all__ = ["ModelFacts", "Plan", "Request", "RouteBatcher"]

# Arguments the executor sets itself on every LiteLLM call.
_RESERVED_KWARGS = ("model", "messages", "stream")


@dataclass(frozen=True)
class Request:
    """Everything one call of the executor needs, validated (build it with :meth:`build`).

    Attributes:
        messages: OpenAI-style messages (a prompt string becomes one user message).
        tools: Tool schemas; only models that support tools are considered.
        response_format: A JSON-schema response format (or pydantic class); only models that
            support JSON schemas are considered.
        model: A pool model to call instead of routing (no fallback).
        max_cost: Per-request cap in USD.
        user: Who asks: whose budget to charge when the executor has a ``BudgetManager``,
            and whose preferences a personalized router reads.
        cost_weight: lambda for this request (``None``: the executor's).
        decision: A decision to act on instead of routing.
        policy: The routing policy for this request (a cascade, a fan-out, ...; ``None``: the
            router's).
        litellm_kwargs: Further arguments of the LiteLLM call.

    Example:
        >>> r = Request.build("What is 2+2?", max_cost=0.01, temperature=0.0)
        >>> r.messages, r.litellm_kwargs
        ([{'role': 'user', 'content': 'What is 2+2?'}], {'temperature': 0.0})
    """

    messages: list[sup.Message]
    tools: tuple[Any, ...] | None = None
    response_format: Any = None
    model: str | None = None
    max_cost: float | None = None
    user: str | None = None
    cost_weight: float | None = None
    decision: Decision | None = None
    policy: Any = None
    litellm_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
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
    ) -> Request:
        """A validated request.

        Raises:
            InvalidRequestError: Empty or malformed messages, a negative or NaN ``max_cost``,
                a LiteLLM argument the executor sets itself (``model``, ``messages``,
                ``stream``), or a policy given with a model or a decision.
        """
        msgs = sup.normalize_messages(messages)
        if max_cost is not None and not (max_cost >= 0):
            raise InvalidRequestError("max_cost must be a non-negative number of USD")
        if policy is not None and (model is not None or decision is not None):
            raise InvalidRequestError("give a policy, a model or a decision, not several")
        if policy is not None and not callable(getattr(policy, "decide", None)):
            raise InvalidRequestError(
                f"policy must have a decide(quality, cost, context) method, got "
                f"{type(policy).__name__}"
            )
        for reserved in _RESERVED_KWARGS:
            if reserved in litellm_kwargs:
                raise InvalidRequestError(f"{reserved!r} is set by the executor")
        return cls(
            messages=msgs,
            tools=tuple(tools) if tools else None,
            response_format=response_format,
            model=model,
            max_cost=max_cost,
            user=user,
            cost_weight=cost_weight,
            decision=decision,
            policy=policy,
            litellm_kwargs=litellm_kwargs,
        )


@dataclass(frozen=True)
class ModelFacts:
    """What planning reads of one pool model, looked up once per executor: the spec, its
    context window and its bounding prices (LiteLLM's table is offline and static)."""

    spec: ModelSpec
    window: int | None
    prices: tuple[float, float] | None


@dataclass
class Plan:
    """A request made ready to execute.

    Attributes:
        request: The request.
        decision: The routing decision (set once routed).
        order: Models to try, in order (the decision's ranking minus excluded models).
        excluded: Models left out before routing, with the reason.
        budget: The budget to charge (``None``: unlimited).
        kwargs: LiteLLM arguments shared by every attempt.
        bounds: Cost bound of each eligible model, under a budget or a cap.
        started: ``time.perf_counter()`` when the request arrived.
        route_args: ``(text, cost_weight, allowed, policy)`` while the request awaits
            routing.
    """

    request: Request
    decision: Decision | None
    order: tuple[str, ...]
    excluded: dict[str, str]
    budget: BudgetLike | None
    kwargs: dict[str, Any]
    bounds: dict[str, float]
    started: float
    route_args: tuple[str, float | None, tuple[str, ...] | None, Any] | None = None

    @property
    def messages(self) -> list[sup.Message]:
        """The request's messages."""
        return self.request.messages


def cost_bound(
    exact: float | None, prices: tuple[float, float] | None, tokens_in: int, max_tokens: float
) -> float | None:
    """Upper bound of one call's cost: ``exact`` if the provider knows it in advance, else
    ``tokens_in`` prompt tokens and ``max_tokens`` output tokens at ``prices`` (USD per token);
    ``None`` if neither is known."""
    if exact is not None:
        return exact
    if prices is None:
        return None
    bound = prices[0] * tokens_in + prices[1] * float(max_tokens)
    return bound if math.isfinite(bound) else None


class RouteBatcher:
    """Coalesces the routing of requests that arrive in the same event-loop turn.

    The first request of a turn schedules a flush with ``call_soon``; requests arriving before
    it runs join the batch; the flush routes them with one ``route_batch`` call per distinct
    (cost weight, allowed models, policy, user) and resolves each request's future. Per-row
    predictions do not depend on the batch, so each decision equals what ``route`` would
    return.
    """

    def __init__(self, router: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.router = router
        self.loop = loop
        # (cost weight, allowed, id(policy), user) -> (policy, [(text, future), ...])
        self.pending: dict[tuple[Any, ...], tuple[Any, list[tuple[str, Any]]]] = {}

    def route(
        self,
        text: str,
        weight: float | None,
        allowed: tuple[str, ...] | None,
        policy: Any = None,
        *,
        user: str | None = None,
    ) -> asyncio.Future[Decision]:
        """A future of the decision for ``text`` (asked by ``user``)."""
        # A policy may not be hashable: batch by its identity (it lives as long as its request).
        key = (weight, allowed, id(policy), user)
        future: asyncio.Future[Decision] = self.loop.create_future()
        _, batch = self.pending.setdefault(key, (policy, []))
        batch.append((text, future))
        if len(batch) == 1:
            self.loop.call_soon(self._flush, key)
        return future

    def _flush(self, key: tuple[Any, ...]) -> None:
        policy, batch = self.pending.pop(key, (None, []))
        weight, allowed, _, user = key
        live = [(t, f) for t, f in batch if not f.done()]
        if not live:
            return
        # Only a request that names a policy or a user passes one (a router may not take it).
        extra: dict[str, Any] = {} if policy is None else {"policy": policy}
        if user is not None:
            extra["user"] = user
        try:
            route_batch = getattr(self.router, "route_batch", None)
            if len(live) == 1 or route_batch is None:
                decisions = [
                    self.router.route(t, cost_weight=weight, allowed=allowed, **extra)
                    for t, _ in live
                ]
            else:
                decisions = route_batch(
                    [t for t, _ in live], cost_weight=weight, allowed=allowed, **extra
                )
        except Exception as exc:  # every waiting request gets the routing error
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), decision in zip(live, decisions, strict=True):
            if not fut.done():
                fut.set_result(decision)
