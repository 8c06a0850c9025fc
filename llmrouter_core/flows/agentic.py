"""The agentic flow: decompose a question, route each part with the cost knob, answer the
parts in parallel, aggregate.

Every model call is counted in the flow's cost (the LLM decomposer's, with its repair pass,
the parts', the LLM aggregator's). Under a ``budget`` each step is capped by what is left
(parts started together share it evenly); a step that does not fit is not taken, and the
flow answers with what it has and says so in :attr:`FlowResult.stopped`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from llmrouter_core.decision import Decision
from llmrouter_core.errors import LLMRouterError
from llmrouter_core.execution import BudgetExceededError, ExecutionResult, Executor
from llmrouter_core.flows.decompose import (
    PARTS_SCHEMA,
    decompose_prompt,
    parse_parts,
    repair_prompt,
    structural_parts,
)
from llmrouter_core.flows.steps import (
    Call,
    Flow,
    FlowLedger,
    FlowResult,
    FlowStep,
    OnStep,
    SubFlow,
    arun_flow,
    run_flow,
)

__all__ = [
    "Aggregator",
    "Decomposer",
    "aagentic",
    "agentic",
    "agentic_flow",
    "aggregate_answers",
    "concat_answer",
    "decompose",
    "flow_kwargs",
    "record_part",
    "route_part",
    "route_step",
]

#: ``"structural"``, ``"llm"``, or a function ``query -> sub-queries``.
Decomposer = Literal["structural", "llm"] | Callable[[str], Sequence[str]]
#: ``"concat"`` (the parts' answers under ``### Part N`` labels) or ``"llm"``.
Aggregator = Literal["concat", "llm"]


def concat_answer(answers: Sequence[str | None], errors: Sequence[str | None] = ()) -> str:
    """The parts' answers under ``### Part N`` labels (a lone part's answer as it is).

    Example:
        >>> print(concat_answer(["4", None], [None, "budget"]))
        ### Part 1
        4
        <BLANKLINE>
        ### Part 2
        (not answered: budget)
    """
    errs = list(errors) + [None] * (len(answers) - len(errors))
    if len(answers) == 1 and answers[0] is not None:
        return answers[0]
    blocks = []
    for i, (text, err) in enumerate(zip(answers, errs, strict=True), start=1):
        body = text if text is not None else f"(not answered: {err or 'no answer'})"
        blocks.append(f"### Part {i}\n{body}")
    return "\n\n".join(blocks)


def _aggregate_prompt(query: str, parts: Sequence[str], answers: Sequence[str | None]) -> str:
    blocks = [
        f"### Part {i}\nSub-question: {p}\nAnswer: {a if a is not None else '(not answered)'}"
        for i, (p, a) in enumerate(zip(parts, answers, strict=True), start=1)
    ]
    return (
        "Answer the question below using the answers to its parts. Reply with the final "
        "answer only.\n\nQuestion:\n"
        f"{query}\n\nAnswers to its parts:\n" + "\n\n".join(blocks)
    )


def _supports_schema(executor: Executor, model: str) -> bool:
    return model in executor.pool.names and executor.pool[model].supports_json_schema


def decompose(
    query: str,
    decomposer: Decomposer,
    *,
    executor: Executor,
    ledger: FlowLedger,
    plan_model: str | None = None,
    max_parts: int = 4,
    call_kwargs: Mapping[str, Any] | None = None,
) -> SubFlow[list[str]]:
    """Sub-flow: the parts of ``query`` (records the ``plan`` steps)."""
    started = time.perf_counter()
    if callable(decomposer):
        parts = [str(p).strip() for p in decomposer(query)]
        parts = [p for p in parts if p] or [query.strip()]
        ledger.add(
            FlowStep(
                "plan",
                None,
                query,
                json.dumps(parts),
                latency_s=_since(started),
                why=f"custom decomposer: {len(parts)} parts",
            )
        )
        return parts
    if decomposer == "structural":
        parts = structural_parts(query)
        ledger.add(
            FlowStep(
                "plan",
                None,
                query,
                json.dumps(parts),
                latency_s=_since(started),
                why=f"structural: {len(parts)} part(s)",
            )
        )
        return parts
    if decomposer != "llm":
        raise ValueError("decomposer must be 'structural', 'llm' or a callable")
    prompt = decompose_prompt(query, max_parts)
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    kwargs = dict(call_kwargs or {})
    if plan_model is not None and _supports_schema(executor, plan_model):
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "parts", "schema": PARTS_SCHEMA},
        }
    found: list[str] | None = None
    error = ""
    for attempt in range(2):  # the request, then one repair pass
        why = "LLM decomposer" if attempt == 0 else "LLM decomposer, repair pass"
        cap = ledger.cap()
        (outcome,) = yield [Call(list(messages), plan_model, max_cost=cap, kwargs=kwargs)]
        if not isinstance(outcome, ExecutionResult):
            ledger.record_call("plan", prompt, outcome, why=why, model=plan_model)
            break
        try:
            found = parse_parts(outcome.answer, max_parts)
        except ValueError as exc:
            error = str(exc)
            ledger.record_call(
                "plan", messages[-1]["content"], outcome, why=why, error=f"format: {error}"
            )
            messages += [
                {"role": "assistant", "content": outcome.answer},
                {"role": "user", "content": repair_prompt(error)},
            ]
            continue
        ledger.record_call(
            "plan", messages[-1]["content"], outcome, why=f"{why}: {len(found)} part(s)"
        )
        return found
    fallback = structural_parts(query)
    ledger.add(
        FlowStep(
            "plan",
            None,
            query,
            json.dumps(fallback),
            why=f"no valid decomposition; structural fallback: {len(fallback)} part(s)",
        )
    )
    return fallback


def _since(started: float) -> float:
    return time.perf_counter() - started


def route_part(
    executor: Executor,
    router: Any,
    part: str,
    *,
    cost_weight: float | None,
    max_cost: float | None,
    user: str | None,
) -> Decision:
    """The decision for one sub-query: the executor's router (with the pool's eligibility,
    the caps and the budget), or ``router`` (restricted to the executor's models)."""
    if router is None or router is executor.router:
        return executor.route(part, cost_weight=cost_weight, max_cost=max_cost, user=user)
    weight = cost_weight if cost_weight is not None else executor.cost_weight
    allowed = tuple(m for m in router.models_ if m in executor.models)
    return router.route(part, cost_weight=weight, allowed=allowed)  # type: ignore[no-any-return]


def route_step(
    executor: Executor,
    router: Any,
    part: str,
    index: int,
    *,
    ledger: FlowLedger,
    max_cost: float | None,
    cost_weight: float | None,
    user: str | None,
) -> Decision | None:
    """Route sub-query ``index`` and record the ``route`` step; ``None`` when no model fits
    (a budget refusal also stops the flow)."""
    started = time.perf_counter()
    try:
        decision = route_part(
            executor, router, part, cost_weight=cost_weight, max_cost=max_cost, user=user
        )
    except (BudgetExceededError, LLMRouterError) as exc:
        ledger.record_call("route", part, exc, part=index, started=started)
        return None
    ledger.add(
        FlowStep(
            "route",
            decision.model,
            part,
            decision.model,
            latency_s=_since(started),
            why=decision.reason or f"routed by {decision.router}",
            part=index,
        )
    )
    return decision


def record_part(
    ledger: FlowLedger, part: str, index: int, model: str, outcome: ExecutionResult | Exception
) -> FlowStep:
    """Record the ``call`` step of sub-query ``index``."""
    return ledger.record_call(
        "call", part, outcome, part=index, model=model, why=f"routed to {model}"
    )


def aggregate_answers(
    query: str,
    parts: Sequence[str],
    answers: Sequence[str | None],
    errors: Sequence[str | None],
    *,
    aggregate: Aggregator,
    ledger: FlowLedger,
    aggregate_model: str | None = None,
    call_kwargs: Mapping[str, Any] | None = None,
) -> SubFlow[str]:
    """Sub-flow: the answer from the parts' answers (records the ``aggregate`` steps); the
    LLM aggregation falls back to the concatenation when its call fails."""
    started = time.perf_counter()
    concat = concat_answer(answers, errors)
    if aggregate == "concat" or len(parts) == 1 or all(a is None for a in answers):
        why = "concatenation with part labels" if len(parts) > 1 else "one part: its answer"
        ledger.add(FlowStep("aggregate", None, query, concat, latency_s=_since(started), why=why))
        return concat
    prompt = _aggregate_prompt(query, parts, answers)
    (outcome,) = yield [
        Call(
            prompt,
            aggregate_model,
            max_cost=ledger.cap(),
            kwargs=dict(call_kwargs or {}),
            stream=True,
        )
    ]
    step = ledger.record_call(
        "aggregate",
        prompt,
        outcome,
        model=aggregate_model,
        why="LLM aggregation",
        started=started,
    )
    if step.error is not None:
        ledger.add(
            FlowStep("aggregate", None, query, concat, why="LLM aggregation failed: concatenation")
        )
        return concat
    return step.reply


def flow_kwargs(cost_weight: float | None, user: str | None) -> dict[str, Any]:
    """The executor arguments of a flow's planning and aggregation calls."""
    kwargs: dict[str, Any] = {"user": user}
    if cost_weight is not None:
        kwargs["cost_weight"] = cost_weight
    return kwargs


def agentic_flow(
    query: str,
    *,
    executor: Executor,
    router: Any = None,
    decomposer: Decomposer = "structural",
    aggregate: Aggregator = "concat",
    cost_weight: float | None = None,
    ledger: FlowLedger,
    user: str | None = None,
    plan_model: str | None = None,
    aggregate_model: str | None = None,
    max_parts: int = 4,
) -> Flow:
    """The agentic flow as a generator of calls (see :func:`run_flow`)."""
    if aggregate not in ("concat", "llm"):
        raise ValueError("aggregate must be 'concat' or 'llm'")
    if max_parts < 1:
        raise ValueError("max_parts must be >= 1")
    call_kwargs = flow_kwargs(cost_weight, user)
    parts = yield from decompose(
        query,
        decomposer,
        executor=executor,
        ledger=ledger,
        plan_model=plan_model,
        max_parts=max_parts,
        call_kwargs=call_kwargs,
    )
    # Route every part (with the cost knob), then answer the routed ones in parallel.
    n = len(parts)
    answers: list[str | None] = [None] * n
    errors: list[str | None] = [None] * n
    routed: list[tuple[int, Decision, float | None]] = []
    for i, part in enumerate(parts):
        cap = ledger.cap(n)
        decision = route_step(
            executor,
            router,
            part,
            i,
            ledger=ledger,
            max_cost=cap,
            cost_weight=cost_weight,
            user=user,
        )
        if decision is None:
            errors[i] = ledger.steps[-1].error
        else:
            routed.append((i, decision, cap))
    # A lone part's reply is the answer: it streams to a caller that asks for the text.
    calls = [
        Call(parts[i], decision=d, max_cost=cap, kwargs={"user": user}, stream=n == 1)
        for i, d, cap in routed
    ]
    outcomes = (yield calls) if calls else []
    for (i, decision, _), outcome in zip(routed, outcomes, strict=True):
        step = record_part(ledger, parts[i], i, decision.model, outcome)
        answers[i], errors[i] = (step.reply, None) if step.error is None else (None, step.error)
    answer = yield from aggregate_answers(
        query,
        parts,
        answers,
        errors,
        aggregate=aggregate,
        ledger=ledger,
        aggregate_model=aggregate_model,
        call_kwargs=call_kwargs,
    )
    return ledger.result(answer)


def _check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty")
    return query


def agentic(
    query: str,
    *,
    router: Any = None,
    executor: Executor,
    decomposer: Decomposer = "structural",
    aggregate: Aggregator = "concat",
    cost_weight: float | None = None,
    budget: float | None = None,
    max_cost: float | None = None,
    user: str | None = None,
    on_step: OnStep | None = None,
    plan_model: str | None = None,
    aggregate_model: str | None = None,
    max_parts: int = 4,
) -> FlowResult:
    """Decompose ``query``, route each part, answer the parts in parallel, aggregate.

    Args:
        query: The question.
        router: Routes the parts (default: the executor's router). Any trained router.
        executor: Calls the models (its pool, budget, retries and fallbacks apply).
        decomposer: ``"structural"`` (``### Part N`` headers, else numbered items; no model),
            ``"llm"`` (a model replies with JSON, one repair pass) or a callable.
        aggregate: ``"concat"`` (answers under part labels) or ``"llm"``.
        cost_weight: The cost knob for routing the parts (and the planning/aggregation calls
            when no model is named for them).
        budget: USD the whole flow may spend.
        max_cost: USD one call may cost.
        user: Passed to routing and to the executor's per-user budgets.
        on_step: Called with each :class:`FlowStep` as it finishes.
        plan_model: The pool model of the LLM decomposer (default: routed).
        aggregate_model: The pool model of the LLM aggregation (default: routed).
        max_parts: Most parts the LLM decomposer may return.

    Returns:
        The :class:`FlowResult`.

    Example:
        >>> from llmrouter_core.testing import ScriptedProvider, dummy_router
        >>> from llmrouter_core.execution import Executor
        >>> provider = ScriptedProvider({"small": "4", "large": "four"})
        >>> pool = provider.pool(prices={"small": 0.1, "large": 10.0})
        >>> router = dummy_router({"small": 0.6, "large": 0.9},
        ...                       {"small": 1e-5, "large": 1e-3}, pool)
        >>> result = agentic("### Part 1\\n2+2?\\n### Part 2\\n3+1?",
        ...                  executor=Executor(router), cost_weight=1000.0)
        >>> print(result.answer)
        ### Part 1
        4
        <BLANKLINE>
        ### Part 2
        4
    """
    ledger = FlowLedger(budget, max_cost, on_step)
    flow = agentic_flow(
        _check_query(query),
        executor=executor,
        router=router,
        decomposer=decomposer,
        aggregate=aggregate,
        cost_weight=cost_weight,
        ledger=ledger,
        user=user,
        plan_model=plan_model,
        aggregate_model=aggregate_model,
        max_parts=max_parts,
    )
    return run_flow(flow, executor)


async def aagentic(
    query: str,
    *,
    router: Any = None,
    executor: Executor,
    decomposer: Decomposer = "structural",
    aggregate: Aggregator = "concat",
    cost_weight: float | None = None,
    budget: float | None = None,
    max_cost: float | None = None,
    user: str | None = None,
    on_step: OnStep | None = None,
    plan_model: str | None = None,
    aggregate_model: str | None = None,
    max_parts: int = 4,
    on_text: Callable[[str], None] | None = None,
) -> FlowResult:
    """Async :func:`agentic` (the parts' calls are gathered). ``on_text`` receives the
    answer's text as the call that makes it streams (a lone part's call, or the LLM
    aggregation); an answer built without a model call (the parts' concatenation) is not
    passed to it."""
    ledger = FlowLedger(budget, max_cost, on_step)
    flow = agentic_flow(
        _check_query(query),
        executor=executor,
        router=router,
        decomposer=decomposer,
        aggregate=aggregate,
        cost_weight=cost_weight,
        ledger=ledger,
        user=user,
        plan_model=plan_model,
        aggregate_model=aggregate_model,
        max_parts=max_parts,
    )
    return await arun_flow(flow, executor, on_text=on_text)
