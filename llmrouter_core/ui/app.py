"""The browser chat (``llmrouter chat --ui``): a Gradio app over :class:`ChatSession`.

Each browser tab gets its own :class:`~llmrouter_core.ui.session.ChatSession` (conversation,
knob, spend); the routers and their executors are shared. The chat shows only the messages;
the chosen model, the predictions of every pool model, the costs and the reasons are in the
side panel (:func:`panel_html`), the steps of a flow in an expandable panel (:func:`steps_html`)
and errors in a notice above the message box (:func:`notice_html`).

Needs the ``ui`` extra (``pip install 'llmrouter-core[ui]'``).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmrouter_core.decision import Decision
from llmrouter_core.errors import MissingExtraError
from llmrouter_core.execution import CONTEXT_MODES, Conversation, Executor
from llmrouter_core.execution.conversation import CONTEXT_MODE_HELP
from llmrouter_core.ui.session import FLOWS, ChatSession, TurnRecord

__all__ = ["build_app", "launch_ui", "notice_html", "panel_html", "steps_html", "warm_up"]

_CSS = """
#panel .bars { width: 100%; border-collapse: collapse; font-size: 0.85em; }
#panel .bars td { padding: 2px 4px; vertical-align: middle; }
#panel .bars td.barcell { width: 28%; }
#panel .bar { height: 10px; border-radius: 2px; }
#panel .q { background: #3b82f6; }
#panel .c { background: #f59e0b; }
#panel tr.chosen td:first-child { font-weight: bold; }
#notice .notice { padding: 6px 10px; border-radius: 6px; background: #fee2e2; color: #7f1d1d; }
#notice .info { padding: 6px 10px; border-radius: 6px; background: #e0f2fe; color: #0c4a6e; }
#steps table { width: 100%; font-size: 0.85em; }
#steps tr.io td { color: #555; border-top: none; }
"""

_FLOW_LABELS = {"single": "Single call", "agentic": "Agentic", "multi_round": "Multi-round"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:.6g}"


def notice_html(text: str | None, *, error: bool = True) -> str:
    """A notice above the message box (empty when there is nothing to say)."""
    if not text:
        return ""
    kind = "notice" if error else "info"
    return f'<div class="{kind}" role="alert" data-testid="{kind}">{_e(text)}</div>'


def _bars(decision: Decision) -> str:
    models = list(decision.ranked) + [m for m in decision.quality if m not in decision.ranked]
    top_cost = max((decision.cost.get(m, 0.0) for m in models), default=0.0) or 1.0
    rows = []
    for m in models:
        q = float(decision.quality.get(m, 0.0))
        c = float(decision.cost.get(m, 0.0))
        chosen = m == decision.model
        rows.append(
            f'<tr class="{"chosen" if chosen else ""}" data-model="{_e(m)}" '
            f'data-quality="{q:.6g}" data-cost="{c:.6g}">'
            f"<td>{'▶ ' if chosen else ''}{_e(m)}</td>"
            f'<td class="barcell" title="predicted quality {q:.3f}"><div class="bar q" '
            f'style="width:{max(0.0, min(q, 1.0)) * 100:.1f}%"></div></td><td>{q:.2f}</td>'
            f'<td class="barcell" title="predicted cost {c:.3g} USD"><div class="bar c" '
            f'style="width:{max(0.0, c / top_cost) * 100:.1f}%"></div></td><td>{_usd(c)}</td>'
            "</tr>"
        )
    return (
        '<table class="bars" data-testid="predictions"><tr><th>model</th>'
        '<th colspan="2">predicted quality</th><th colspan="2">predicted cost</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def panel_html(
    record: TurnRecord | None, session: ChatSession, decision: Decision | None = None
) -> str:
    """The side panel of a turn: the chosen model, every pool model's predicted quality and
    cost (bars), the actual cost and latency, the session's cost, and why."""
    decision = decision or (record.decision if record is not None else None)
    parts = ['<div data-testid="turn-panel">']
    if record is None and decision is None:
        parts.append("<p>Send a message: the routing of each turn shows here.</p>")
    if record is not None:
        model = record.model or "none (the turn failed)"
        parts.append(
            f'<h3>Turn {record.index + 1}: <span data-testid="chosen-model">{_e(model)}</span></h3>'
            f'<p>Actual cost <b data-testid="turn-cost">{_usd(record.cost)}</b> · latency '
            f'<span data-testid="latency">{record.latency_s:.2f} s</span>'
            + (
                f" · first token {record.first_token_s:.2f} s"
                if record.first_token_s is not None
                else ""
            )
            + "</p>"
        )
    elif decision is not None:
        parts.append(f"<h3>Routing to <span>{_e(decision.model)}</span>…</h3>")
    parts.append(f'<p>Session cost <b data-testid="session-cost">{_usd(session.spent)}</b></p>')
    if decision is not None:
        why = decision.reason or "highest predicted utility"
        knob = record.knob if record is not None else session._knob_label()
        parts.append(
            f'<p data-testid="why"><b>Why:</b> {_e(why)}<br>Router <code>{_e(decision.router)}'
            f"</code>, knob: {_e(knob)} (λ = {decision.cost_weight:g})</p>"
        )
        parts.append(_bars(decision))
    if record is not None:
        context = ", ".join(str(i + 1) for i in record.context) if record.context else "none"
        parts.append(
            f"<details><summary>What the router read ({_e(record.mode)}; earlier turns: "
            f'{_e(context)})</summary><pre data-testid="routing-text" '
            f'style="white-space:pre-wrap">{_e(record.routing_text)}</pre></details>'
        )
    parts.append("</div>")
    return "".join(parts)


def steps_html(steps: tuple[Any, ...]) -> str:
    """The steps of a flow as a table, each step's prompt and reply on a line under it
    (a placeholder for a single call)."""
    if not steps:
        return "<p>Single call: no steps. Choose the agentic or multi-round flow to see them.</p>"
    rows = []
    for i, s in enumerate(steps, 1):
        status = f"⚠ {_e(s.error)}" if s.error else "ok"
        rows.append(
            f'<tr data-testid="step"><td>{i}</td><td><b>{_e(s.role)}</b></td>'
            f"<td>{_e(s.model or '—')}</td><td>{_usd(s.cost)}</td><td>{s.latency_s:.2f} s</td>"
            f"<td>{_e(s.why)}</td><td>{status}</td></tr>"
            f'<tr class="io"><td></td><td colspan="6"><small>in: {_e(_clip(s.prompt))}<br>'
            f"out: {_e(_clip(s.reply))}</small></td></tr>"
        )
    return (
        "<table><tr><th>#</th><th>step</th><th>model</th><th>cost</th><th>latency</th>"
        "<th>why</th><th>status</th></tr>" + "".join(rows) + "</table>"
    )


def _clip(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class _TabState:
    """Per browser tab: the session, and which chat message belongs to which turn."""

    session: ChatSession
    message_turn: dict[int, int] = field(default_factory=dict)


def _import_gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as exc:
        raise MissingExtraError("gradio", "ui", "the browser chat") from exc
    return gr


def build_app(
    executors: Mapping[str, Executor],
    *,
    conversation: Callable[[], Conversation] = Conversation,
    user: str | None = None,
    max_cost: float | None = None,
    call_kwargs: Mapping[str, Any] | None = None,
    max_cost_weight: float = 1000.0,
) -> Any:
    """The Gradio ``Blocks`` of the chat (not launched).

    Args:
        executors: Router name -> executor; the first is selected at start.
        conversation: Makes each tab's conversation (its mode, ``top_k``, system prompt).
        user: The user id a tab starts with.
        max_cost: Per-message cap in USD.
        call_kwargs: Further LiteLLM arguments of every call.
        max_cost_weight: The end of the cost-weight slider.
    """
    gr = _import_gradio()
    if not executors:
        raise ValueError("the chat needs at least one router")
    names = list(executors)
    start = conversation()

    def new_tab() -> _TabState:
        return _TabState(
            ChatSession(
                executors,
                conversation(),
                user=user,
                max_cost=max_cost,
                call_kwargs=dict(call_kwargs or {}),
            )
        )

    def respond(
        message: str,
        history: list[dict[str, Any]],
        tab: _TabState | None,
        router: str,
        knob: str,
        cost_weight: float,
        budget: float | None,
        mode: str,
        k: float,
        user_id: str,
        flow: str,
    ) -> Iterator[tuple[Any, ...]]:
        tab = tab or new_tab()
        session = tab.session
        history = list(history or [])
        if not (message or "").strip():
            yield history, "", notice_html("Type a message first."), gr.skip(), gr.skip(), tab
            return
        try:
            session.configure(
                router=router,
                knob=knob,  # type: ignore[arg-type]
                cost_weight=cost_weight,
                budget=budget if knob == "budget" else None,
                mode=mode,
                top_k=int(k),
                user=user_id or "",
                flow=flow,  # type: ignore[arg-type]
            )
            if knob == "budget" and budget is None:
                raise ValueError("give a budget in USD")
        except ValueError as exc:
            yield history, message, notice_html(str(exc)), gr.skip(), gr.skip(), tab
            return
        history.append({"role": "user", "content": message})
        history.append({"role": "assistant", "content": ""})
        yield history, "", "", panel_html(None, session), steps_html(()), tab
        shown = None  # the decision the panel shows: redrawn when it changes, not per token
        for update in session.turn(message):
            history[-1] = {"role": "assistant", "content": update.text}
            record = update.record
            if record is None:
                panel = gr.skip() if update.decision is shown else None
                shown = update.decision
                yield (
                    history,
                    gr.skip(),
                    gr.skip(),
                    panel or panel_html(None, session, shown),
                    steps_html(update.steps) if update.steps else gr.skip(),
                    gr.skip(),  # the tab's state changes in place; stored once per turn
                )
                continue
            if record.ok:
                tab.message_turn[len(history) - 1] = record.index
            else:
                history.pop()  # no empty bubble: the notice says what went wrong
            yield (
                history,
                "",
                notice_html(record.notice),
                panel_html(record, session),
                steps_html(record.steps),
                tab,
            )

    def rate(tab: _TabState | None, data: Any) -> str:
        if tab is None:
            return notice_html("Nothing to rate yet.")
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        turn = tab.message_turn.get(int(index))
        if turn is None:
            return notice_html("Only an answer can be rated.")
        liked = data.liked is True or data.liked == "Like"
        try:
            return notice_html(tab.session.feedback(turn, liked), error=False)
        except Exception as exc:  # a router's feedback store failing is a notice, too
            return notice_html(f"Feedback failed: {type(exc).__name__}: {exc}")

    rate.__annotations__["data"] = gr.LikeData  # Gradio passes the like event by annotation

    def clear(tab: _TabState | None) -> tuple[Any, ...]:
        if tab is not None:
            tab.session.conversation.reset()
            tab.message_turn.clear()
        return [], "", notice_html("Conversation cleared.", error=False), tab

    with gr.Blocks(title="llmrouter chat") as demo:
        tab_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(elem_id="chat", height=460, label="Chat")
                notice = gr.HTML(elem_id="notice")
                with gr.Row():
                    box = gr.Textbox(
                        elem_id="message",
                        placeholder="Ask something; each message is routed",
                        show_label=False,
                        lines=2,
                        scale=5,
                    )
                    send = gr.Button("Send", elem_id="send", variant="primary", scale=1)
                    reset = gr.Button("Clear", elem_id="clear", scale=1)
                with gr.Accordion("Flow steps", open=False, elem_id="steps-panel"):
                    steps = gr.HTML(steps_html(()), elem_id="steps")
            with gr.Column(scale=2):
                panel = gr.HTML(elem_id="panel")
                with gr.Accordion("Settings", open=True):
                    router = gr.Dropdown(names, value=names[0], label="Router", elem_id="router")
                    knob = gr.Radio(
                        [
                            ("Router default", "default"),
                            ("Cost weight", "cost_weight"),
                            ("Budget", "budget"),
                        ],
                        value="default",
                        label="Knob",
                        elem_id="knob",
                    )
                    cost_weight = gr.Slider(
                        0,
                        max_cost_weight,
                        value=0,
                        label="Cost weight λ (utility = quality − λ × cost)",
                        elem_id="cost-weight",
                    )
                    budget = gr.Number(
                        None, label="Budget (USD for the session)", minimum=0, elem_id="budget"
                    )
                    mode = gr.Radio(
                        [(f"{m}: {CONTEXT_MODE_HELP[m]}", m) for m in CONTEXT_MODES],
                        value=start.mode,
                        label="Context the router reads",
                        elem_id="mode",
                    )
                    k = gr.Slider(
                        1, 10, value=start.top_k, step=1, label="k (last-k, retrieval)", elem_id="k"
                    )
                    user_box = gr.Textbox(user or "", label="User id", elem_id="user")
                    flow = gr.Radio(
                        [(_FLOW_LABELS[f], f) for f in FLOWS],
                        value="single",
                        label="Flow",
                        elem_id="flow",
                    )
        inputs = [
            box,
            chatbot,
            tab_state,
            router,
            knob,
            cost_weight,
            budget,
            mode,
            k,
            user_box,
            flow,
        ]
        outputs = [chatbot, box, notice, panel, steps, tab_state]
        box.submit(respond, inputs, outputs)
        send.click(respond, inputs, outputs)
        chatbot.like(rate, [tab_state], [notice])
        reset.click(clear, [tab_state], [chatbot, box, notice, tab_state])
        demo.load(lambda: panel_html(None, new_tab().session), None, [panel])
    return demo


def warm_up() -> None:
    """Do before serving what the first message would otherwise wait for: stream one LiteLLM
    mock response (no model, no network; LiteLLM imports its streaming machinery on first
    use), and read matplotlib's backend, which Gradio does around every event (the first read
    imports pyplot). Each is close to a second on this kind of machine."""
    from llmrouter_core._lazy import import_litellm

    try:
        import matplotlib
    except ImportError:  # Gradio then skips the backend switch, too
        pass
    else:
        matplotlib.get_backend()

    litellm = import_litellm()
    messages = [{"role": "user", "content": "warm-up"}]
    for _ in litellm.completion(
        model="openai/warm-up", messages=messages, mock_response="ok", stream=True
    ):
        pass


def launch_ui(
    executors: Mapping[str, Executor],
    *,
    conversation: Callable[[], Conversation] = Conversation,
    user: str | None = None,
    max_cost: float | None = None,
    call_kwargs: Mapping[str, Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
) -> Any:
    """Build the chat and serve it at ``http://host:port`` (blocks unless ``block=False``;
    then the caller closes the returned app with ``.close()``)."""
    demo = build_app(
        executors, conversation=conversation, user=user, max_cost=max_cost, call_kwargs=call_kwargs
    )
    warm_up()
    demo.queue(default_concurrency_limit=4)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        quiet=not block,
        css=_CSS,
    )
    return demo
