"""Agent middleware: route each model call of a ``langchain.agents.create_agent`` agent.

The agent keeps its tools, prompt and loop; :class:`RoutingMiddleware` replaces the model of
every call with a :class:`~langchain_llmrouter.RoutedChatModel` and routes that call on its
own, so the first (planning) step and later steps that read tool results can go to different
models, each with its own cost weight. Each decision is recorded in the agent's state under
``routing_decisions``.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
)
from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langgraph.types import Command
from typing_extensions import NotRequired

from langchain_llmrouter.chat_models import RoutedChatModel
from llmrouter_core.decision import Decision

__all__ = ["RoutingAgentState", "RoutingMiddleware", "Step"]

logger = logging.getLogger(__name__)

#: ``"plan"``: the call answers a user message; ``"tool_result"``: it reads tool results.
Step = Literal["plan", "tool_result"]


class RoutingAgentState(AgentState[Any]):
    """Agent state with one record per routed model call."""

    routing_decisions: NotRequired[Annotated[list[dict[str, Any]], operator.add]]


def _step(messages: list[AnyMessage]) -> Step:
    return "tool_result" if messages and isinstance(messages[-1], ToolMessage) else "plan"


class RoutingMiddleware(AgentMiddleware[RoutingAgentState, Any]):
    """Routes every model call of an agent to a pool model.

    Args:
        model: The routed model (router, pool, budget, routing text).
        cost_weights: lambda per step (``"plan"``, ``"tool_result"``); a missing step uses
            the model's cost weight. E.g. ``{"tool_result": 1e3}`` sends calls that only
            read tool results to cheap models.
        record: Record each call's decision in the state (``routing_decisions``).

    Example:
        >>> from langchain.agents import create_agent                     # doctest: +SKIP
        >>> routing = RoutingMiddleware(llm, cost_weights={"tool_result": 1e3})  # doctest: +SKIP
        >>> agent = create_agent(llm, tools=[search], middleware=[routing])  # doctest: +SKIP
    """

    state_schema = RoutingAgentState

    def __init__(
        self,
        model: RoutedChatModel,
        *,
        cost_weights: Mapping[str, float] | None = None,
        record: bool = True,
    ) -> None:
        super().__init__()
        unknown = set(cost_weights or {}) - {"plan", "tool_result"}
        if unknown:
            raise ValueError(f"cost_weights keys must be 'plan' or 'tool_result', not {unknown}")
        self.model = model
        self.cost_weights = dict(cost_weights or {})
        self.record = record

    def _decide(self, request: ModelRequest[Any]) -> tuple[Step, Decision]:
        step = _step(request.messages)
        messages: list[Any] = list(request.messages)
        if request.system_message is not None:
            messages.insert(0, request.system_message)
        decision = self.model.route(
            messages,
            tools=list(request.tools) or None,
            cost_weight=self.cost_weights.get(step),
        )
        return step, decision

    def _request(self, request: ModelRequest[Any], decision: Decision) -> ModelRequest[Any]:
        settings = {**request.model_settings, "decision": decision}
        return request.override(model=self.model, model_settings=settings)

    def _result(
        self, step: Step, decision: Decision, response: ModelResponse[Any]
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        if not self.record:
            return response
        answer = next((m for m in reversed(response.result) if isinstance(m, AIMessage)), None)
        meta = answer.response_metadata if answer is not None else {}
        record = {
            "step": step,
            "routed_to": decision.model,
            "model": meta.get("model_name"),
            "cost": meta.get("cost"),
            "cost_weight": decision.cost_weight,
            "ranked": list(decision.ranked),
            "reason": decision.reason,
        }
        logger.debug("agent %s step -> %s", step, record["model"])
        return ExtendedModelResponse(
            model_response=response, command=Command(update={"routing_decisions": [record]})
        )

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        """Route this call, then run it on the routed model."""
        step, decision = self._decide(request)
        return self._result(step, decision, handler(self._request(request, decision)))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        """Async :meth:`wrap_model_call`."""
        step, decision = self._decide(request)
        return self._result(step, decision, await handler(self._request(request, decision)))
