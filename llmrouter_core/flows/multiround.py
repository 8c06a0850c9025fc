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


def _consult(ledger: FlowLedger, model: str, question: str, user: str | None, why: str) -> Any:
    """Sub-flow: one consultation (route + call steps); returns the reply or the error."""
    ledger.add(FlowStep("route", model, question, model, why=why))
    (outcome,) = yield [Call(question, model, max_cost=ledger.cap(), kwargs={"user": user})]
    step = ledger.record_call("call", question, outcome, model=model, why=f"consulted {model}")
    return step.reply if step.error is None else f"error: {step.error}"


def _violation(ledger: FlowLedger, policy: str, prompt: str, reply: str, error: str) -> None:
    ledger.add(FlowStep("plan", policy, prompt, reply, why="policy turn", error=f"format: {error}"))


def multi_round_flow(
    query: str,
    *,
    executor: Executor,
    policy_model: str,
    ledger: FlowLedger,
    router: Any = None,
    protocol: Protocol = "auto",
    max_rounds: int = 4,
    user: str | None = None,
) -> Flow:
    """The multi-round flow as a generator of calls (see :func:`run_flow`)."""
    if policy_model not in executor.pool:
        from llmrouter_core.errors import UnknownModelError

        raise UnknownModelError(
            f"unknown policy model {policy_model!r}; the pool has: {', '.join(executor.pool.names)}"
        )
    if max_rounds < 0:
        raise ValueError("max_rounds must be >= 0")
    proto = _resolve_protocol(protocol, executor, policy_model)
    specs = _pool_specs(executor, router, query, policy_model)
    names = [s.name for s in specs]
    tools = [consult_tool(specs)] if proto == "tools" else None
    system = (
        tags_system_prompt(specs, max_rounds)
        if proto == "tags"
        else "Answer the user's question. You may call the consult tool at most "
        f"{max_rounds} times; then reply with the answer only."
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": query},
    ]
    rounds = 0
    last_reply = ""
    # Each policy turn either consults, answers, or violates the format; violations count
    # as turns, so a policy that never complies still ends.
    for _turn in range(max_rounds + 3):
        kwargs: dict[str, Any] = {"user": user}
        if tools is not None and rounds < max_rounds:
            kwargs["tools"] = tools
        (outcome,) = yield [
            Call(list(messages), policy_model, max_cost=ledger.cap(), kwargs=kwargs)
        ]
        if not isinstance(outcome, ExecutionResult):
            ledger.record_call("plan", query, outcome, model=policy_model, why="policy turn")
            break
        if proto == "tools":
            calls = outcome.tool_calls
            if not calls:
                answer = outcome.answer.strip()
                if not answer:
                    ledger.record_call(
                        "plan", query, outcome, why="policy turn", error="format: empty answer"
                    )
                    messages.append({"role": "assistant", "content": ""})
                    messages.append({"role": "user", "content": "Reply with the answer."})
                    continue
                ledger.record_call("plan", query, outcome, why="policy answered")
                messages.append({"role": "assistant", "content": answer})
                return ledger.result(answer, messages)
            ledger.record_call("plan", query, outcome, why=f"policy called {len(calls)} tool(s)")
            messages.append(_assistant_tool_message(outcome.answer, calls))
            for tc in calls:
                reply = yield from _tool_call(
                    tc, names, ledger, policy_model, user, rounds, max_rounds
                )
                if not reply.startswith("format:") and not reply.startswith("error:"):
                    last_reply = reply
                rounds += 0 if reply.startswith("format:") else 1
                messages.append(
                    {"role": "tool", "tool_call_id": _get(tc, "id") or "", "content": reply}
                )
            continue
        turn = parse_tag_turn(outcome.answer, names)
        if turn.kind == "search" and rounds >= max_rounds:
            turn = TagTurn(
                "violation", turn.text, error=f"more than max_rounds={max_rounds} consultations"
            )
        if turn.kind == "violation":
            ledger.record_call(
                "plan", query, outcome, why="policy turn", error=f"format: {turn.error}"
            )
            messages.append({"role": "assistant", "content": outcome.answer})
            hint = (
                "Now write the answer inside <answer> and </answer>."
                if rounds >= max_rounds
                else "Write <search> Model-Name: question </search> or <answer> ... </answer>."
            )
            messages.append(
                {
                    "role": "user",
                    "content": f"<information>Format error: {turn.error}. {hint}</information>",
                }
            )
            continue
        if turn.kind == "answer":
            ledger.record_call("plan", query, outcome, why="policy answered")
            messages.append({"role": "assistant", "content": turn.text})
            return ledger.result(turn.answer, messages)
        ledger.record_call("plan", query, outcome, why=f"policy consults {turn.model}")
        messages.append({"role": "assistant", "content": turn.text})
        assert turn.model is not None
        reply = yield from _consult(ledger, turn.model, turn.query, user, "chosen by the policy")
        rounds += 1
        if not reply.startswith("error:"):
            last_reply = reply
        messages.append({"role": "user", "content": f"<information>{reply}</information>"})
        if ledger.stopped:
            break
    if ledger.stopped is None:
        ledger.stop(f"max_rounds: no answer after {max_rounds} consultation(s)")
    return ledger.result(last_reply, messages)


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


def _tool_call(
    tc: Any,
    names: Sequence[str],
    ledger: FlowLedger,
    policy: str,
    user: str | None,
    rounds: int,
    max_rounds: int,
) -> Any:
    """Sub-flow: carry out one ``consult`` tool call; returns the tool message's content."""
    fn = _get(tc, "function")
    raw = str(_get(fn, "arguments") or "")
    error = ""
    args: Any = None
    if _get(fn, "name") != "consult":
        error = f"unknown tool {_get(fn, 'name')!r}"
    else:
        try:
            args = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            error = f"tool arguments are not JSON ({exc.msg})"
    if not error:
        if not isinstance(args, dict):
            error = "tool arguments must be an object"
        elif rounds >= max_rounds:
            error = f"more than max_rounds={max_rounds} consultations"
        else:
            model = {n.lower(): n for n in names}.get(str(args.get("model", "")).strip().lower())
            question = str(args.get("question", "")).strip()
            if model is None:
                error = f"unknown model {args.get('model')!r} (the pool has: {', '.join(names)})"
            elif not question:
                error = "empty question"
    if error:
        _violation(ledger, policy, raw, "", error)
        return f"format: {error}"
    assert model is not None
    reply = yield from _consult(ledger, model, question, user, "chosen by the policy (tool call)")
    return str(reply)


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
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty")
    return multi_round_flow(
        query,
        executor=executor,
        policy_model=policy_model,
        ledger=FlowLedger(budget, max_cost, on_step),
        router=router,
        protocol=protocol,
        max_rounds=max_rounds,
        user=user,
    )


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
