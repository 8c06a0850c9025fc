"""Typed outcomes of executing a request: attempts, results, stream chunks and errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llmrouter_core.decision import Decision
from llmrouter_core.errors import LLMRouterError

__all__ = [
    "AllModelsFailedError",
    "Attempt",
    "CostSource",
    "ExecutionError",
    "ExecutionResult",
    "InvalidRequestError",
    "NoEligibleModelError",
    "NoToolModelError",
    "Outcome",
    "Step",
    "StepOutcome",
    "StreamChunk",
    "StreamInterruptedError",
]

#: ``success``: the model answered; ``error``: the call failed (see ``error_type``);
#: ``skipped``: the model was not called (e.g. its cost no longer fit the budget).
Outcome = Literal["success", "error", "skipped"]
#: Where an :class:`ExecutionResult`'s cost comes from (see its ``cost_source``).
CostSource = Literal["provider", "pool", "max_price", "unknown"]
#: What became of one model of a plan (see :class:`Step`).
StepOutcome = Literal["accepted", "escalated", "failed", "answered"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call (or skipped call) of one model.

    Attributes:
        model: Pool model name.
        litellm_model: The LiteLLM model id that was called.
        outcome: ``"success"``, ``"error"`` or ``"skipped"``.
        error_type: Exception class name (or ``"budget"`` for a skip), ``None`` on success.
        error: Error message with keys redacted, ``None`` on success.
        latency_s: Wall time of the call in seconds.
        retry: 0 for the first call of this model, 1 for its first retry, ...
        action: What followed a failure: ``"retry"`` (same model), ``"fallback"`` (next
            model) or ``"stop"``; ``None`` on success.
        cost: USD cost of a successful call.
    """

    model: str
    litellm_model: str
    outcome: Outcome
    error_type: str | None = None
    error: str | None = None
    latency_s: float = 0.0
    retry: int = 0
    action: Literal["retry", "fallback", "stop"] | None = None
    cost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "model": self.model,
            "litellm_model": self.litellm_model,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "error": self.error,
            "latency_s": round(self.latency_s, 6),
            "retry": self.retry,
            "action": self.action,
            "cost": self.cost,
        }

    def describe(self) -> str:
        """One line for error messages and logs."""
        head = f"{self.model} ({self.litellm_model})"
        if self.retry:
            head += f" retry {self.retry}"
        if self.outcome == "success":
            return f"{head}: success in {self.latency_s:.3f}s, ${self.cost:.6g}"
        if self.outcome == "skipped":
            return f"{head}: skipped ({self.error})"
        return f"{head}: {self.error_type}: {self.error} [{self.action}]"


@dataclass(frozen=True, slots=True)
class Step:
    """One model of an executed plan (a cascade stage, or one model of a fan-out).

    Attributes:
        model: The pool model.
        outcome: ``"accepted"`` (its answer is returned), ``"escalated"`` (a cascade
            rejected its answer and went on), ``"failed"`` (the call failed, or it was not
            eligible or did not fit the budget or cap) or ``"answered"`` (it answered, but
            another answer is returned).
        answer: Its answer (``None`` if it failed).
        score: What decided: a cascade acceptor's score of the answer (``None`` when the
            acceptor was not asked: the last stage, a threshold <= 0 or > 1), a fan-out's
            predicted quality of the model.
        threshold: A cascade stage's acceptance threshold (``None`` for the last stage).
        cost: USD spent on this model (its answer and, in a cascade, the acceptor's calls
            that judged it, e.g. AutoMix's verifications).
        error: Why it failed, if it did.
        verdicts: A verifier's parsed verdicts on the answer (``True`` correct, ``False``
            incorrect, ``None`` unparseable or failed), if one was asked.

    Example:
        >>> Step("small", "escalated", "B", 0.31, 0.5, 1e-4).to_dict()["outcome"]
        'escalated'
    """

    model: str
    outcome: StepOutcome
    answer: str | None = None
    score: float | None = None
    threshold: float | None = None
    cost: float = 0.0
    error: str | None = None
    verdicts: tuple[bool | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "model": self.model,
            "outcome": self.outcome,
            "answer": self.answer,
            "score": self.score,
            "threshold": self.threshold,
            "cost": self.cost,
            "error": self.error,
            "verdicts": list(self.verdicts),
        }


@dataclass(frozen=True)
class ExecutionResult:
    """The answer to one request, with how it was obtained.

    Attributes:
        answer: The answer text (``""`` if the model only returned tool calls).
        model: The pool model that actually answered.
        litellm_model: Its LiteLLM id.
        decision: The routing decision (``router == "forced"`` when the caller named a model).
        attempts: Every call and skip, in order; the last one is the success.
        excluded: Models left out before routing, with the reason (context window,
            capabilities, per-request cap, budget).
        input_tokens: Prompt tokens reported by the provider (estimated if it reports none).
        output_tokens: Completion tokens reported by the provider (estimated if none).
        cost: USD cost of the request: the answering call, plus, when the decision carried
            a plan (a cascade or a fan-out), every other call it made.
        cost_source: ``"provider"`` (LiteLLM's cost calculation or a custom provider's
            reported cost), ``"pool"`` (pool prices x tokens), ``"max_price"`` (no price
            known and none reported: the executor's ``max_price`` x tokens) or ``"unknown"``
            (0; :attr:`known_cost` is then ``None``).
        latency_s: Wall time of the whole request (routing, retries, fallbacks) in seconds.
        response: The raw LiteLLM ``ModelResponse`` (tool calls, finish reason, ...).
        steps: When the decision carried a plan: one :class:`Step` per model of the plan
            that was tried, in order (empty otherwise). ``input_tokens``, ``output_tokens``,
            ``cost_source`` and ``response`` are then those of the answering call.

    Example:
        >>> r = ExecutionResult(answer="4", model="small", litellm_model="openai/small",
        ...                     decision=None, attempts=())
        >>> r.to_dict()["model"]
        'small'
    """

    answer: str
    model: str
    litellm_model: str
    decision: Decision | None
    attempts: tuple[Attempt, ...]
    excluded: Mapping[str, str] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cost_source: CostSource = "unknown"
    latency_s: float = 0.0
    response: Any = field(default=None, repr=False, compare=False)
    steps: tuple[Step, ...] = ()

    @property
    def known_cost(self) -> float | None:
        """:attr:`cost`, or ``None`` when no price was known and the provider reported none
        (``cost_source == "unknown"``): an unknown cost, not a free call."""
        return None if self.cost_source == "unknown" else self.cost

    @property
    def fell_back(self) -> bool:
        """Whether a model other than the routed one answered (for a plan: whether a model
        of it failed)."""
        if self.steps:
            return any(s.outcome == "failed" for s in self.steps)
        return self.decision is not None and self.model != self.decision.model

    @property
    def tool_calls(self) -> list[Any]:
        """Tool calls of the answer (empty if none)."""
        try:
            calls = self.response.choices[0].message.tool_calls
        except (AttributeError, IndexError, TypeError):
            return []
        return list(calls or [])

    def to_dict(self, *, include_decision: bool = True) -> dict[str, Any]:
        """A JSON-safe dict (without the raw response)."""
        out: dict[str, Any] = {
            "answer": self.answer,
            "model": self.model,
            "litellm_model": self.litellm_model,
            "cost": self.known_cost,
            "cost_source": self.cost_source,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_s": round(self.latency_s, 6),
            "attempts": [a.to_dict() for a in self.attempts],
            "excluded": dict(self.excluded),
        }
        if self.steps:
            out["steps"] = [s.to_dict() for s in self.steps]
        if include_decision:
            out["decision"] = None if self.decision is None else self.decision.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A piece of a streamed answer.

    Attributes:
        text: The new text.
        model: The pool model producing it.
    """

    text: str
    model: str


class ExecutionError(LLMRouterError, RuntimeError):
    """A request could not be answered; ``attempts`` lists what was tried."""

    def __init__(self, message: str, attempts: tuple[Attempt, ...] = ()) -> None:
        super().__init__(message)
        self.attempts = attempts


class InvalidRequestError(LLMRouterError, ValueError):
    """The request itself is malformed (messages, model name, options)."""


class NoEligibleModelError(ExecutionError):
    """No pool model can serve the request (context window, tools, JSON schema)."""

    def __init__(self, excluded: Mapping[str, str]) -> None:
        reasons = "; ".join(f"{m}: {why}" for m, why in excluded.items())
        super().__init__(f"no model of the pool can serve this request ({reasons})")
        self.excluded = dict(excluded)


class NoToolModelError(NoEligibleModelError):
    """A request with tools, and no pool model supports tools."""

    def __init__(self, models: Sequence[str]) -> None:
        super().__init__(dict.fromkeys(models, "does not support tools"))
        message = (
            f"no pool model supports tools (the pool has: {', '.join(models)}); give the pool "
            "tool-capable models (supports_tools: true for those that take tools) or call "
            "without tools"
        )
        self.args = (message,)


class AllModelsFailedError(ExecutionError):
    """Every eligible model failed; the message lists each attempt."""

    def __init__(self, attempts: tuple[Attempt, ...], excluded: Mapping[str, str] | None = None):
        lines = [f"  {i + 1}. {a.describe()}" for i, a in enumerate(attempts)]
        if excluded:
            lines += [f"  - {m}: not tried ({why})" for m, why in excluded.items()]
        tried = sorted({a.model for a in attempts if a.outcome != "skipped"})
        head = f"all {len(tried)} models tried failed" if tried else "no model could be called"
        super().__init__(head + ":\n" + "\n".join(lines), attempts)
        self.excluded = dict(excluded or {})


class StreamInterruptedError(ExecutionError):
    """A stream failed after text was already delivered (no transparent fallback possible).

    Attributes:
        partial: The text delivered before the failure.
    """

    def __init__(self, message: str, attempts: tuple[Attempt, ...], partial: str) -> None:
        super().__init__(message, attempts)
        self.partial = partial
