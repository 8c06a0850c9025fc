"""One chat session of the browser chat, without any UI: routing, streaming, flows, feedback.

A :class:`ChatSession` answers one message at a time through an
:class:`~llmrouter_core.execution.Executor` (one per router the chat offers). :meth:`turn`
yields :class:`TurnUpdate` items as the answer streams in (real provider chunks, the real
messages array of the selected context) and ends with a typed :class:`TurnRecord`: the chosen
model and the decision are data of the turn, never part of the answer text, so they never
reach the history a later turn sends. Errors (a model failing, the budget reached, no model
able to serve, a failing context) end the turn with a notice; the session goes on.

Example:
    >>> from llmrouter_core.execution import Conversation                 # doctest: +SKIP
    >>> session = ChatSession({"knn": executor}, Conversation())         # doctest: +SKIP
    >>> *_, last = session.turn("What is 2+2?")                           # doctest: +SKIP
    >>> last.record.model, last.record.cost                              # doctest: +SKIP
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from llmrouter_core.decision import Decision
from llmrouter_core.execution import (
    AllModelsFailedError,
    BudgetExceededError,
    ContextError,
    Conversation,
    ExecutionResult,
    Executor,
    NoEligibleModelError,
    StreamChunk,
    StreamInterruptedError,
)
from llmrouter_core.execution._support import routing_text

__all__ = [
    "FLOWS",
    "ChatSession",
    "Flow",
    "Knob",
    "TurnRecord",
    "TurnUpdate",
    "describe_error",
    "send_feedback",
]

Flow = Literal["single", "agentic", "multi_round"]
FLOWS: tuple[Flow, ...] = ("single", "agentic", "multi_round")
#: ``default``: the router's own cost weight; ``cost_weight``: the slider's lambda;
#: ``budget``: the session may spend at most this many USD in total.
Knob = Literal["default", "cost_weight", "budget"]


@dataclass(frozen=True)
class TurnRecord:
    """A finished turn (answered or not).

    Attributes:
        index: 0-based turn number in the session.
        query: The user's message.
        answer: The answer ("" when the turn failed).
        model: The model that answered (a flow: the models it called, comma-separated).
        router: The name of the router the turn used.
        decision: The routing decision of a single-call turn (``None`` for flows).
        cost: USD spent by the turn (every call of a flow counted).
        latency_s: Seconds from sending to the last token.
        first_token_s: Seconds from sending to the first text (``None`` if none came).
        routing_text: What the router read: the selected context and the message when the
            executor routes on ``Conversation.routing_text`` (as ``llmrouter chat`` builds it),
            else what its ``routing_text`` setting takes from them.
        context: Indices of the earlier turns sent with the message.
        mode: The context mode.
        knob: Which knob was in force and its value, e.g. ``"cost weight 0.5"``.
        flow: ``"single"``, ``"agentic"`` or ``"multi_round"``.
        steps: The flow's steps (empty for a single call).
        fell_back: A model failed and a later one of the ranking answered.
        notice: What the user should know (an error, a fallback), else ``None``.
        feedback: ``+1`` / ``-1`` once rated.
    """

    index: int
    query: str
    answer: str
    model: str | None
    router: str
    decision: Decision | None
    cost: float
    latency_s: float
    first_token_s: float | None
    routing_text: str
    context: tuple[int, ...]
    mode: str
    knob: str
    flow: Flow
    steps: tuple[Any, ...] = ()
    fell_back: bool = False
    notice: str | None = None
    feedback: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the turn has an answer."""
        return self.model is not None


@dataclass(frozen=True)
class TurnUpdate:
    """The state of a turn while it runs: the text so far, the flow's steps so far, and, on
    the last update, the finished :class:`TurnRecord`."""

    text: str
    steps: tuple[Any, ...] = ()
    decision: Decision | None = None
    record: TurnRecord | None = None


def describe_error(exc: BaseException) -> str:
    """One line a person can act on, for every way a turn can fail."""
    if isinstance(exc, BudgetExceededError):
        return f"Budget reached: {exc}"
    if isinstance(exc, NoEligibleModelError):
        return f"No model can serve this message: {exc}"
    if isinstance(exc, StreamInterruptedError):
        return f"The answer broke off: {exc}"
    if isinstance(exc, AllModelsFailedError):
        return f"Every model failed: {exc}"
    if isinstance(exc, ContextError):
        return f"Context: {exc}"
    return f"Error: {type(exc).__name__}: {exc}"


@dataclass
class ChatSession:
    """The state of one chat: the conversation, the routers, the knob, the spend.

    Args:
        executors: Router name -> executor (each with its router and pool).
        conversation: The turns and the context mode.
        user: The user id (passed to routing and budgets; personalized routers use it).
        max_cost: Per-message cap in USD.
        call_kwargs: Further LiteLLM arguments of every call (``max_tokens``, ...).
    """

    executors: Mapping[str, Executor]
    conversation: Conversation = field(default_factory=Conversation)
    user: str | None = None
    max_cost: float | None = None
    call_kwargs: Mapping[str, Any] = field(default_factory=dict)
    router: str = ""
    knob: Knob = "default"
    cost_weight: float = 0.0
    budget: float | None = None
    flow: Flow = "single"
    spent: float = 0.0
    turns: list[TurnRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.executors:
            raise ValueError("a chat needs at least one router")
        if not self.router:
            self.router = next(iter(self.executors))

    # -- settings --------------------------------------------------------------------------

    def configure(
        self,
        *,
        router: str | None = None,
        knob: Knob | None = None,
        cost_weight: float | None = None,
        budget: float | None = None,
        mode: str | None = None,
        top_k: int | None = None,
        user: str | None = None,
        flow: Flow | None = None,
    ) -> None:
        """Change settings for the next turns (``None`` keeps a setting); bad values raise
        ``ValueError`` and change nothing."""
        if router is not None and router not in self.executors:
            raise ValueError(
                f"unknown router {router!r}; choose one of: {', '.join(self.executors)}"
            )
        if knob is not None and knob not in ("default", "cost_weight", "budget"):
            raise ValueError(f"unknown knob {knob!r}")
        if flow is not None and flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r}; choose one of: {', '.join(FLOWS)}")
        for name, value in (("cost weight", cost_weight), ("budget", budget)):
            if value is not None and not value >= 0:
                raise ValueError(f"the {name} must be >= 0")
        if mode is not None or top_k is not None:
            self.conversation.set_mode(mode or self.conversation.mode, top_k=top_k)
        if router is not None:
            self.router = router
        if knob is not None:
            self.knob = knob
        if cost_weight is not None:
            self.cost_weight = float(cost_weight)
        if budget is not None:
            self.budget = float(budget)
        if user is not None:
            self.user = user.strip() or None
        if flow is not None:
            self.flow = flow

    @property
    def executor(self) -> Executor:
        """The executor of the selected router."""
        return self.executors[self.router]

    @property
    def remaining(self) -> float | None:
        """USD the session may still spend under the budget knob (``None``: no budget)."""
        if self.knob != "budget" or self.budget is None:
            return None
        return max(0.0, self.budget - self.spent)

    def _knob_label(self) -> str:
        if self.knob == "cost_weight":
            return f"cost weight {self.cost_weight:g}"
        if self.knob == "budget" and self.budget is not None:
            return f"budget ${self.budget:g} (${self.remaining:.6g} left)"
        return "the router's default cost weight"

    def _request_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.call_kwargs)
        cap = self.max_cost
        left = self.remaining
        if left is not None:
            cap = left if cap is None else min(cap, left)
        out["max_cost"] = cap
        out["user"] = self.user
        if self.knob == "cost_weight":
            out["cost_weight"] = self.cost_weight
        return out

    # -- turns -----------------------------------------------------------------------------

    def turn(self, query: str) -> Iterator[TurnUpdate]:
        """Answer ``query``: :class:`TurnUpdate` items as the answer streams, the last one
        with the :class:`TurnRecord` (also appended to :attr:`turns`)."""
        query = query.strip()
        if not query:
            raise ValueError("the message is empty")
        with self._lock:
            yield from self._turn(query)

    def _turn(self, query: str) -> Iterator[TurnUpdate]:
        started = time.perf_counter()
        base = TurnRecord(
            index=len(self.turns),
            query=query,
            answer="",
            model=None,
            router=self.router,
            decision=None,
            cost=0.0,
            latency_s=0.0,
            first_token_s=None,
            routing_text="",
            context=(),
            mode=self.conversation.mode,
            knob=self._knob_label(),
            flow=self.flow,
        )
        try:
            context = tuple(self.conversation.context(query))
            messages = self.conversation.messages_for(query)
            base = replace(
                base,
                context=context,
                routing_text=routing_text(messages, self.executor.routing_text),
            )
            if self.flow == "single":
                final = yield from self._single(messages, base, started)
            else:
                final = yield from self._flow(query, base, started)
        except Exception as exc:  # every failure is a notice; the chat goes on
            final = replace(
                base,
                latency_s=time.perf_counter() - started,
                notice=describe_error(exc),
                cost=_spent_by(exc),
            )
        self.spent += final.cost
        if final.ok:
            self.conversation.add(query, final.answer)
        self.turns.append(final)
        yield TurnUpdate(final.answer, final.steps, final.decision, final)

    def _single(
        self, messages: list[Any], base: TurnRecord, started: float
    ) -> Generator[TurnUpdate, None, TurnRecord]:
        ex = self.executor
        kwargs = self._request_kwargs()
        decision = ex.route(messages, **kwargs)
        yield TurnUpdate("", decision=decision)
        text = ""
        first: float | None = None
        result: ExecutionResult | None = None
        kwargs.pop("cost_weight", None)  # the decision already carries it
        for item in ex.stream(messages, decision=decision, **kwargs):
            if isinstance(item, StreamChunk):
                if item.text and first is None:
                    first = time.perf_counter() - started
                text += item.text
                yield TurnUpdate(text, decision=decision)
            else:
                result = item
        assert result is not None
        notice = None
        if result.fell_back:
            failed = [a.describe() for a in result.attempts if a.outcome == "error"]
            notice = f"{decision.model} failed; {result.model} answered. " + " · ".join(failed)
        return replace(
            base,
            answer=result.answer,
            model=result.model,
            decision=decision,
            cost=result.cost,
            latency_s=time.perf_counter() - started,
            first_token_s=first,
            fell_back=result.fell_back,
            notice=notice,
        )

    def _flow(
        self, query: str, base: TurnRecord, started: float
    ) -> Generator[TurnUpdate, None, TurnRecord]:
        from llmrouter_core.flows import agentic, multi_round

        ex = self.executor
        kwargs = self._request_kwargs()
        steps: queue.Queue[Any] = queue.Queue()
        done: dict[str, Any] = {}
        common = {
            "executor": ex,
            "router": ex.router,
            "budget": self.remaining,
            "max_cost": self.max_cost,
            "user": self.user,
            "on_step": steps.put,
        }

        def run() -> None:
            try:
                if self.flow == "agentic":
                    done["result"] = agentic(query, cost_weight=kwargs.get("cost_weight"), **common)
                else:
                    policy = ex.route(query, **kwargs).model
                    done["result"] = multi_round(query, policy_model=policy, **common)
            except BaseException as exc:
                done["error"] = exc
            finally:
                steps.put(None)

        worker = threading.Thread(target=run, name="llmrouter-chat-flow", daemon=True)
        worker.start()
        seen: list[Any] = []
        while (step := steps.get()) is not None:
            seen.append(step)
            yield TurnUpdate("", tuple(seen))
        worker.join()
        if "error" in done:
            raise done["error"]
        result = done["result"]
        notice = f"The flow stopped early: {result.stopped}" if result.stopped else None
        failed = [f"{s.model}: {s.error}" for s in result.steps if s.error]
        if failed and notice is None:
            notice = "Some steps failed: " + " · ".join(failed)
        return replace(
            base,
            answer=result.answer,
            # A flow that ends without an answer is a failed turn (not history), with its notice.
            model=(", ".join(dict.fromkeys(result.models)) or None) if result.answer else None,
            cost=float(result.cost),
            latency_s=time.perf_counter() - started,
            steps=tuple(result.steps),
            notice=notice,
        )

    # -- feedback --------------------------------------------------------------------------

    def feedback(self, index: int, liked: bool) -> str:
        """Rate turn ``index``: the router's ``feedback`` is called when it has one.

        Returns:
            What happened, as one line for the user.
        """
        if not 0 <= index < len(self.turns):
            raise ValueError(f"no turn {index}")
        record = self.turns[index]
        if record.model is None or record.decision is None:
            return "Only a routed answer can be rated."
        router = self.executors[record.router].router
        self.turns[index] = replace(record, feedback=1 if liked else -1)
        if not send_feedback(router, self.user, record.query, record.model, liked):
            return f"Noted; the router {record.router} does not learn from feedback."
        return f"Feedback sent to {record.router}: {record.model} {'👍' if liked else '👎'}."


def send_feedback(router: Any, user: str | None, query: str, model: str, liked: bool) -> bool:
    """Give a thumbs up (score 1) or down (score 0) to ``router``; ``False`` when it does not
    learn from feedback.

    Two kinds of routers learn: personalized routers (``supports_feedback``:
    ``feedback(user, query, model, rating=...)``; a user id is required), and a
    :class:`~llmrouter_core.Router` whose scorer learns online (``feedback(query, model,
    score)``, e.g. ``bandit``).

    Raises:
        ValueError: A personalized router and no user id.
    """
    method = getattr(router, "feedback", None)
    if method is None:
        return False
    score = 1.0 if liked else 0.0
    if getattr(router, "supports_feedback", False):
        if not user:
            raise ValueError(f"give a user id: {type(router).__name__} learns per user")
        method(user, query, model, rating=score)
        return True
    tags = getattr(getattr(router, "scorer_", None), "tags", None)
    if not getattr(tags, "online", False):
        return False
    method(query, model, score)
    return True


def _spent_by(exc: BaseException) -> float:
    """USD a failed request still spent (calls that succeeded before a failure)."""
    attempts = getattr(exc, "attempts", ()) or ()
    return float(sum(getattr(a, "cost", 0.0) or 0.0 for a in attempts))
