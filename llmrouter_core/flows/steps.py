"""Typed records of a flow (:class:`FlowStep`, :class:`FlowResult`) and the machinery every
flow shares: the model calls it asks for (:class:`Call`), their sync and async drivers, the
spend of a flow (:class:`FlowLedger`).

A flow is written once, as a generator that yields lists of :class:`Call` and receives, for
each list, one :class:`~llmrouter_core.execution.ExecutionResult` or error per call (the
executor's errors, :class:`~llmrouter_core.errors.LLMRouterError`, become failed steps; any
other exception is a bug and propagates). The
drivers :func:`run_flow` (threads for parallel calls) and :func:`arun_flow` (``asyncio``)
carry the calls out on an :class:`~llmrouter_core.execution.Executor`, so the sync and async
flows cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from llmrouter_core.errors import LLMRouterError
from llmrouter_core.execution import (
    BudgetExceededError,
    ExecutionResult,
    Executor,
    StreamChunk,
    StreamInterruptedError,
)

__all__ = [
    "Call",
    "Flow",
    "FlowLedger",
    "FlowResult",
    "FlowStep",
    "OnStep",
    "StepRole",
    "SubFlow",
    "arun_flow",
    "run_flow",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: What a step did: ``plan`` (decompose, or a policy turn), ``route`` (a model chosen for a
#: sub-query), ``call`` (a pool model answered a sub-query), ``aggregate`` (the answer built).
StepRole = Literal["plan", "route", "call", "aggregate"]


@dataclass(frozen=True, slots=True)
class FlowStep:
    """One step of a flow.

    Attributes:
        role: ``"plan"``, ``"route"``, ``"call"`` or ``"aggregate"``.
        model: The pool model of the step (``None`` when no model was involved, e.g. a
            structural decomposition or a concatenation).
        prompt: What the step worked on (the sub-query, the decomposition prompt, ...).
        reply: What came out (the model's reply, the parts, the answer).
        tokens: Prompt + completion tokens of the step's model calls (0 without a call).
        cost: USD of the step's model calls (``None`` when the step made no call).
        latency_s: Wall time of the step in seconds.
        why: Why this step happened as it did (the routing reason, the decomposer, ...).
        error: What went wrong (a failed call, a format violation ``"format: ..."``, a
            budget refusal ``"budget: ..."``), else ``None``.
        output_tokens: Completion tokens of the step's model calls.
        part: Index of the sub-query the step belongs to (agentic flows), else ``None``.

    Example:
        >>> FlowStep("call", "small", "2+2?", "4", 12, 1e-5, 0.2, "routed").to_dict()["reply"]
        '4'
    """

    role: StepRole
    model: str | None
    prompt: str
    reply: str
    tokens: int = 0
    cost: float | None = None
    latency_s: float = 0.0
    why: str = ""
    error: str | None = None
    output_tokens: int = 0
    part: int | None = None

    @property
    def format_violation(self) -> bool:
        """Whether the step records a malformed policy output."""
        return self.error is not None and self.error.startswith("format:")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "role": self.role,
            "model": self.model,
            "prompt": self.prompt,
            "reply": self.reply,
            "tokens": self.tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "latency_s": round(self.latency_s, 6),
            "why": self.why,
            "error": self.error,
            "part": self.part,
        }


@dataclass(frozen=True)
class FlowResult:
    """The outcome of a flow.

    Attributes:
        answer: The final answer.
        steps: Every step, in the order they finished.
        cost: USD of every model call of the flow (planning, sub-queries, aggregation).
        models: The pool models called, in order of first call.
        stopped: ``None`` when the flow ran to its end, else why it stopped early (e.g.
            ``"budget: ..."`` or ``"max_rounds: ..."``); the answer is then built from what
            the flow had.
        messages: The policy's conversation (multi-round flows; chat format, for training
            exports), else empty.

    Example:
        >>> r = FlowResult("4", [], 0.0, [], None)
        >>> r.to_dict()["answer"]
        '4'
    """

    answer: str
    steps: list[FlowStep]
    cost: float
    models: list[str]
    stopped: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def format_violations(self) -> int:
        """How many steps record a malformed policy output."""
        return sum(s.format_violation for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: ``{"answer", "models", "cost", "stopped", "steps"}``."""
        return {
            "answer": self.answer,
            "models": list(self.models),
            "cost": self.cost,
            "stopped": self.stopped,
            "steps": [s.to_dict() for s in self.steps],
        }


#: Called with each step as it finishes.
OnStep = Callable[[FlowStep], None]


@dataclass(frozen=True)
class Call:
    """One model call a flow asks for (the arguments of :meth:`Executor.complete`).

    Attributes:
        messages: The request.
        model: A pool model to call (``None``: call the decision's model).
        decision: A routing decision to act on.
        max_cost: Per-request USD cap.
        kwargs: Further arguments of :meth:`Executor.complete` (``tools``, ``user``, ...).
        stream: The call whose reply is the flow's answer: a driver given ``on_text``
            streams it and passes its text on as it arrives.
    """

    messages: str | Sequence[Mapping[str, Any]]
    model: str | None = None
    decision: Any = None
    max_cost: float | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False

    def complete(self, executor: Executor) -> ExecutionResult | Exception:
        try:
            return executor.complete(
                self.messages,
                model=self.model,
                decision=self.decision,
                max_cost=self.max_cost,
                **self.kwargs,
            )
        except LLMRouterError as exc:  # the flow records it as a failed step
            return exc

    async def acomplete(self, executor: Executor) -> ExecutionResult | Exception:
        try:
            return await executor.acomplete(
                self.messages,
                model=self.model,
                decision=self.decision,
                max_cost=self.max_cost,
                **self.kwargs,
            )
        except LLMRouterError as exc:
            return exc

    async def astream(
        self, executor: Executor, on_text: Callable[[str], None]
    ) -> ExecutionResult | Exception:
        """:meth:`acomplete`, streamed: each piece of text goes to ``on_text`` as it arrives.
        A stream that fails after passing text on raises :class:`StreamInterruptedError`
        (the text cannot be taken back, so the flow cannot go on as if it had failed)."""
        outcome: ExecutionResult | None = None
        try:
            async for item in executor.astream(
                self.messages,
                model=self.model,
                decision=self.decision,
                max_cost=self.max_cost,
                **self.kwargs,
            ):
                if isinstance(item, StreamChunk):
                    on_text(item.text)
                else:
                    outcome = item
        except StreamInterruptedError:
            raise
        except LLMRouterError as exc:
            return exc
        assert outcome is not None
        return outcome


#: A part of a flow returning ``T``: yields lists of calls (run in parallel), receives their
#: outcomes (one result or exception per call).
SubFlow = Generator[list[Call], list[ExecutionResult | Exception], T]
#: A whole flow: returns its :class:`FlowResult`.
Flow = SubFlow[FlowResult]


def run_flow(flow: SubFlow[T], executor: Executor, *, max_workers: int = 8) -> T:
    """Carry ``flow`` (or a part of one) out with :meth:`Executor.complete` (parallel calls
    on threads); returns what it returns."""
    outcomes: list[ExecutionResult | Exception] | None = None
    pool: ThreadPoolExecutor | None = None
    try:
        while True:
            try:
                calls = flow.send(outcomes) if outcomes is not None else next(flow)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if len(calls) <= 1:
                outcomes = [c.complete(executor) for c in calls]
            else:
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=max_workers)
                outcomes = list(pool.map(lambda c: c.complete(executor), calls))
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        flow.close()


async def arun_flow(
    flow: SubFlow[T], executor: Executor, *, on_text: Callable[[str], None] | None = None
) -> T:
    """Carry ``flow`` (or a part of one) out with :meth:`Executor.acomplete` (parallel calls
    gathered); returns what it returns. With ``on_text``, the call that makes the flow's
    answer (:attr:`Call.stream`) is streamed, its text passed to ``on_text`` as it arrives."""
    outcomes: list[ExecutionResult | Exception] | None = None
    try:
        while True:
            try:
                calls = flow.send(outcomes) if outcomes is not None else next(flow)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if on_text is not None and len(calls) == 1 and calls[0].stream:
                outcomes = [await calls[0].astream(executor, on_text)]
            else:
                outcomes = list(await asyncio.gather(*(c.acomplete(executor) for c in calls)))
    finally:
        flow.close()


class FlowLedger:
    """The steps and spend of one flow run, with its budget.

    Args:
        budget: USD the whole flow may spend (``None``: no flow limit).
        max_cost: USD one model call may cost (``None``: no per-request cap).
        on_step: Called with each step as it is recorded.
    """

    def __init__(
        self,
        budget: float | None = None,
        max_cost: float | None = None,
        on_step: OnStep | None = None,
    ) -> None:
        for name, value in (("budget", budget), ("max_cost", max_cost)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number of USD")
        self.budget = budget
        self.max_cost = max_cost
        self.on_step = on_step
        self.steps: list[FlowStep] = []
        self.spent = 0.0
        self.models: list[str] = []
        self.stopped: str | None = None
        self._lock = threading.Lock()

    @property
    def remaining(self) -> float:
        """USD left of the flow budget (infinite without one)."""
        return math.inf if self.budget is None else max(0.0, self.budget - self.spent)

    def cap(self, share: int = 1) -> float | None:
        """The per-call USD cap for one of ``share`` calls started together: the request
        cap and an even share of what is left of the flow budget, whichever is lower."""
        caps = [
            c
            for c in (self.max_cost, self.remaining / max(1, share))
            if c is not None and math.isfinite(c)
        ]
        return min(caps) if caps else None

    def stop(self, reason: str) -> None:
        """Record why the flow stops early (the first reason wins)."""
        if self.stopped is None:
            self.stopped = reason
            logger.info("flow stopped: %s", reason)

    def add(self, step: FlowStep) -> FlowStep:
        """Record ``step`` (its cost counts against the budget) and report it."""
        with self._lock:
            self.steps.append(step)
            if step.cost:
                self.spent += step.cost
            model = step.model
            if model is not None and step.cost is not None and model not in self.models:
                self.models.append(model)
        if step.error is not None:
            logger.info("flow step %s (%s): %s", step.role, step.model, step.error)
        if self.on_step is not None:
            self.on_step(step)
        return step

    def record_call(
        self,
        role: StepRole,
        prompt: str,
        outcome: ExecutionResult | Exception,
        *,
        why: str = "",
        part: int | None = None,
        model: str | None = None,
        started: float | None = None,
        error: str | None = None,
    ) -> FlowStep:
        """Record the step of one model call's ``outcome`` (a failure stops the flow when it
        was a budget refusal); ``error`` marks a call that answered but whose reply is
        unusable (e.g. a format violation)."""
        if isinstance(outcome, ExecutionResult):
            return self.add(
                FlowStep(
                    role=role,
                    model=outcome.model,
                    prompt=prompt,
                    reply=outcome.answer,
                    tokens=outcome.input_tokens + outcome.output_tokens,
                    cost=outcome.cost,
                    latency_s=outcome.latency_s,
                    why=why,
                    error=error,
                    output_tokens=outcome.output_tokens,
                    part=part,
                )
            )
        kind = "budget" if isinstance(outcome, BudgetExceededError) else type(outcome).__name__
        error = f"{kind}: {outcome}"
        if kind == "budget":
            self.stop(error)
        # A failed call may still have spent (attempts that answered before a plan failed).
        spent = sum(a.cost for a in getattr(outcome, "attempts", ()) or ())
        return self.add(
            FlowStep(
                role=role,
                model=model,
                prompt=prompt,
                reply="",
                cost=float(spent) if spent else None,
                latency_s=0.0 if started is None else time.perf_counter() - started,
                why=why,
                error=error,
                part=part,
            )
        )

    def result(self, answer: str, messages: list[dict[str, Any]] | None = None) -> FlowResult:
        """The :class:`FlowResult` of the steps recorded so far."""
        with self._lock:
            return FlowResult(
                answer=answer,
                steps=list(self.steps),
                cost=self.spent,
                models=list(self.models),
                stopped=self.stopped,
                messages=list(messages or []),
            )
