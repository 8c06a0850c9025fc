"""LangChain and LangGraph integration of llmrouter-core.

* :class:`RoutedChatModel`: a chat model that routes every call to a model of a pool.
* :func:`create_router_node`, :func:`create_fanout_nodes`: LangGraph nodes that route a
  graph's messages to per-model nodes, or fan out to several routed models and keep the best
  answer.
* :func:`create_agentic_graph`, :func:`create_multiround_graph`: the core's routing flows
  (decompose -> route -> aggregate; a policy consulting the pool) as compiled graphs, with
  ``Send`` fan-out, checkpointing and human approval of expensive calls.
* :class:`RoutingMiddleware`: routes each model call of a ``langchain.agents.create_agent``
  agent.

Only :class:`RoutedChatModel` is imported eagerly; the LangGraph and agent parts load
``langgraph`` / ``langchain`` on first use.

Example:
    >>> from langchain_llmrouter import RoutedChatModel          # doctest: +SKIP
    >>> llm = RoutedChatModel(router="routers/knn")             # doctest: +SKIP
    >>> llm.invoke("2 + 2 = ?").response_metadata["model_name"]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.chat_models import RoutedChatModel

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "AgenticState": "langchain_llmrouter.flows",
    "FanOutState": "langchain_llmrouter.graph",
    "MultiRoundState": "langchain_llmrouter.flows",
    "RouterState": "langchain_llmrouter.graph",
    "RoutingMiddleware": "langchain_llmrouter.middleware",
    "create_agentic_graph": "langchain_llmrouter.flows",
    "create_fanout_nodes": "langchain_llmrouter.graph",
    "create_model_node": "langchain_llmrouter.graph",
    "create_multiround_graph": "langchain_llmrouter.flows",
    "create_router_node": "langchain_llmrouter.graph",
    "flow_result": "langchain_llmrouter.flows",
}

__all__ = sorted([*_LAZY, "RoutedChatModel", "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_llmrouter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from langchain_llmrouter.flows import (
        AgenticState,
        MultiRoundState,
        create_agentic_graph,
        create_multiround_graph,
        flow_result,
    )
    from langchain_llmrouter.graph import (
        FanOutState,
        RouterState,
        create_fanout_nodes,
        create_model_node,
        create_router_node,
    )
    from langchain_llmrouter.middleware import RoutingMiddleware
