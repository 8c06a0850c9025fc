"""Execution: route a request, call the chosen model with LiteLLM, account its cost.

* :class:`Executor`: ``complete`` / ``acomplete`` / ``stream`` / ``astream`` with retries,
  fallbacks down the decision's ranking, capability and context-window checks, budgets. The
  four share one attempt loop (:mod:`~llmrouter_core.execution.attempts`, a state machine
  without I/O) run by thin drivers (:mod:`~llmrouter_core.execution.drivers`).
* :class:`Request`: everything one call needs (messages, tools, response format, fixed model,
  cap, user, cost weight, decision, LiteLLM arguments), validated.
* :class:`ExecutionResult`, :class:`Attempt`, :class:`StreamChunk`: typed outcomes.
* :class:`Budget`, :class:`BudgetManager`: spend limits that hold under concurrency.
* :class:`Conversation`: the chat context modes (current query, full, last k, retrieval).
* :class:`KeyPool`: ``API_KEYS`` parsing and per-service round robin; keys, and every other
  secret the process may send, are redacted by value from errors, reprs and log records
  (:mod:`llmrouter_core.secrets`).

Importing this package does not import LiteLLM; creating an :class:`Executor` does.

Example:
    >>> from llmrouter_core.execution import Budget
    >>> Budget(2.0).remaining
    2.0
"""

from __future__ import annotations

from llmrouter_core.execution._support import content_text
from llmrouter_core.execution.budget import (
    Budget,
    BudgetExceededError,
    BudgetLike,
    BudgetManager,
    Reservation,
)
from llmrouter_core.execution.conversation import (
    CONTEXT_MODES,
    ContextError,
    ContextMode,
    Conversation,
)
from llmrouter_core.execution.direct import DirectOpenAI
from llmrouter_core.execution.executor import Capability, Executor, RouterLike, StreamedResponse
from llmrouter_core.execution.keys import KeyPool, KeysError, parse_api_keys, redact_secrets
from llmrouter_core.execution.request import Request
from llmrouter_core.execution.results import (
    AllModelsFailedError,
    Attempt,
    ExecutionError,
    ExecutionResult,
    InvalidRequestError,
    NoEligibleModelError,
    NoToolModelError,
    StreamChunk,
    StreamInterruptedError,
)
from llmrouter_core.execution.static import PoolOrderRouter
from llmrouter_core.providers._registry import register_cost_hook

__all__ = [
    "CONTEXT_MODES",
    "AllModelsFailedError",
    "Attempt",
    "Budget",
    "BudgetExceededError",
    "BudgetLike",
    "BudgetManager",
    "Capability",
    "ContextError",
    "ContextMode",
    "Conversation",
    "DirectOpenAI",
    "ExecutionError",
    "ExecutionResult",
    "Executor",
    "InvalidRequestError",
    "KeyPool",
    "KeysError",
    "NoEligibleModelError",
    "NoToolModelError",
    "PoolOrderRouter",
    "Request",
    "Reservation",
    "RouterLike",
    "StreamChunk",
    "StreamInterruptedError",
    "StreamedResponse",
    "content_text",
    "parse_api_keys",
    "redact_secrets",
    "register_cost_hook",
]
