"""The attempt loop: one sans-I/O state machine for every way of executing a request.

:class:`AttemptLoop` decides, from the outcome of the previous step, what to do next: hold a
model's cost bound on the budget (:class:`Admit`), call a model (:class:`Call`), wait before a
retry (:class:`Sleep`), or end with a result or an error (:class:`Finish`). It performs no I/O:
the drivers of :mod:`llmrouter_core.execution.drivers` (sync, async, streaming, async
streaming) carry out its actions and feed the outcomes back, so retries, fallbacks, budgets and
cancellation behave the same in all four. The rules:

* A model is called only once its cost bound is held on the budget; the driver waits up to
  the executor's ``admission_timeout`` for calls in flight to settle. A bound that does not
  fit is recorded as a skip and the next model is tried.
* A transient failure (rate limit, timeout, connection, 5xx) is retried on the same model up
  to ``max_retries`` times, after the provider's ``Retry-After`` or an exponential backoff with
  jitter. Any other failure (authentication, bad request, context window, content filter)
  moves on to the next model of the ranking at once.
* A success settles the hold with the call's actual cost.
* A stream that fails after delivering text stops with :class:`StreamInterruptedError`
  (no transparent fallback is possible), charged the text delivered.
* An abort (``KeyboardInterrupt``, task cancellation, a stream the caller stops reading) while
  a call is in flight charges what the call is known to have produced: a stream's prompt and
  delivered text, or a plain call's whole bound (its progress is unknown, and the provider may
  bill it). An abort between calls charges nothing. Either way no hold is left behind, no other
  model is tried, and the exception propagates unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from llmrouter_core.execution import _support as sup
from llmrouter_core.execution.budget import BudgetExceededError, BudgetLike, Reservation
from llmrouter_core.execution.request import Plan
from llmrouter_core.execution.results import (
    AllModelsFailedError,
    Attempt,
    CostSource,
    ExecutionResult,
    StreamInterruptedError,
)
from llmrouter_core.pool import ModelSpec
from llmrouter_core.providers._registry import known_call_cost

if TYPE_CHECKING:
    from llmrouter_core.execution.executor import Executor

__all__ = ["Action", "Admit", "AttemptLoop", "Call", "Finish", "Sleep", "cost_of"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Call:
    """Call ``model`` with LiteLLM arguments ``kwargs``; report with ``answered`` /
    ``failed``."""

    model: str
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` before retrying; report with ``slept``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Admit:
    """Hold ``amount`` USD on ``budget``, waiting up to ``timeout`` seconds for calls in
    flight to make room; report the reservation (or ``None``) with ``admitted``."""

    budget: BudgetLike
    amount: float
    timeout: float


@dataclass(frozen=True, slots=True)
class Finish:
    """The end: return ``result`` or raise ``error``."""

    result: ExecutionResult | None = None
    error: BaseException | None = None


Action = Call | Sleep | Admit | Finish


class AttemptLoop:
    """The attempts of one request (see the module docstring for the rules).

    Args:
        ex: The executor (its pool, retry settings, keys and prices).
        plan: The planned request (models in order, bounds, budget, arguments).
        stream: Whether the calls stream (sets ``stream=True`` on each call).
    """

    __slots__ = (
        "attempts",
        "done",
        "ex",
        "in_call",
        "index",
        "name",
        "plan",
        "reservation",
        "retry",
        "stream",
        "t0",
        "unsettled",
    )

    def __init__(self, ex: Executor, plan: Plan, *, stream: bool = False) -> None:
        self.ex = ex
        self.plan = plan
        self.stream = stream
        self.attempts: list[Attempt] = []
        self.index = -1  # position in plan.order
        self.name = ""
        self.retry = 0
        self.reservation: Reservation | None = None
        self.in_call = False
        self.done = False
        self.t0 = 0.0
        #: Settlements the driver carries out (``(reservation, cost)``; cost ``None``: a
        #: release), when it asked for them with ``start(defer_settlements=True)``.
        self.unsettled: list[tuple[Reservation, float | None]] | None = None

    # -- transitions -------------------------------------------------------------------------
    def start(self, *, defer_settlements: bool = False) -> Action:
        """The first action. With ``defer_settlements``, the loop does not settle or release
        holds on the budget itself but lists them in :attr:`unsettled` for the driver (an
        async driver settles them with the budget's async twins, so that a budget kept in a
        shared store never blocks the event loop)."""
        if defer_settlements:
            self.unsettled = []
        return self._next_model()

    def admitted(self, reservation: Reservation | None) -> Action:
        """The budget answered an :class:`Admit`."""
        if reservation is None:
            budget = self.plan.budget
            amount = self.plan.bounds.get(self.name, 0.0)
            left = budget.remaining if budget is not None else 0.0
            self.attempts.append(
                Attempt(
                    model=self.name,
                    litellm_model=self.ex.pool[self.name].litellm_model,
                    outcome="skipped",
                    error_type="budget",
                    error=f"cost bound ${amount:.6g} does not fit the ${left:.6g} left of the "
                    "budget",
                    action="fallback",
                )
            )
            return self._next_model()
        self.reservation = reservation
        return self._call()

    def slept(self) -> Action:
        """The wait of a :class:`Sleep` is over."""
        return self._call()

    def answered(self, response: Any, text: str | None = None) -> Finish:
        """The :class:`Call` returned ``response`` (a stream: its chunks, and ``text``)."""
        self.in_call = False
        plan, name = self.plan, self.name
        spec = self.ex.pool[name]
        latency = time.perf_counter() - self.t0
        answer = sup.answer_text(response) if text is None else text
        prompt_tokens, completion_tokens = sup.usage_tokens(response)
        if prompt_tokens is None:
            prompt_tokens = sup.input_token_estimate(
                sup.prompt_chars(plan.messages, plan.kwargs.get("tools")), len(plan.messages)
            )
        if completion_tokens is None:
            completion_tokens = math.ceil(len(answer) / 4)
        cost, source = cost_of(
            self.ex._litellm,
            spec,
            response,
            plan.messages,
            prompt_tokens,
            completion_tokens,
            self.ex.max_price,
        )
        reservation = self.reservation
        if reservation is not None and plan.budget is not None:
            if cost > reservation.amount * (1 + 1e-9) + 1e-12:
                # Counted in full all the same: the budget records the excess as an overrun.
                logger.warning(
                    "model %s cost $%.6g, above the $%.6g reserved for it",
                    name,
                    cost,
                    reservation.amount,
                )
            self._account(reservation, cost)
            self.reservation = None
        self.attempts.append(
            Attempt(
                model=name,
                litellm_model=spec.litellm_model,
                outcome="success",
                latency_s=latency,
                retry=self.retry,
                cost=cost,
            )
        )
        self.done = True
        assert plan.decision is not None
        return Finish(
            result=ExecutionResult(
                answer=answer,
                model=name,
                litellm_model=spec.litellm_model,
                decision=plan.decision,
                attempts=tuple(self.attempts),
                excluded=dict(plan.excluded),
                input_tokens=int(prompt_tokens),
                output_tokens=int(completion_tokens),
                cost=cost,
                cost_source=source,
                latency_s=time.perf_counter() - plan.started,
                response=response,
            )
        )

    def failed(self, exc: BaseException, delivered: str = "") -> Action:
        """The :class:`Call` raised ``exc`` (a stream: after delivering ``delivered``)."""
        self.in_call = False
        name = self.name
        spec = self.ex.pool[name]
        error = self.ex._redact(str(exc))
        if delivered:
            self.attempts.append(self._error(spec, exc, error, "stop"))
            self._settle_unfinished(delivered)
            self.done = True
            stop = StreamInterruptedError(
                f"the stream from {name} failed after {len(delivered)} characters: "
                f"{type(exc).__name__}: {error}",
                tuple(self.attempts),
                delivered,
            )
            stop.__cause__ = exc
            return Finish(error=stop)
        will_retry = sup.classify_error(exc) == "retry" and self.retry < self.ex.max_retries
        self.attempts.append(self._error(spec, exc, error, "retry" if will_retry else "fallback"))
        logger.info(
            "model %s failed (%s: %s), %s",
            name,
            type(exc).__name__,
            error,
            "retrying" if will_retry else "moving on",
        )
        if not will_retry:
            return self._next_model()
        delay = self._delay(exc)
        self.retry += 1
        return Sleep(delay)

    def aborted(self, delivered: str | None = None) -> None:
        """The request was aborted (``KeyboardInterrupt``, cancellation, a stream closed by
        the caller) with ``delivered`` text streamed so far (``None``: not a stream). Leaves
        no hold behind; a no-op once the loop has finished."""
        if self.unsettled is not None:  # the driver may not get to them: settle them now
            pending, self.unsettled = self.unsettled, None
            for reservation, amount in pending:
                # One the driver was settling when it was stopped may have landed already.
                with contextlib.suppress(ValueError):
                    self._account(reservation, amount)
        if self.done:
            return
        self.done = True
        if self.in_call:
            self.in_call = False
            self._settle_unfinished(delivered)
        else:
            self._release()

    # -- helpers -----------------------------------------------------------------------------
    def _next_model(self) -> Action:
        self._release()
        self.index += 1
        order = self.plan.order
        if self.index >= len(order):
            self.done = True
            return Finish(error=self._all_failed())
        self.name = order[self.index]
        self.retry = 0
        budget = self.plan.budget
        if budget is None:
            return self._call()
        # Planning gives every eligible model a bound when there is a budget.
        return Admit(budget, self.plan.bounds[self.name], self.ex.admission_timeout)

    def _call(self) -> Call:
        kwargs = self.ex._call_kwargs(self.plan, self.name, stream=self.stream)
        self.in_call = True
        self.t0 = time.perf_counter()
        return Call(self.name, kwargs)

    def _error(
        self,
        spec: ModelSpec,
        exc: BaseException,
        error: str,
        action: Literal["retry", "fallback", "stop"],
    ) -> Attempt:
        return Attempt(
            model=spec.name,
            litellm_model=spec.litellm_model,
            outcome="error",
            error_type=type(exc).__name__,
            error=error,
            latency_s=time.perf_counter() - self.t0,
            retry=self.retry,
            action=action,
        )

    def _delay(self, exc: BaseException) -> float:
        hinted = sup.retry_after(exc)
        if hinted is not None:
            return min(hinted, self.ex.max_backoff)
        jitter = 0.5 + 0.5 * self.ex._random()
        return min(self.ex.max_backoff, self.ex.backoff * (2.0**self.retry)) * jitter

    def _release(self) -> None:
        if self.reservation is not None and self.plan.budget is not None:
            self._account(self.reservation, None)
        self.reservation = None

    def _account(self, reservation: Reservation, amount: float | None) -> None:
        """Settle ``reservation`` at ``amount`` USD (``None``: release it), or list it for
        the driver."""
        if self.unsettled is not None:
            self.unsettled.append((reservation, amount))
            return
        budget = self.plan.budget
        assert budget is not None
        if amount is None:
            budget.release(reservation)
        else:
            budget.settle(reservation, amount)

    def _settle_unfinished(self, delivered: str | None) -> None:
        """Account a call that started but did not end normally: the provider may bill it.
        Text delivered is charged at its estimated cost; an unknown outcome at the reserved
        bound. Never more than was reserved, so the budget still holds."""
        reservation, budget = self.reservation, self.plan.budget
        self.reservation = None
        if reservation is None or budget is None:
            return
        amount = reservation.amount
        if delivered is not None:
            plan = self.plan
            facts = self.ex._facts(self.name)
            known = known_call_cost(facts.spec.litellm_model, plan.messages)
            if known is not None:
                amount = known
            elif facts.prices is not None:
                chars = sup.prompt_chars(plan.messages, plan.kwargs.get("tools"))
                n_in = sup.input_token_estimate(chars, len(plan.messages))
                n_out = math.ceil(len(delivered) / 4)
                amount = facts.prices[0] * n_in + facts.prices[1] * n_out
        self._account(reservation, min(amount, reservation.amount))

    def _all_failed(self) -> AllModelsFailedError | BudgetExceededError:
        attempts = tuple(self.attempts)
        if attempts and all(a.outcome == "skipped" for a in attempts):
            lines = "; ".join(a.describe() for a in attempts)
            return BudgetExceededError(f"no model fits the remaining budget ({lines})")
        return AllModelsFailedError(attempts, self.plan.excluded)


def cost_of(
    litellm: Any,
    spec: ModelSpec,
    response: Any,
    messages: list[sup.Message],
    prompt_tokens: int,
    completion_tokens: int,
    max_price: float | None = None,
) -> tuple[float, CostSource]:
    """USD cost of a call and where it comes from: the provider's figure (an in-process
    provider's exact cost, LiteLLM's cost calculation, or a custom provider's report), else the
    pool's prices x tokens, else ``max_price`` (USD per 1M tokens) x tokens, else 0."""
    # An in-process provider (replay) knows the exact cost; LiteLLM's own figure for a
    # streamed replay would price the tokens of the underlying model name instead.
    known = known_call_cost(spec.litellm_model, messages)
    if known is not None:
        return known, "provider"
    reported = sup.provider_cost(response)
    if reported is not None and (reported > 0 or not spec.has_prices):
        return reported, "provider"
    if reported is None and sup.litellm_model_info(litellm, spec.litellm_model):
        try:
            costs = litellm.cost_per_token(
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
    if max_price is not None:
        # No price and no report: charge the ceiling the caller set, so a budget never counts
        # a paid call as free.
        return max_price * (prompt_tokens + completion_tokens) / 1e6, "max_price"
    return 0.0, "unknown"
