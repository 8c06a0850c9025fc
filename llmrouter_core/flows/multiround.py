"""The multi-round flow: a policy model thinks, consults pool models, then answers.

Two protocols, the pool, prices and descriptions always read from the executor's pool:

* ``"tools"``: the policy gets one tool, ``consult(model, question)``, whose schema lists the
  pool models (an ``enum``) with their prices and descriptions; it answers with plain text.
* ``"tags"`` (Router-R1's, for text-only policies): the policy writes ``<think>...</think>``,
  then ``<search> Model-Name: sub-query </search>``; the model's reply comes back inside
  ``<information>...</information>``; the final answer is ``<answer>...</answer>``.

A malformed policy output (unbalanced tags, no tag, an unknown model, a consultation past
``max_rounds``, bad tool arguments) is one format violation: a ``plan`` step whose ``error``
starts with ``"format:"``, logged, and explained to the policy; never an exception. Model
names are matched exactly (case and surrounding space aside), never by substring; a
sub-query keeps every colon after the model name.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llmrouter_core.errors import UnknownModelError
from llmrouter_core.execution import ExecutionResult, Executor
from llmrouter_core.flows.steps import (
    Call,
    Flow,
    FlowLedger,
    FlowResult,
    FlowStep,
    OnStep,
    arun_flow,
    run_flow,
)
from llmrouter_core.pool import ModelSpec

__all__ = [
    "Consultation",
    "MultiRoundSession",
    "PolicyTurn",
    "Protocol",
    "TagTurn",
    "amulti_round",
    "consult_tool",
    "multi_round",
    "multi_round_flow",
    "parse_tag_turn",
    "pool_listing",
    "tags_system_prompt",
]

logger = logging.getLogger(__name__)

#: ``"auto"`` (tools when the policy's pool entry supports them, else tags), ``"tools"``,
#: ``"tags"``.
Protocol = Literal["auto", "tools", "tags"]

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_OPEN = re.compile(r"<(search|answer)>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TagTurn:
    """One parsed policy turn of the tag protocol.

    Attributes:
        kind: ``"search"`` (consult ``model`` with ``query``), ``"answer"`` or
            ``"violation"`` (``error`` says what is wrong).
        text: The turn up to the end of its first complete action (what the policy "said").
    """

    kind: Literal["search", "answer", "violation"]
    text: str
    model: str | None = None
    query: str = ""
    answer: str = ""
    error: str = ""


def _price(value: float | None) -> str:
    return "unknown" if value is None else f"${value:g}"


def pool_listing(specs: Sequence[ModelSpec]) -> str:
    """One line per pool model: name, prices (USD per 1M tokens), description."""
    lines = []
    for s in specs:
        line = (
            f"- {s.name}: input {_price(s.input_price)} / output {_price(s.output_price)} "
            "per 1M tokens"
        )
        if s.description:
            line += f"; {s.description.strip()}"
        lines.append(line)
    return "\n".join(lines)


def tags_system_prompt(specs: Sequence[ModelSpec], max_rounds: int) -> str:
    """The tag protocol's instructions, with the pool read from ``specs``."""
    return (
        "Answer the user's question. You may consult the models below, at most "
        f"{max_rounds} times. Think inside <think> and </think>. To consult a model, write "
        "<search> Model-Name: your question </search> and stop; its reply comes back inside "
        "<information> and </information>. Cheaper models cost less; consult only when it "
        "helps. When you know the answer, write it inside <answer> and </answer>, with no "
        "explanation.\n\nModels (name: prices; description):\n" + pool_listing(specs)
    )


def consult_tool(specs: Sequence[ModelSpec]) -> dict[str, Any]:
    """The ``consult(model, question)`` tool schema, with the pool read from ``specs``."""
    return {
        "type": "function",
        "function": {
            "name": "consult",
            "description": (
                "Ask one model of the pool a question and get its reply. Cheaper models cost "
                "less; consult only when it helps.\nModels (name: prices; description):\n"
                + pool_listing(specs)
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "model": {"type": "string", "enum": [s.name for s in specs]},
                    "question": {"type": "string"},
                },
                "required": ["model", "question"],
            },
        },
    }


def _match_model(content: str, names: Sequence[str]) -> tuple[str | None, str]:
    """``(model, sub-query)`` of a ``<search>`` body: the longest pool name followed by a
    colon (names may hold colons), else ``(None, the text before the first colon)``."""
    body = content.strip()
    folded = body.lower()
    best: str | None = None
    for name in names:
        prefix = name.lower()
        follows = folded[len(prefix) :].lstrip()
        if folded.startswith(prefix) and follows.startswith(":") and len(name) > len(best or ""):
            best = name
    if best is not None:
        rest = body[len(best) :].lstrip()
        return best, rest[1:].strip()
    return None, body.split(":", 1)[0].strip()


def _through_action(text: str, tag: str) -> str:
    """``text`` up to the end of its first ``<tag>...</tag>`` outside ``<think>`` blocks
    (what follows, e.g. an ``<information>`` the policy made up, is dropped)."""
    thinks = [m.span() for m in _THINK.finditer(text)]
    for m in re.finditer(f"<{tag}>", text, re.IGNORECASE):
        if any(a <= m.start() < b for a, b in thinks):
            continue
        close = re.compile(f"</{tag}>", re.IGNORECASE).search(text, m.end())
        if close is not None:
            return text[: close.end()]
    return text


def parse_tag_turn(text: str, models: Sequence[str]) -> TagTurn:
    """Parse one policy turn of the tag protocol (never raises).

    Example:
        >>> t = parse_tag_turn("<think>ask</think><search> big: time? 10:30 </search>", ["big"])
        >>> t.kind, t.model, t.query
        ('search', 'big', 'time? 10:30')
        >>> parse_tag_turn("<search> huge: hi </search>", ["big"]).error
        "unknown model 'huge' (the pool has: big)"
    """
    body = _THINK.sub(" ", text)
    if re.search(r"<think>", body, re.IGNORECASE):
        return TagTurn("violation", text, error="unbalanced <think> tag")
    opening = _OPEN.search(body)
    if opening is None:
        return TagTurn("violation", text, error="no <search> or <answer> tag")
    tag = opening.group(1).lower()
    close = re.search(f"</{tag}>", body[opening.end() :], re.IGNORECASE)
    if close is None:
        return TagTurn("violation", text, error=f"unbalanced <{tag}> tag (no </{tag}>)")
    content = body[opening.end() : opening.end() + close.start()]
    said = _through_action(text, tag)
    if f"<{tag}>" in content.lower():
        return TagTurn("violation", said, error=f"nested <{tag}> tags")
    if tag == "answer":
        answer = content.strip()
        if not answer:
            return TagTurn("violation", said, error="empty <answer>")
        return TagTurn("answer", said, answer=answer)
    if ":" not in content:
        return TagTurn("violation", said, error="<search> needs 'Model-Name: question'")
    model, query = _match_model(content, models)
    if model is None:
        return TagTurn(
            "violation", said, error=f"unknown model {query!r} (the pool has: {', '.join(models)})"
        )
    if not query:
        return TagTurn("violation", said, model=model, error="empty sub-query")
    return TagTurn("search", said, model=model, query=query)


def _pool_specs(executor: Executor, router: Any, query: str, policy_model: str) -> list[ModelSpec]:
    """The pool models the policy may consult (the executor's, ranked by ``router`` if
    given, best first)."""
    names = [m for m in executor.models if m != policy_model] or list(executor.models)
    if router is not None:
        ranked = list(router.route(query).ranked)
        names = [m for m in ranked if m in names] + [m for m in names if m not in ranked]
    return [executor.pool[m] for m in names]


def _resolve_protocol(protocol: Protocol, executor: Executor, policy_model: str) -> str:
    if protocol not in ("auto", "tools", "tags"):
        raise ValueError("protocol must be 'auto', 'tools' or 'tags'")
    if protocol != "auto":
        return protocol
    return "tools" if executor.pool[policy_model].supports_tools else "tags"


@dataclass(frozen=True, slots=True)
class Consultation:
    """A consultation the policy asked for.

    Attributes:
        model: The pool model to consult.
        question: What to ask it.
        tool_call_id: The tool call's id (tool protocol).
        error: Set when the request is malformed (a format violation, already recorded):
            nothing is consulted and the error goes back to the policy.
    """

    model: str | None
    question: str
    tool_call_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyTurn:
    """What one policy turn asked for: the answer, consultations, or neither (a violation,
    explained to the policy), or to stop (the policy's call failed)."""

    answer: str | None = None
    consultations: tuple[Consultation, ...] = ()
    stop: bool = False


class MultiRoundSession:
    """The policy's conversation between turns; the flow and the LangGraph nodes drive it.

    Its :meth:`state` is JSON-safe, and :meth:`from_state` rebuilds it (a graph checkpoints
    it between nodes).
    """

    def __init__(
        self,
        query: str,
        *,
        executor: Executor,
        policy_model: str,
        router: Any = None,
        protocol: Protocol = "auto",
        max_rounds: int = 4,
        user: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        rounds: int = 0,
        turns: int = 0,
        last_reply: str = "",
        names: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(query, str) or not query.strip():
            raise ValueError("the query is empty")
        if policy_model not in executor.pool.names:
            raise UnknownModelError(
                f"unknown policy model {policy_model!r}; the pool has: "
                f"{', '.join(executor.pool.names)}"
            )
        if max_rounds < 0:
            raise ValueError("max_rounds must be >= 0")
        self.query = query
        self.executor = executor
        self.policy_model = policy_model
        self.protocol = _resolve_protocol(protocol, executor, policy_model)
        self.max_rounds = int(max_rounds)
        self.user = user
        specs = (
            [executor.pool[n] for n in names]
            if names is not None
            else _pool_specs(executor, router, query, policy_model)
        )
        self.names = [s.name for s in specs]
        self.tools = [consult_tool(specs)] if self.protocol == "tools" else None
        if messages is None:
            system = (
                tags_system_prompt(specs, max_rounds)
                if self.protocol == "tags"
                else "Answer the user's question. You may call the consult tool at most "
                f"{max_rounds} times; then reply with the answer only."
            )
            messages = [{"role": "system", "content": system}, {"role": "user", "content": query}]
        self.messages = messages
        self.rounds = rounds
        self.turns = turns
        self.last_reply = last_reply

    # Each policy turn consults, answers or violates the format; violations count as turns,
    # so a policy that never complies still ends.
    @property
    def max_turns(self) -> int:
        """Most policy turns: every round, plus room for an answer and two violations."""
        return self.max_rounds + 3

    def state(self) -> dict[str, Any]:
        """The JSON-safe state (see :meth:`from_state`)."""
        return {
            "query": self.query,
            "policy_model": self.policy_model,
            "protocol": self.protocol,
            "max_rounds": self.max_rounds,
            "user": self.user,
            "messages": self.messages,
            "rounds": self.rounds,
            "turns": self.turns,
            "last_reply": self.last_reply,
            "names": self.names,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], executor: Executor) -> MultiRoundSession:
        """Rebuild a session from :meth:`state`."""
        return cls(executor=executor, **{**state, "messages": list(state["messages"])})

    def policy_call(self, ledger: FlowLedger) -> Call:
        """The next policy turn's call."""
        kwargs: dict[str, Any] = {"user": self.user}
        if self.tools is not None and self.rounds < self.max_rounds:
            kwargs["tools"] = self.tools
        return Call(list(self.messages), self.policy_model, max_cost=ledger.cap(), kwargs=kwargs)

    def on_policy(self, outcome: ExecutionResult | Exception, ledger: FlowLedger) -> PolicyTurn:
        """Record the policy's turn (a ``plan`` step) and read what it asks for."""
        self.turns += 1
        if not isinstance(outcome, ExecutionResult):
            ledger.record_call(
                "plan", self.query, outcome, model=self.policy_model, why="policy turn"
            )
            return PolicyTurn(stop=True)
        if self.protocol == "tools":
            return self._on_tools(outcome, ledger)
        turn = parse_tag_turn(outcome.answer, self.names)
        if turn.kind == "search" and self.rounds >= self.max_rounds:
            turn = TagTurn(
                "violation",
                turn.text,
                error=f"more than max_rounds={self.max_rounds} consultations",
            )
        if turn.kind == "violation":
            ledger.record_call(
                "plan", self.query, outcome, why="policy turn", error=f"format: {turn.error}"
            )
            hint = (
                "Now write the answer inside <answer> and </answer>."
                if self.rounds >= self.max_rounds
                else "Write <search> Model-Name: question </search> or <answer> ... </answer>."
            )
            self.messages += [
                {"role": "assistant", "content": outcome.answer},
                {
                    "role": "user",
                    "content": f"<information>Format error: {turn.error}. {hint}</information>",
                },
            ]
            return PolicyTurn()
        self.messages.append({"role": "assistant", "content": turn.text})
        if turn.kind == "answer":
            ledger.record_call("plan", self.query, outcome, why="policy answered")
            return PolicyTurn(answer=turn.answer)
        ledger.record_call("plan", self.query, outcome, why=f"policy consults {turn.model}")
        return PolicyTurn(consultations=(Consultation(turn.model, turn.query),))

    def _on_tools(self, outcome: ExecutionResult, ledger: FlowLedger) -> PolicyTurn:
        calls = outcome.tool_calls
        if not calls:
            answer = outcome.answer.strip()
            if not answer:
                ledger.record_call(
                    "plan", self.query, outcome, why="policy turn", error="format: empty answer"
                )
                self.messages += [
                    {"role": "assistant", "content": ""},
                    {"role": "user", "content": "Reply with the answer."},
                ]
                return PolicyTurn()
            ledger.record_call("plan", self.query, outcome, why="policy answered")
            self.messages.append({"role": "assistant", "content": answer})
            return PolicyTurn(answer=answer)
        ledger.record_call("plan", self.query, outcome, why=f"policy called {len(calls)} tool(s)")
        self.messages.append(_assistant_tool_message(outcome.answer, calls))
        out = []
        rounds = self.rounds
        for tc in calls:
            c = _read_tool_call(tc, self.names, rounds, self.max_rounds)
            if c.error is not None:
                raw = str(_get(_get(tc, "function"), "arguments") or "")
                _violation(ledger, self.policy_model, raw, c.error)
            else:
                rounds += 1
            out.append(c)
        return PolicyTurn(consultations=tuple(out))

    def consult_call(self, c: Consultation, ledger: FlowLedger, why: str = "") -> Call:
        """Record the ``route`` step of consultation ``c`` and return its call."""
        assert c.model is not None
        why = why or "chosen by the policy" + (" (tool call)" if c.tool_call_id else "")
        ledger.add(FlowStep("route", c.model, c.question, c.model, why=why))
        return Call(c.question, c.model, max_cost=ledger.cap(), kwargs={"user": self.user})

    def on_consult(
        self, c: Consultation, outcome: ExecutionResult | Exception, ledger: FlowLedger
    ) -> None:
        """Record consultation ``c``'s ``call`` step and give its reply to the policy."""
        assert c.model is not None
        step = ledger.record_call(
            "call", c.question, outcome, model=c.model, why=f"consulted {c.model}"
        )
        self.rounds += 1
        if step.error is None:
            self.last_reply = step.reply
            self.reply(c, step.reply)
        else:
            self.reply(c, f"error: {step.error}")

    def reply(self, c: Consultation, text: str) -> None:
        """Give the policy ``text`` as the outcome of consultation ``c``."""
        if self.protocol == "tools":
            self.messages.append(
                {"role": "tool", "tool_call_id": c.tool_call_id or "", "content": text}
            )
        else:
            self.messages.append({"role": "user", "content": f"<information>{text}</information>"})

    def finish(self, ledger: FlowLedger, answer: str | None) -> FlowResult:
        """The result: the policy's answer, else the last consulted reply (and why)."""
        if answer is not None:
            return ledger.result(answer, self.messages)
        if ledger.stopped is None:
            ledger.stop(f"max_rounds: no answer after {self.rounds} consultation(s)")
        return ledger.result(self.last_reply, self.messages)


def _violation(ledger: FlowLedger, policy: str, prompt: str, error: str) -> None:
    ledger.add(FlowStep("plan", policy, prompt, "", why="policy turn", error=f"format: {error}"))


def multi_round_flow(session: MultiRoundSession, ledger: FlowLedger) -> Flow:
    """The multi-round flow as a generator of calls (see :func:`run_flow`)."""
    while session.turns < session.max_turns:
        (outcome,) = yield [session.policy_call(ledger)]
        turn = session.on_policy(outcome, ledger)
        if turn.answer is not None or turn.stop:
            return session.finish(ledger, turn.answer)
        for c in turn.consultations:
            if c.error is not None:
                session.reply(c, f"format: {c.error}")
                continue
            (result,) = yield [session.consult_call(c, ledger)]
            session.on_consult(c, result, ledger)
        if ledger.stopped:
            break
    return session.finish(ledger, None)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _assistant_tool_message(text: str, calls: Sequence[Any]) -> dict[str, Any]:
    out = []
    for tc in calls:
        fn = _get(tc, "function")
        out.append(
            {
                "id": _get(tc, "id") or "",
                "type": "function",
                "function": {"name": _get(fn, "name"), "arguments": _get(fn, "arguments")},
            }
        )
    return {"role": "assistant", "content": text or None, "tool_calls": out}


def _read_tool_call(tc: Any, names: Sequence[str], rounds: int, max_rounds: int) -> Consultation:
    """The consultation a ``consult`` tool call asks for (``error`` set when malformed)."""
    fn = _get(tc, "function")
    call_id = str(_get(tc, "id") or "")
    raw = str(_get(fn, "arguments") or "")
    if _get(fn, "name") != "consult":
        return Consultation(None, "", call_id, f"unknown tool {_get(fn, 'name')!r}")
    try:
        args = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        return Consultation(None, "", call_id, f"tool arguments are not JSON ({exc.msg})")
    if not isinstance(args, dict):
        return Consultation(None, "", call_id, "tool arguments must be an object")
    if rounds >= max_rounds:
        return Consultation(None, "", call_id, f"more than max_rounds={max_rounds} consultations")
    model = {n.lower(): n for n in names}.get(str(args.get("model", "")).strip().lower())
    question = str(args.get("question", "")).strip()
    if model is None:
        error = f"unknown model {args.get('model')!r} (the pool has: {', '.join(names)})"
        return Consultation(None, question, call_id, error)
    if not question:
        return Consultation(model, "", call_id, "empty question")
    return Consultation(model, question, call_id)


def _start(
    query: str,
    executor: Executor,
    policy_model: str,
    router: Any,
    protocol: Protocol,
    max_rounds: int,
    budget: float | None,
    max_cost: float | None,
    user: str | None,
    on_step: OnStep | None,
) -> Flow:
    session = MultiRoundSession(
        query,
        executor=executor,
        policy_model=policy_model,
        router=router,
        protocol=protocol,
        max_rounds=max_rounds,
        user=user,
    )
    return multi_round_flow(session, FlowLedger(budget, max_cost, on_step))


def multi_round(
    query: str,
    *,
    executor: Executor,
    policy_model: str,
    router: Any = None,
    protocol: Protocol = "auto",
    max_rounds: int = 4,
    budget: float | None = None,
    max_cost: float | None = None,
    user: str | None = None,
    on_step: OnStep | None = None,
) -> FlowResult:
    """Let ``policy_model`` consult the pool (at most ``max_rounds`` times), then answer.

    Args:
        query: The question.
        executor: Calls the policy and the pool models (any pool model may be the policy).
        policy_model: The pool model that thinks, consults and answers.
        router: Pre-ranks the pool models the policy sees (best first).
        protocol: ``"auto"``, ``"tools"`` or ``"tags"`` (see the module).
        max_rounds: Most consultations.
        budget: USD the whole flow may spend (policy turns included).
        max_cost: USD one call may cost.
        user: Passed to the executor (per-user budgets).
        on_step: Called with each :class:`FlowStep` as it finishes.

    Returns:
        The :class:`FlowResult`: the policy's answer (only the answer, never the trace),
        every step, and the policy conversation in :attr:`FlowResult.messages`. A flow that
        ends without an answer (budget, ``max_rounds``) answers with the last consulted
        model's reply and says why in ``stopped``.
    """
    flow = _start(
        query, executor, policy_model, router, protocol, max_rounds, budget, max_cost, user, on_step
    )
    return run_flow(flow, executor)


async def amulti_round(
    query: str,
    *,
    executor: Executor,
    policy_model: str,
    router: Any = None,
    protocol: Protocol = "auto",
    max_rounds: int = 4,
    budget: float | None = None,
    max_cost: float | None = None,
    user: str | None = None,
    on_step: OnStep | None = None,
) -> FlowResult:
    """Async :func:`multi_round`."""
    flow = _start(
        query, executor, policy_model, router, protocol, max_rounds, budget, max_cost, user, on_step
    )
    return await arun_flow(flow, executor)
