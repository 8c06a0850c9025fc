"""LangGraph building blocks: a router node, per-model nodes, and a fan-out to several routed
models with an aggregator.

* :func:`create_router_node` returns a node that routes the graph's messages and jumps to
  the node of the chosen model (``Command(goto=...)``), recording the decision in state.
* :func:`create_model_node` returns a node that answers with one pool model.
* :func:`create_fanout_nodes` returns three nodes: a fan-out that sends the request to the
  models of the core's fan-out plan (:class:`~llmrouter_core.policy.FanOutPolicy`: the ``k``
  best-ranked) with ``Send``, a worker that answers with one of them, and an aggregator that
  keeps one answer: by the router's predicted quality, the first to arrive, or a judge's
  verdict.

Every node works under a checkpointer (state holds only messages and JSON-safe dicts) and
with ``stream_mode="messages"`` (model tokens stream once; the judge's do not stream; a
fan-out shows only the answer it keeps, unless ``stream_candidates=True`` streams every
candidate with a tag). The decision is recorded in the state under ``routing``
(``Decision.to_dict()``: ``model``, ``ranked``, ``quality``, ``cost``, ``reason``, and a
fan-out's ``plan`` and ``fanout``).

Example:
    >>> from langgraph.graph import END, START, StateGraph        # doctest: +SKIP
    >>> routes = {"gpt-4-1106-preview": "strong", "mistral-7b": "fast"}  # doctest: +SKIP
    >>> builder = StateGraph(RouterState)                          # doctest: +SKIP
    >>> builder.add_node("route", create_router_node(llm, routes),
    ...                  destinations=tuple(routes.values()))      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import MessagesState
from langgraph.types import Command, Overwrite, Send
from typing_extensions import NotRequired

from langchain_llmrouter.chat_models import RoutedChatModel, _restrict
from llmrouter_core.decision import Decision, FanOutPlan
from llmrouter_core.errors import UnknownModelError
from llmrouter_core.integration import fan_out_decision
from llmrouter_core.policy import FanOutPolicy

__all__ = [
    "CANDIDATE_TAG",
    "FanOutState",
    "RouterState",
    "create_fanout_nodes",
    "create_model_node",
    "create_router_node",
]

logger = logging.getLogger(__name__)

#: Tag of a fan-out candidate's model run (``create_fanout_nodes(stream_candidates=True)``):
#: in ``stream_mode="messages"`` its chunks carry it in ``metadata["tags"]``, with
#: ``candidate:<model>``, so a UI can leave them out or show them apart.
CANDIDATE_TAG = "llmrouter:candidate"


def _add_candidates(
    left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    return [*(left or []), *(right or [])]


class RouterState(MessagesState):
    """Messages plus the last routing decision (``Decision.to_dict()``)."""

    routing: NotRequired[dict[str, Any]]


class FanOutState(RouterState):
    """:class:`RouterState` plus the candidate answers of the current fan-out."""

    candidates: Annotated[list[dict[str, Any]], _add_candidates]


def _messages(state: Any, key: str) -> list[AnyMessage]:
    messages = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
    if not messages:
        raise ValueError(f"the graph state has no messages under {key!r} to route")
    return list(messages)


def create_router_node(
    model: RoutedChatModel,
    routes: Mapping[str, str] | None = None,
    *,
    messages_key: str = "messages",
    decision_key: str | None = "routing",
    cost_weight: float | None = None,
    tools: Sequence[Any] | None = None,
) -> RunnableLambda[Any, Command[Any]]:
    """A node that routes the state's messages and goes to the chosen model's node.

    Args:
        model: The routed model (its router, pool, cost weight and routing text apply).
        routes: Pool model -> node name. Only these models are routed to (default: every
            pool model, each to the node named after it). Several models may share a node.
        messages_key: State key of the messages.
        decision_key: State key where the decision is recorded (``Decision.to_dict()``);
            the state schema must have it (as :class:`RouterState` does: LangGraph drops
            keys a schema lacks). ``None`` records nothing.
        cost_weight: lambda for these decisions (default: the model's).
        tools: Tools the next node will bind (only models that support tools are chosen).

    Returns:
        A node returning ``Command(goto=<node>, update={decision_key: decision})``. Pass
        ``destinations=tuple(set(routes.values()))`` to ``add_node`` to draw its edges.
    """
    table = dict(routes) if routes is not None else {m: m for m in model.models}
    unknown = [m for m in table if m not in model.models]
    if unknown:
        raise UnknownModelError(
            f"routes name models outside the pool: {', '.join(unknown)}; "
            f"the pool has: {', '.join(model.models)}"
        )
    if not table:
        raise ValueError("routes is empty: give at least one model -> node")

    def decide(state: Any) -> Decision:
        decision = model.route(_messages(state, messages_key), tools=tools, cost_weight=cost_weight)
        if len(table) < len(model.models):
            decision = _restrict(decision, table, "have a node in this graph")
        return decision

    def route(state: Any) -> Command[Any]:
        decision = decide(state)
        logger.debug("router node: %s -> %s", decision.model, table[decision.model])
        update = {decision_key: decision.to_dict()} if decision_key else None
        return Command(goto=table[decision.model], update=update)

    async def aroute(state: Any) -> Command[Any]:
        return route(state)

    return RunnableLambda(route, afunc=aroute, name="route")


def create_model_node(
    model: RoutedChatModel,
    pool_model: str,
    *,
    messages_key: str = "messages",
) -> RunnableLambda[Any, dict[str, Any]]:
    """A node that answers the state's messages with ``pool_model`` (no routing).

    Returns:
        A node returning ``{messages_key: [AIMessage]}``.
    """
    if pool_model not in model.models:
        raise UnknownModelError(
            f"unknown model {pool_model!r}; the pool has: {', '.join(model.models)}"
        )

    def answer(state: Any, config: RunnableConfig) -> dict[str, Any]:
        message = model.invoke(_messages(state, messages_key), config, model=pool_model)
        return {messages_key: [message]}

    async def aanswer(state: Any, config: RunnableConfig) -> dict[str, Any]:
        message = await model.ainvoke(_messages(state, messages_key), config, model=pool_model)
        return {messages_key: [message]}

    return RunnableLambda(answer, afunc=aanswer, name="model_node")


_JUDGE_PROMPT = (
    "You are judging answers to a request. Reply with the number of the best answer "
    "(the most correct and helpful) and nothing else.\n\nRequest:\n{request}\n\n{answers}"
)


def create_fanout_nodes(
    model: RoutedChatModel,
    *,
    k: int = 2,
    worker: str = "routed_call",
    aggregate: Literal["quality", "first", "judge"] = "quality",
    judge: BaseChatModel | None = None,
    messages_key: str = "messages",
    decision_key: str = "routing",
    candidates_key: str = "candidates",
    cost_weight: float | None = None,
    stream_candidates: bool = False,
) -> tuple[
    RunnableLambda[Any, Command[Any]],
    RunnableLambda[Any, dict[str, Any]],
    RunnableLambda[Any, dict[str, Any]],
]:
    """Nodes that send a request to the ``k`` best-ranked models and keep one answer.

    The candidates are the models of the fan-out plan that the core's
    :class:`~llmrouter_core.policy.FanOutPolicy` makes of the routed model's decision (the
    ``k`` best-ranked among the models that can take the request); the graph runs them as
    parallel worker nodes and records the plan in the decision (``routing["plan"]``).

    Wire them as ``fan_out -> worker (k parallel runs) -> aggregator``::

        fan_out, work, pick = create_fanout_nodes(llm, k=3)
        builder = StateGraph(FanOutState)
        builder.add_node("fan_out", fan_out, destinations=("routed_call",))
        builder.add_node("routed_call", work)
        builder.add_node("aggregate", pick)
        builder.add_edge(START, "fan_out")
        builder.add_edge("routed_call", "aggregate")
        builder.add_edge("aggregate", END)

    Args:
        model: The routed model.
        k: How many of the ranked models answer.
        worker: Name of the worker node in the graph (the fan-out sends to it).
        aggregate: ``"quality"`` keeps the answer of the model with the highest predicted
            quality (cheaper first among ties); ``"first"`` the first answer to arrive (the
            plan's two aggregates); ``"judge"`` asks ``judge`` which is best (by predicted
            quality when its verdict names none).
        judge: The judging chat model (required for ``aggregate="judge"``; a
            :class:`RoutedChatModel` works too). Its tokens are not streamed.
        messages_key: State key of the messages.
        decision_key: State key of the decision; the aggregator adds a ``"fanout"`` entry
            (candidates, chosen model, how it was chosen).
        candidates_key: State key of the candidate answers (reset at every fan-out).
        cost_weight: lambda for the ranking (default: the model's).
        stream_candidates: What ``stream_mode="messages"`` shows. ``False`` (the default):
            only the chosen answer, as one message when the aggregator has kept it (the
            candidates' tokens are not streamed: which answer is kept is known only once
            they have all arrived). ``True``: every candidate's tokens as they come, each
            chunk tagged :data:`CANDIDATE_TAG` and ``candidate:<model>`` in
            ``metadata["tags"]``; the chosen one is then named in the state's
            ``routing["fanout"]["chosen"]``.

    Returns:
        ``(fan_out, worker, aggregator)`` nodes.
    """
    if aggregate not in ("quality", "first", "judge"):
        raise ValueError("aggregate must be 'quality', 'first' or 'judge'")
    if aggregate == "judge" and judge is None:
        raise ValueError("aggregate='judge' needs a judge chat model")
    policy = FanOutPolicy(k=k, aggregate="quality" if aggregate == "judge" else aggregate)

    def fan_out(state: Any) -> Command[Any]:
        messages = _messages(state, messages_key)
        decision = fan_out_decision(model.route(messages, cost_weight=cost_weight), policy)
        assert isinstance(decision.plan, FanOutPlan)
        sends = [Send(worker, {messages_key: messages, "model": m}) for m in decision.plan.models]
        return Command(
            goto=sends,
            update={decision_key: decision.to_dict(), candidates_key: Overwrite([])},
        )

    async def afan_out(state: Any) -> Command[Any]:
        return fan_out(state)

    def _candidate(name: str, message: BaseMessage) -> dict[str, Any]:
        # "arrived" orders the answers for aggregate="first" (parallel runs of one graph run
        # share this process's clock).
        return {"model": name, "message": message, "arrived": time.monotonic()}

    def candidate_model(name: str) -> Any:
        tags = [CANDIDATE_TAG, f"candidate:{name}"] if stream_candidates else [TAG_NOSTREAM]
        return model.with_config(tags=tags)

    def work(payload: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        name = str(payload["model"])
        message = candidate_model(name).invoke(list(payload[messages_key]), config, model=name)
        return {candidates_key: [_candidate(name, message)]}

    async def awork(payload: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        name = str(payload["model"])
        message = await candidate_model(name).ainvoke(
            list(payload[messages_key]), config, model=name
        )
        return {candidates_key: [_candidate(name, message)]}

    def by_quality(candidates: list[dict[str, Any]], routing: Mapping[str, Any]) -> int:
        quality = routing.get("quality") or {}
        cost = routing.get("cost") or {}

        def key(i: int) -> tuple[float, float]:
            name = candidates[i]["model"]
            q = quality.get(name, math.nan)
            c = cost.get(name, math.inf)
            return (-(q if q == q else -math.inf), c if c == c else math.inf)

        return min(range(len(candidates)), key=key)

    def first(candidates: list[dict[str, Any]]) -> int:
        return min(range(len(candidates)), key=lambda i: candidates[i].get("arrived", math.inf))

    def judge_prompt(state: Any, candidates: list[dict[str, Any]]) -> list[BaseMessage]:
        request = next(
            (
                m.text
                for m in reversed(_messages(state, messages_key))
                if isinstance(m, HumanMessage)
            ),
            "",
        )
        answers = "\n\n".join(
            f"Answer {i + 1}:\n{c['message'].text}" for i, c in enumerate(candidates)
        )
        return [HumanMessage(_JUDGE_PROMPT.format(request=request, answers=answers))]

    def parse_verdict(text: str, n: int) -> int | None:
        match = re.search(r"\d+", text)
        if match and 1 <= int(match.group()) <= n:
            return int(match.group()) - 1
        return None

    def finish(state: Any, index: int, how: str) -> dict[str, Any]:
        candidates = _candidates(state)
        chosen = candidates[index]
        routing = dict(state.get(decision_key) or {})
        routing["fanout"] = {
            "candidates": [c["model"] for c in candidates],
            "chosen": chosen["model"],
            "by": how,
        }
        return {messages_key: [chosen["message"]], decision_key: routing}

    def _candidates(state: Any) -> list[dict[str, Any]]:
        candidates = list(state.get(candidates_key) or [])
        if not candidates:
            raise ValueError(f"no candidate answers under {candidates_key!r} to aggregate")
        # Order by the decision's ranking, whatever order the parallel runs finished in.
        ranked = list((state.get(decision_key) or {}).get("ranked") or [])
        position = {m: i for i, m in enumerate(ranked)}
        return sorted(candidates, key=lambda c: position.get(c["model"], len(position)))

    def pick(state: Any, config: RunnableConfig) -> dict[str, Any]:
        candidates = _candidates(state)
        routing = state.get(decision_key) or {}
        if aggregate == "judge":
            assert judge is not None
            verdict = judge.with_config(tags=[TAG_NOSTREAM]).invoke(
                judge_prompt(state, candidates), config
            )
            index = parse_verdict(_text(verdict), len(candidates))
            if index is not None:
                return finish(state, index, "judge")
            logger.warning("the judge's verdict names no answer; keeping the best predicted")
        if aggregate == "first":
            return finish(state, first(candidates), "first")
        return finish(state, by_quality(candidates, routing), "quality")

    async def apick(state: Any, config: RunnableConfig) -> dict[str, Any]:
        candidates = _candidates(state)
        routing = state.get(decision_key) or {}
        if aggregate == "judge":
            assert judge is not None
            verdict = await judge.with_config(tags=[TAG_NOSTREAM]).ainvoke(
                judge_prompt(state, candidates), config
            )
            index = parse_verdict(_text(verdict), len(candidates))
            if index is not None:
                return finish(state, index, "judge")
            logger.warning("the judge's verdict names no answer; keeping the best predicted")
        if aggregate == "first":
            return finish(state, first(candidates), "first")
        return finish(state, by_quality(candidates, routing), "quality")

    return (
        RunnableLambda(fan_out, afunc=afan_out, name="fan_out"),
        RunnableLambda(work, afunc=awork, name=worker),
        RunnableLambda(pick, afunc=apick, name="aggregate"),
    )


def _text(message: Any) -> str:
    if isinstance(message, AIMessage | BaseMessage):
        return message.text
    return str(message)
