"""The core's routing flows as compiled LangGraph graphs, usable as subgraphs.

* :func:`create_agentic_graph`: ``plan`` (decompose) -> ``part`` (one ``Send`` per
  sub-query: route it with the cost knob, call the model) -> ``aggregate``.
* :func:`create_multiround_graph`: ``policy`` (one policy turn) <-> ``consult`` (the
  consultations it asked for), until the policy answers.

The nodes run the steps of :mod:`llmrouter_core.flows` (the same code as
:func:`~llmrouter_core.flows.agentic` and :func:`~llmrouter_core.flows.multi_round`), on an
:class:`~llmrouter_core.execution.Executor` (or a :class:`RoutedChatModel`'s). The state is
JSON-safe (steps as dicts), so any checkpointer works; every node's update carries its
steps (``stream_mode="updates"`` shows them live) and the answer is appended to
``messages`` as an :class:`AIMessage` (``stream_mode="messages"``).

With ``approve_above=X`` (USD), a call whose predicted cost (the router's prediction for the
chosen model) exceeds ``X`` waits for a human: the node calls ``interrupt(...)`` with the
model, the question and the predicted cost, and the graph resumes with
``Command(resume=True)`` (call it), ``Command(resume=False)`` (skip it) or
``Command(resume="<pool model>")`` (call that model instead). Interrupts need a
checkpointer (the graph's, or its parent graph's).

Example:
    >>> from langchain_llmrouter.flows import create_agentic_graph    # doctest: +SKIP
    >>> graph = create_agentic_graph(executor, cost_weight=100.0)     # doctest: +SKIP
    >>> graph.invoke({"query": "### Part 1\\n...\\n### Part 2\\n..."})["answer"]  # doctest: +SKIP
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Send, interrupt
from typing_extensions import NotRequired

from llmrouter_core.decision import Decision
from llmrouter_core.errors import UnknownModelError
from llmrouter_core.execution import Executor
from llmrouter_core.flows.agentic import (
    Aggregator,
    Decomposer,
    aggregate_answers,
    decompose,
    flow_kwargs,
    record_part,
    route_step,
)
from llmrouter_core.flows.multiround import Consultation, MultiRoundSession, Protocol
from llmrouter_core.flows.steps import (
    Call,
    FlowLedger,
    FlowResult,
    FlowStep,
    SubFlow,
    arun_flow,
    run_flow,
)

__all__ = [
    "AgenticState",
    "MultiRoundState",
    "create_agentic_graph",
    "create_multiround_graph",
    "flow_result",
]


class _FlowState(TypedDict):
    query: NotRequired[str]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    steps: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    spent: NotRequired[Annotated[float, operator.add]]
    stopped: NotRequired[str | None]
    answer: NotRequired[str]


class AgenticState(_FlowState):
    """The agentic graph's state: the question (``query``, else the last human message),
    the parts, each part's outcome, every step (``FlowStep.to_dict()``), the USD spent."""

    parts: NotRequired[list[str]]
    results: NotRequired[Annotated[list[dict[str, Any]], operator.add]]


class MultiRoundState(_FlowState):
    """The multi-round graph's state: the policy session (JSON), its pending
    consultations, every step, the USD spent."""

    session: NotRequired[dict[str, Any]]
    pending: NotRequired[list[dict[str, Any]]]
    done: NotRequired[bool]


def _executor(target: Any) -> Executor:
    executor = getattr(target, "executor", target)
    if not isinstance(executor, Executor):
        raise TypeError("give an Executor or a RoutedChatModel")
    return executor


def _query(state: Mapping[str, Any]) -> str:
    query = state.get("query")
    if query:
        return str(query)
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return str(message.text if hasattr(message, "text") else message.content)
    raise ValueError("the graph state has neither a 'query' nor a human message")


def _ledger(state: Mapping[str, Any], budget: float | None, max_cost: float | None) -> FlowLedger:
    left = None if budget is None else max(0.0, budget - float(state.get("spent") or 0.0))
    return FlowLedger(left, max_cost)


def _update(ledger: FlowLedger, **values: Any) -> dict[str, Any]:
    out = {
        "steps": [s.to_dict() for s in ledger.steps],
        "spent": sum(s.cost or 0.0 for s in ledger.steps),
        **values,
    }
    if ledger.stopped is not None:
        out["stopped"] = ledger.stopped
    return out


def _approve(
    executor: Executor,
    decision: Decision | None,
    model: str,
    question: str,
    threshold: float | None,
) -> tuple[str | None, str]:
    """Ask a human when the predicted cost of calling ``model`` exceeds ``threshold``:
    ``(model to call or None to skip, why)``."""
    if threshold is None:
        return model, ""
    if decision is None:
        decision = executor.route(question)
    predicted = decision.cost.get(model)
    if predicted is None or predicted <= threshold:
        return model, ""
    answer = interrupt(
        {
            "model": model,
            "question": question,
            "predicted_cost": predicted,
            "threshold": threshold,
            "resume": "True to call it, False to skip it, or the name of a pool model to call",
        }
    )
    if answer is True:
        return model, f"approved (predicted ${predicted:.6g})"
    if isinstance(answer, str) and answer in executor.pool:
        return answer, f"replaced by {answer} on review (predicted ${predicted:.6g})"
    if isinstance(answer, str):
        raise UnknownModelError(f"resume names an unknown model {answer!r}")
    return None, f"rejected on review (predicted ${predicted:.6g})"


def _node(name: str, body: Any, executor: Executor) -> RunnableLambda[Any, Any]:
    """A node whose body is written once as a generator of calls, run sync or async."""

    def sync(state: Any) -> Any:
        return run_flow(body(state), executor)

    async def asynchronous(state: Any) -> Any:
        return await arun_flow(body(state), executor)

    return RunnableLambda(sync, afunc=asynchronous, name=name)


def flow_result(state: Mapping[str, Any]) -> FlowResult:
    """The :class:`~llmrouter_core.flows.FlowResult` of a finished graph's state."""
    steps = [FlowStep(**s) for s in state.get("steps") or []]
    models: list[str] = []
    for s in steps:
        if s.model is not None and s.cost is not None and s.model not in models:
            models.append(s.model)
    return FlowResult(
        answer=str(state.get("answer") or ""),
        steps=steps,
        cost=sum(s.cost or 0.0 for s in steps),
        models=models,
        stopped=state.get("stopped"),
        messages=list((state.get("session") or {}).get("messages") or []),
    )


def create_agentic_graph(
    target: Any,
    *,
    router: Any = None,
    decomposer: Decomposer = "structural",
    aggregate: Aggregator = "concat",
    cost_weight: float | None = None,
    budget: float | None = None,
    max_cost: float | None = None,
    approve_above: float | None = None,
    plan_model: str | None = None,
    aggregate_model: str | None = None,
    max_parts: int = 4,
    checkpointer: Any = None,
    name: str = "agentic",
) -> Any:
    """The agentic flow as a compiled graph: ``plan`` -> ``part`` x N (``Send``) ->
    ``aggregate``.

    Args:
        target: An :class:`~llmrouter_core.execution.Executor` or a ``RoutedChatModel``.
        router, decomposer, aggregate, cost_weight, budget, max_cost, plan_model,
            aggregate_model, max_parts: As for :func:`llmrouter_core.flows.agentic`.
        approve_above: Interrupt before a part's call whose predicted cost (USD) exceeds it.
        checkpointer: Passed to ``compile`` (``None`` inside a parent graph: it uses the
            parent's).
        name: The compiled graph's name.

    Input: ``{"query": ...}`` or ``{"messages": [...]}`` (the last human message). Output
    adds ``answer``, ``steps``, ``spent``, ``stopped`` and an :class:`AIMessage`.
    """
    executor = _executor(target)
    if aggregate not in ("concat", "llm"):
        raise ValueError("aggregate must be 'concat' or 'llm'")
    user = None

    def plan(state: Any) -> SubFlow[dict[str, Any]]:
        ledger = _ledger(state, budget, max_cost)
        query = _query(state)
        parts = yield from decompose(
            query,
            decomposer,
            executor=executor,
            ledger=ledger,
            plan_model=plan_model,
            max_parts=max_parts,
            call_kwargs=flow_kwargs(cost_weight, user),
        )
        return _update(ledger, query=query, parts=parts, results=[])

    def fan_out(state: Any) -> list[Send]:
        parts = state["parts"]
        cap = _ledger(state, budget, max_cost).cap(len(parts))
        return [
            Send("part", {"query": state["query"], "text": p, "index": i, "cap": cap})
            for i, p in enumerate(parts)
        ]

    def part(task: Any) -> SubFlow[dict[str, Any]]:
        ledger = FlowLedger(task["cap"], None)
        text, index = task["text"], task["index"]
        decision = route_step(
            executor,
            router,
            text,
            index,
            ledger=ledger,
            max_cost=task["cap"],
            cost_weight=cost_weight,
            user=user,
        )
        result: dict[str, Any] = {"index": index, "answer": None, "error": None}
        if decision is None:
            result["error"] = ledger.steps[-1].error
            return _update(ledger, results=[result])
        model, why = _approve(executor, decision, decision.model, text, approve_above)
        if model is None:
            ledger.add(FlowStep("call", decision.model, text, "", why=why, error=why, part=index))
            result["error"] = why
            return _update(ledger, results=[result])
        chosen = decision if model == decision.model else None
        (outcome,) = yield [
            Call(
                text,
                None if chosen else model,
                decision=chosen,
                max_cost=task["cap"],
                kwargs={"user": user},
            )
        ]
        step = record_part(ledger, text, index, model, outcome)
        if why:
            step_why = f"{step.why}; {why}"
            ledger.steps[-1] = FlowStep(**{**step.to_dict(), "why": step_why})
        result["answer"], result["error"] = (
            (step.reply, None) if step.error is None else (None, step.error)
        )
        return _update(ledger, results=[result])

    def aggregate_node(state: Any) -> SubFlow[dict[str, Any]]:
        ledger = _ledger(state, budget, max_cost)
        parts = state["parts"]
        by_index = {r["index"]: r for r in state.get("results") or []}
        answers = [by_index.get(i, {}).get("answer") for i in range(len(parts))]
        errors = [by_index.get(i, {}).get("error") for i in range(len(parts))]
        answer = yield from aggregate_answers(
            state["query"],
            parts,
            answers,
            errors,
            aggregate=aggregate,
            ledger=ledger,
            aggregate_model=aggregate_model,
            call_kwargs=flow_kwargs(cost_weight, user),
        )
        stopped = state.get("stopped") or next(
            (e for e in errors if e and e.startswith("budget:")), None
        )
        return _update(
            ledger,
            answer=answer,
            stopped=stopped or ledger.stopped,
            messages=[AIMessage(answer, name=name)],
        )

    builder = StateGraph(AgenticState)
    for key, fn in (("plan", plan), ("part", part), ("aggregate", aggregate_node)):
        builder.add_node(key, _node(key, fn, executor))
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["part"])
    builder.add_edge("part", "aggregate")
    builder.add_edge("aggregate", END)
    return builder.compile(checkpointer=checkpointer, name=name)


def create_multiround_graph(
    target: Any,
    *,
    policy_model: str,
    router: Any = None,
    protocol: Protocol = "auto",
    max_rounds: int = 4,
    budget: float | None = None,
    max_cost: float | None = None,
    approve_above: float | None = None,
    checkpointer: Any = None,
    name: str = "multi_round",
) -> Any:
    """The multi-round flow as a compiled graph: ``policy`` <-> ``consult`` -> END.

    Args:
        target: An :class:`~llmrouter_core.execution.Executor` or a ``RoutedChatModel``.
        policy_model, router, protocol, max_rounds, budget, max_cost: As for
            :func:`llmrouter_core.flows.multi_round`.
        approve_above: Interrupt before a consultation whose predicted cost (USD) exceeds
            it (the router's prediction for the model the policy chose).
        checkpointer: Passed to ``compile``.
        name: The compiled graph's name.
    """
    executor = _executor(target)
    if policy_model not in executor.pool:
        raise UnknownModelError(
            f"unknown policy model {policy_model!r}; the pool has: {', '.join(executor.pool.names)}"
        )

    def session_of(state: Any) -> MultiRoundSession:
        if state.get("session"):
            return MultiRoundSession.from_state(state["session"], executor)
        return MultiRoundSession(
            _query(state),
            executor=executor,
            policy_model=policy_model,
            router=router,
            protocol=protocol,
            max_rounds=max_rounds,
        )

    def policy(state: Any) -> SubFlow[dict[str, Any]]:
        ledger = _ledger(state, budget, max_cost)
        session = session_of(state)
        answer: str | None = None
        pending: list[dict[str, Any]] = []
        done = state.get("stopped") is not None or session.turns >= session.max_turns
        if not done:
            (outcome,) = yield [session.policy_call(ledger)]
            turn = session.on_policy(outcome, ledger)
            answer = turn.answer
            pending = [
                {
                    "model": c.model,
                    "question": c.question,
                    "tool_call_id": c.tool_call_id,
                    "error": c.error,
                }
                for c in turn.consultations
            ]
            done = answer is not None or turn.stop or ledger.stopped is not None
        if not done:
            return _update(
                ledger, session=session.state(), pending=pending, done=False, query=session.query
            )
        if ledger.stopped is None:
            ledger.stopped = state.get("stopped")
        result = session.finish(ledger, answer)
        return _update(
            ledger,
            session=session.state(),
            pending=[],
            done=True,
            query=session.query,
            answer=result.answer,
            messages=[AIMessage(result.answer, name=name)],
        )

    def consult(state: Any) -> SubFlow[dict[str, Any]]:
        # One consultation per run of the node: a node resumed after an interrupt runs
        # again from its start, so nothing before the interrupt may have been called.
        ledger = _ledger(state, budget, max_cost)
        session = session_of(state)
        first, *rest = state["pending"]
        c = Consultation(**first)
        if c.error is not None:
            session.reply(c, f"format: {c.error}")
            return _update(ledger, session=session.state(), pending=rest)
        assert c.model is not None
        model, why = _approve(executor, None, c.model, c.question, approve_above)
        if model is None:
            ledger.add(FlowStep("call", c.model, c.question, "", why=why, error=why))
            session.rounds += 1
            session.reply(c, f"error: the call was not approved ({why})")
            return _update(ledger, session=session.state(), pending=rest)
        c = Consultation(model, c.question, c.tool_call_id)
        (outcome,) = yield [session.consult_call(c, ledger, why)]
        session.on_consult(c, outcome, ledger)
        if ledger.stopped is not None:  # the rest is not taken: back to the policy, which ends
            for other in rest:
                session.reply(Consultation(**other), "error: not consulted (budget)")
            rest = []
        return _update(ledger, session=session.state(), pending=rest)

    def next_node(state: Any) -> Literal["consult", "policy", "__end__"]:
        if state.get("done"):
            return END
        return "consult" if state.get("pending") else "policy"

    builder = StateGraph(MultiRoundState)
    builder.add_node("policy", _node("policy", policy, executor))
    builder.add_node("consult", _node("consult", consult, executor))
    builder.add_edge(START, "policy")
    builder.add_conditional_edges("policy", next_node, ["consult", "policy", END])
    builder.add_conditional_edges("consult", next_node, ["consult", "policy"])
    return builder.compile(checkpointer=checkpointer, name=name)
