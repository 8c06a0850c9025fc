"""Carrying out a decision's plan: a cascade, or a fan-out, every call through the attempt loop.

A :class:`~llmrouter_core.decision.Decision` may carry a plan instead of naming one call:

* a :class:`~llmrouter_core.decision.CascadePlan`: the stages are called in order, each call
  through the same :class:`~llmrouter_core.execution.attempts.AttemptLoop` as any request
  (budget holds, keys, retries; no fallback to another model, since the cascade itself goes
  on). After each stage but the last the plan's *acceptor* scores the answer (in [0, 1]);
  the answer is accepted when the score reaches the stage's threshold. A threshold <= 0
  accepts and one > 1 escalates without asking the acceptor. A stage that fails (or is not
  eligible, or does not fit the budget or the request's cap) is recorded and the cascade goes
  on; if the last stage fails, the best-scored answer obtained is returned. The acceptor is
  resolved by the router (``router.acceptor(name)``); an acceptor that makes calls of its own
  (AutoMix's verifier) makes them through the executor too, charged to the same budget and
  cap and recorded in the result;
* a :class:`~llmrouter_core.decision.FanOutPlan`: its models are called concurrently (threads
  for :meth:`~llmrouter_core.execution.Executor.complete`, tasks for ``acomplete``) and one
  answer is kept: ``"quality"``, the model with the highest predicted quality among those that
  answered; ``"first"``, the first to answer. Every call is awaited, so the result counts
  the cost of each.

The result is an :class:`~llmrouter_core.execution.ExecutionResult` whose ``steps`` list
every model of the plan that was tried (:class:`~llmrouter_core.execution.results.Step`) and
whose ``cost`` is the total of every call. Streaming a plan delivers the answer it keeps: a
cascade streams its last stage for real when it gets there, and an answer accepted earlier
(or a fan-out's) comes as one chunk once it is kept.

:class:`CascadeRun` is the cascade's logic without I/O; the functions below drive it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llmrouter_core.decision import CascadePlan, FanOutPlan
from llmrouter_core.errors import UnknownModelError
from llmrouter_core.execution import _support as sup
from llmrouter_core.execution.attempts import AttemptLoop
from llmrouter_core.execution.budget import BudgetExceededError
from llmrouter_core.execution.drivers import run_acomplete, run_astream, run_complete, run_stream
from llmrouter_core.execution.request import Plan, Request
from llmrouter_core.execution.results import (
    AllModelsFailedError,
    Attempt,
    ExecutionError,
    ExecutionResult,
    InvalidRequestError,
    Step,
    StepOutcome,
    StreamChunk,
    StreamInterruptedError,
)

if TYPE_CHECKING:
    from llmrouter_core.execution.executor import Executor

__all__ = [
    "ACaller",
    "Acceptor",
    "Caller",
    "CascadeRun",
    "Judgement",
    "StageContext",
    "aexecute_plan",
    "astream_plan",
    "execute_plan",
    "stream_plan",
]

#: ``call(messages, model, **litellm_kwargs)``: one call an acceptor makes, through the executor.
Caller = Callable[..., ExecutionResult]
#: The async twin of :data:`Caller`.
ACaller = Callable[..., Awaitable[ExecutionResult]]
_FAILURES = (ExecutionError, BudgetExceededError)


@dataclass(frozen=True)
class StageContext:
    """What an acceptor sees when it judges a cascade stage's answer.

    Attributes:
        query: The request's routing text (e.g. the last user message).
        messages: The request's messages.
        plan: The cascade.
        stage: Index of the stage whose answer is judged.
        answers: The answers obtained so far, by model (failed stages are absent).
    """

    query: str
    messages: list[sup.Message]
    plan: CascadePlan
    stage: int
    answers: Mapping[str, str]

    @property
    def model(self) -> str:
        """The model of the judged stage."""
        return self.plan.stages[self.stage].model

    @property
    def answer(self) -> str:
        """The judged answer."""
        return self.answers[self.model]


@dataclass(frozen=True)
class Judgement:
    """An acceptor's judgement of one answer.

    Attributes:
        score: In [0, 1] (``None``: the acceptor cannot judge it; the cascade escalates).
        verdicts: A verifier's parsed verdicts, if it asked one.
    """

    score: float | None
    verdicts: tuple[bool | None, ...] = ()


@runtime_checkable
class Acceptor(Protocol):
    """Scores a cascade stage's answer (FrugalGPT's trained scorer, AutoMix's verifier, ...).

    ``call`` / ``acall`` make a call through the executor (charged to the request's budget
    and cap, recorded in its result); an acceptor that needs no call ignores them.
    """

    def score(self, stage: StageContext, call: Caller) -> Judgement: ...

    async def ascore(self, stage: StageContext, acall: ACaller) -> Judgement: ...


# -- the cascade, without I/O ------------------------------------------------------------------


@dataclass(frozen=True)
class CallStage:
    """Call the stage's model with ``plan`` (``stream``: stream it)."""

    plan: Plan
    stream: bool = False


@dataclass(frozen=True)
class Judge:
    """Ask the acceptor about ``stage``."""

    stage: StageContext


@dataclass(frozen=True)
class Done:
    """The end: return ``result`` (and whether its answer was already streamed) or raise
    ``error``."""

    result: ExecutionResult | None = None
    error: BaseException | None = None
    streamed: bool = False


class CascadeRun:
    """The stages of one cascade (see the module docstring for the rules).

    Args:
        ex: The executor.
        plan: The routed request; ``plan.decision.plan`` is the :class:`CascadePlan`.
        stream: Whether the last stage is streamed.
    """

    def __init__(self, ex: Executor, plan: Plan, *, stream: bool = False) -> None:
        assert plan.decision is not None and isinstance(plan.decision.plan, CascadePlan)
        self.ex = ex
        self.plan = plan
        self.cascade: CascadePlan = plan.decision.plan
        self.stream = stream
        self.query = sup.routing_text(plan.messages, ex.routing_text)
        self.index = -1
        self.steps: list[Step] = []
        self.attempts: list[Attempt] = []
        self.answers: dict[str, str] = {}
        self.results: dict[int, ExecutionResult] = {}  # by step
        self.scored: list[tuple[float, int]] = []  # (score, step) of rejected answers
        self.spent = 0.0
        self.judging = 0.0  # spent by the acceptor on the stage being judged
        self.streamed_step = -1

    # -- transitions -------------------------------------------------------------------------
    def start(self) -> CallStage | Done:
        """The first action."""
        return self._next_stage()

    def answered(self, result: ExecutionResult) -> Judge | Done | CallStage:
        """The stage's call answered with ``result``."""
        stage = self.cascade.stages[self.index]
        self.judging = 0.0
        self.attempts.extend(result.attempts)
        self.spent += result.cost
        self.answers[stage.model] = result.answer
        self.results[len(self.steps)] = result
        threshold = stage.threshold
        last = self.index == len(self.cascade.stages) - 1
        if last or threshold is None or threshold <= 0.0:
            return self._accept(Step(stage.model, "accepted", result.answer, None, threshold))
        if threshold > 1.0:
            return self._reject(None, ())
        answers = dict(self.answers)
        return Judge(
            StageContext(self.query, self.plan.messages, self.cascade, self.index, answers)
        )

    def failed(self, exc: BaseException) -> CallStage | Done:
        """The stage's call failed (after its retries) with ``exc``."""
        self.attempts.extend(getattr(exc, "attempts", ()) or ())
        model = self.cascade.stages[self.index].model
        self.steps.append(
            Step(model, "failed", error=self.ex._redact(f"{type(exc).__name__}: {exc}"))
        )
        return self._next_stage()

    def judged(self, judgement: Judgement) -> CallStage | Done:
        """The acceptor judged the stage's answer."""
        stage = self.cascade.stages[self.index]
        score = judgement.score
        if score is not None and stage.threshold is not None and score >= stage.threshold:
            result = self.results[len(self.steps)]
            step = Step(
                stage.model,
                "accepted",
                result.answer,
                score,
                stage.threshold,
                verdicts=tuple(judgement.verdicts),
            )
            return self._accept(step)
        return self._reject(score, tuple(judgement.verdicts))

    # -- the acceptor's own calls ------------------------------------------------------------
    def side_plan(self, messages: Any, model: str, kwargs: Mapping[str, Any]) -> Plan:
        """The plan of a call the acceptor makes (same user, what is left of the cap)."""
        request = self.plan.request
        cap = None if request.max_cost is None else max(request.max_cost - self.spent, 0.0)
        side = Request.build(messages, model=model, user=request.user, max_cost=cap, **kwargs)
        return self.ex._plan(side)

    def side_done(self, outcome: ExecutionResult | BaseException) -> None:
        """Record a call the acceptor made (its result, or the failure it raised)."""
        if isinstance(outcome, ExecutionResult):
            self.attempts.extend(outcome.attempts)
            self.spent += outcome.cost
            self.judging += outcome.cost
        else:
            self.attempts.extend(getattr(outcome, "attempts", ()) or ())

    # -- helpers -----------------------------------------------------------------------------
    def _next_stage(self) -> CallStage | Done:
        stages = self.cascade.stages
        while True:
            self.index += 1
            if self.index >= len(stages):
                return self._after_last()
            model = stages[self.index].model
            why = self._not_callable(model)
            if why is None:
                break
            self.steps.append(Step(model, "failed", error=why))
        last = self.index == len(stages) - 1
        sub = dataclasses.replace(self.plan, order=(model,), route_args=None)
        return CallStage(sub, stream=self.stream and last)

    def _not_callable(self, model: str) -> str | None:
        if model in self.plan.excluded:
            return f"not eligible: {self.plan.excluded[model]}"
        cap = self.plan.request.max_cost
        if cap is not None:
            left = cap - self.spent
            bound = self.plan.bounds.get(model, math.inf)
            if bound > left + 1e-15:
                return f"cost bound ${bound:.6g} exceeds the ${max(left, 0.0):.6g} left of max_cost"
        return None

    def _accept(self, step: Step) -> Done:
        step = dataclasses.replace(step, cost=self._stage_cost())
        self.steps.append(step)
        return self._done(len(self.steps) - 1)

    def _reject(self, score: float | None, verdicts: tuple[bool | None, ...]) -> CallStage | Done:
        stage = self.cascade.stages[self.index]
        result = self.results[len(self.steps)]
        self.steps.append(
            Step(
                stage.model,
                "escalated",
                result.answer,
                score,
                stage.threshold,
                self._stage_cost(),
                verdicts=verdicts,
            )
        )
        self.scored.append((-math.inf if score is None else score, len(self.steps) - 1))
        return self._next_stage()

    def _stage_cost(self) -> float:
        result = self.results.get(len(self.steps))
        return (result.cost if result is not None else 0.0) + self.judging

    def _after_last(self) -> Done:
        if not self.scored:
            return Done(error=AllModelsFailedError(tuple(self.attempts), self.plan.excluded))
        # The last model failed: keep the best-scored answer we have (ties: the later stage).
        _, best = max(self.scored)
        for k, step in enumerate(self.steps):
            if step.answer is not None:
                outcome: StepOutcome = "accepted" if k == best else "answered"
                self.steps[k] = dataclasses.replace(step, outcome=outcome)
        return self._done(best)

    def _done(self, k: int) -> Done:
        streamed = k == self.streamed_step
        return Done(result=self._result(self.results[k]), streamed=streamed)

    def _result(self, kept: ExecutionResult) -> ExecutionResult:
        return dataclasses.replace(
            kept,
            decision=self.plan.decision,
            attempts=tuple(self.attempts),
            excluded=dict(self.plan.excluded),
            cost=self.spent,
            latency_s=time.perf_counter() - self.plan.started,
            steps=tuple(self.steps),
        )


def _acceptor(ex: Executor, cascade: CascadePlan) -> Any:
    """The router's acceptor for ``cascade`` (resolved before any call is made)."""
    resolve = getattr(ex.router, "acceptor", None)
    if not callable(resolve):
        raise InvalidRequestError(
            f"the decision carries a cascade judged by {cascade.acceptor!r}, but the router "
            f"({type(ex.router).__name__}) has no acceptor() to resolve it"
        )
    return resolve(cascade.acceptor)


def _check_models(ex: Executor, models: tuple[str, ...]) -> None:
    unknown = [m for m in models if m not in ex.models]
    if unknown:
        raise UnknownModelError(
            f"the plan names models the router does not know: {', '.join(unknown)}"
        )


# -- cascade drivers -----------------------------------------------------------------------------
# One sync and one async driver; each yields the streamed chunks (``stream=True``) and ends
# with the result, so ``complete`` / ``acomplete`` take the last item.


def _cascade(
    ex: Executor, plan: Plan, completion: Callable[..., Any], *, stream: bool
) -> Iterator[StreamChunk | ExecutionResult]:
    run = CascadeRun(ex, plan, stream=stream)
    acceptor: Any = _acceptor(ex, run.cascade) if len(run.cascade.stages) > 1 else None

    def call(messages: Any, model: str, **kwargs: Any) -> ExecutionResult:
        side = run.side_plan(messages, model, kwargs)
        try:
            result = run_complete(AttemptLoop(ex, side), completion)
        except _FAILURES as exc:
            run.side_done(exc)
            raise
        run.side_done(result)
        return result

    action: Any = run.start()
    while True:
        if isinstance(action, CallStage):
            final: ExecutionResult | None = None
            try:
                if action.stream:
                    loop = AttemptLoop(ex, action.plan, stream=True)
                    for item in run_stream(loop, completion):
                        if isinstance(item, ExecutionResult):
                            final = item
                        else:
                            yield item
                else:
                    final = run_complete(AttemptLoop(ex, action.plan), completion)
            except StreamInterruptedError:
                raise  # text was delivered: no other answer can follow it
            except _FAILURES as exc:
                action = run.failed(exc)
            else:
                assert final is not None
                if action.stream:
                    run.streamed_step = len(run.steps)
                action = run.answered(final)
        elif isinstance(action, Judge):
            action = run.judged(acceptor.score(action.stage, call))
        else:
            yield from _finish_stream(action) if stream else [_finish(action)]
            return


async def _acascade(
    ex: Executor, plan: Plan, acompletion: Callable[..., Awaitable[Any]], *, stream: bool
) -> AsyncGenerator[StreamChunk | ExecutionResult, None]:
    run = CascadeRun(ex, plan, stream=stream)
    acceptor: Any = _acceptor(ex, run.cascade) if len(run.cascade.stages) > 1 else None

    async def acall(messages: Any, model: str, **kwargs: Any) -> ExecutionResult:
        side = run.side_plan(messages, model, kwargs)
        try:
            result = await run_acomplete(AttemptLoop(ex, side), acompletion)
        except _FAILURES as exc:
            run.side_done(exc)
            raise
        run.side_done(result)
        return result

    action: Any = run.start()
    while True:
        if isinstance(action, CallStage):
            final: ExecutionResult | None = None
            try:
                if action.stream:
                    driver = run_astream(AttemptLoop(ex, action.plan, stream=True), acompletion)
                    try:
                        async for item in driver:
                            if isinstance(item, ExecutionResult):
                                final = item
                            else:
                                yield item
                    finally:
                        await driver.aclose()
                else:
                    final = await run_acomplete(AttemptLoop(ex, action.plan), acompletion)
            except StreamInterruptedError:
                raise
            except _FAILURES as exc:
                action = run.failed(exc)
            else:
                assert final is not None
                if action.stream:
                    run.streamed_step = len(run.steps)
                action = run.answered(final)
        elif isinstance(action, Judge):
            action = run.judged(await acceptor.ascore(action.stage, acall))
        else:
            for item in _finish_stream(action) if stream else [_finish(action)]:
                yield item
            return


def _finish(action: Done) -> ExecutionResult:
    if action.error is not None:
        raise action.error
    assert action.result is not None
    return action.result


def _finish_stream(action: Done) -> Iterator[StreamChunk | ExecutionResult]:
    result = _finish(action)
    if not action.streamed and result.answer:
        yield StreamChunk(result.answer, result.model)
    yield result


# -- fan-out -------------------------------------------------------------------------------------


def _fanout_plans(plan: Plan) -> tuple[list[tuple[str, Plan]], dict[str, Step]]:
    """The call plan of each fan-out model, and the models not called (with why): not
    eligible, or beyond what the request's cap leaves once the bounds before it are counted."""
    assert plan.decision is not None and isinstance(plan.decision.plan, FanOutPlan)
    calls: list[tuple[str, Plan]] = []
    skipped: dict[str, Step] = {}
    left = math.inf if plan.request.max_cost is None else plan.request.max_cost
    for model in plan.decision.plan.models:
        if model in plan.excluded:
            skipped[model] = Step(model, "failed", error=f"not eligible: {plan.excluded[model]}")
            continue
        if plan.request.max_cost is not None:
            bound = plan.bounds.get(model, math.inf)
            if bound > left + 1e-15:
                skipped[model] = Step(
                    model,
                    "failed",
                    error=f"cost bound ${bound:.6g} exceeds the ${left:.6g} left of max_cost",
                )
                continue
            left -= bound
        calls.append((model, dataclasses.replace(plan, order=(model,), route_args=None)))
    return calls, skipped


def _fanout_result(
    plan: Plan,
    skipped: dict[str, Step],
    outcomes: dict[str, tuple[ExecutionResult | BaseException, float]],
) -> ExecutionResult:
    """Keep one answer of the fan-out (see the module docstring) and record every model."""
    assert plan.decision is not None and isinstance(plan.decision.plan, FanOutPlan)
    fan = plan.decision.plan
    quality = plan.decision.quality
    answered = [m for m in fan.models if isinstance(outcomes.get(m, (None,))[0], ExecutionResult)]
    attempts: list[Attempt] = []
    total = 0.0
    for m in fan.models:
        got = outcomes.get(m)
        if got is not None:
            value = got[0]
            attempts.extend(
                value.attempts
                if isinstance(value, ExecutionResult)
                else getattr(value, "attempts", ()) or ()
            )
            if isinstance(value, ExecutionResult):
                total += value.cost
    if not answered:
        raise AllModelsFailedError(tuple(attempts), plan.excluded)
    if fan.aggregate == "first":
        kept = min(answered, key=lambda m: outcomes[m][1])
    else:  # highest predicted quality; ties: earlier in the plan
        kept = max(answered, key=lambda m: (quality.get(m, -math.inf), -fan.models.index(m)))
    steps = []
    for m in fan.models:
        if m in skipped:
            steps.append(skipped[m])
            continue
        value = outcomes[m][0]
        score = quality.get(m)
        if isinstance(value, ExecutionResult):
            outcome: StepOutcome = "accepted" if m == kept else "answered"
            steps.append(Step(m, outcome, value.answer, score, cost=value.cost))
        else:
            error = f"{type(value).__name__}: {value}"
            steps.append(Step(m, "failed", score=score, error=error))
    result = outcomes[kept][0]
    assert isinstance(result, ExecutionResult)
    return dataclasses.replace(
        result,
        decision=plan.decision,
        attempts=tuple(attempts),
        excluded=dict(plan.excluded),
        cost=total,
        latency_s=time.perf_counter() - plan.started,
        steps=tuple(steps),
    )


def _run_fanout(ex: Executor, plan: Plan, completion: Callable[..., Any]) -> ExecutionResult:
    calls, skipped = _fanout_plans(plan)
    outcomes: dict[str, tuple[ExecutionResult | BaseException, float]] = {}

    def one(sub: Plan) -> tuple[ExecutionResult | BaseException, float]:
        try:
            value: ExecutionResult | BaseException = run_complete(AttemptLoop(ex, sub), completion)
        except _FAILURES as exc:
            value = exc
        return value, time.perf_counter()

    if calls:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = {m: pool.submit(one, sub) for m, sub in calls}
            for m, future in futures.items():
                outcomes[m] = future.result()
    return _fanout_result(plan, skipped, outcomes)


async def _arun_fanout(
    ex: Executor, plan: Plan, acompletion: Callable[..., Awaitable[Any]]
) -> ExecutionResult:
    calls, skipped = _fanout_plans(plan)

    async def one(sub: Plan) -> tuple[ExecutionResult | BaseException, float]:
        try:
            value: ExecutionResult | BaseException = await run_acomplete(
                AttemptLoop(ex, sub), acompletion
            )
        except _FAILURES as exc:
            value = exc
        return value, time.perf_counter()

    tasks = [asyncio.ensure_future(one(sub)) for _, sub in calls]
    try:
        done = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    outcomes = {m: value for (m, _), value in zip(calls, done, strict=True)}
    return _fanout_result(plan, skipped, outcomes)


# -- entry points --------------------------------------------------------------------------------


def execute_plan(ex: Executor, plan: Plan, completion: Callable[..., Any]) -> ExecutionResult:
    """Carry out the plan of ``plan.decision`` with a blocking ``completion``."""
    assert plan.decision is not None and plan.decision.plan is not None
    _check_models(ex, plan.decision.plan.models)
    if isinstance(plan.decision.plan, CascadePlan):
        *_, result = _cascade(ex, plan, completion, stream=False)
        assert isinstance(result, ExecutionResult)
        return result
    return _run_fanout(ex, plan, completion)


async def aexecute_plan(
    ex: Executor, plan: Plan, acompletion: Callable[..., Awaitable[Any]]
) -> ExecutionResult:
    """Carry out the plan of ``plan.decision`` with ``acompletion``."""
    assert plan.decision is not None and plan.decision.plan is not None
    _check_models(ex, plan.decision.plan.models)
    if isinstance(plan.decision.plan, CascadePlan):
        driver = _acascade(ex, plan, acompletion, stream=False)
        try:
            async for item in driver:
                if isinstance(item, ExecutionResult):
                    return item
        finally:
            await driver.aclose()
        raise AssertionError("the cascade ended without a result")  # pragma: no cover
    return await _arun_fanout(ex, plan, acompletion)


def stream_plan(
    ex: Executor, plan: Plan, completion: Callable[..., Any]
) -> Iterator[StreamChunk | ExecutionResult]:
    """Carry out the plan of ``plan.decision``, streaming the answer it keeps."""
    assert plan.decision is not None and plan.decision.plan is not None
    _check_models(ex, plan.decision.plan.models)
    if isinstance(plan.decision.plan, CascadePlan):
        yield from _cascade(ex, plan, completion, stream=True)
        return
    result = _run_fanout(ex, plan, completion)
    yield from _finish_stream(Done(result=result))


async def astream_plan(
    ex: Executor, plan: Plan, acompletion: Callable[..., Awaitable[Any]]
) -> AsyncGenerator[StreamChunk | ExecutionResult, None]:
    """Async :func:`stream_plan`."""
    assert plan.decision is not None and plan.decision.plan is not None
    _check_models(ex, plan.decision.plan.models)
    if isinstance(plan.decision.plan, CascadePlan):
        driver = _acascade(ex, plan, acompletion, stream=True)
        try:
            async for item in driver:
                yield item
        finally:
            await driver.aclose()
        return
    result = await _arun_fanout(ex, plan, acompletion)
    for item in _finish_stream(Done(result=result)):
        yield item
