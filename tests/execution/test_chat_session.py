"""The browser chat's session (no browser): routed turns on RouterBench's recorded answers,
real streamed chunks, context modes, knobs, flows, errors as notices, feedback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chat_helpers import recorded, wordy

from llmrouter_core.data import RoutingData
from llmrouter_core.execution import Conversation, Executor
from llmrouter_core.pool import Pool
from llmrouter_core.providers.replay import replay_pool, set_replay_data
from llmrouter_core.ui import ChatSession, TurnRecord


@pytest.fixture()
def replaying(bench: RoutingData) -> Iterator[RoutingData]:
    set_replay_data(bench)
    yield bench.split("test")
    set_replay_data(None)


def make_session(router: Any, pool: Pool | None = None, **kwargs: Any) -> ChatSession:
    ex = Executor(
        router,
        pool=pool or replay_pool(router.pool_),
        keys="",
        routing_text=Conversation.routing_text,
    )
    return ChatSession({"knn": ex}, Conversation(), **kwargs)


def run(session: ChatSession, query: str) -> tuple[list[Any], TurnRecord]:
    updates = list(session.turn(query))
    record = updates[-1].record
    assert record is not None
    return updates, record


def test_a_routed_turn_streams_the_recorded_answer(
    replaying: RoutingData, chat_router: Any
) -> None:
    session = make_session(chat_router)
    q = wordy(replaying, chat_router)
    updates, record = run(session, q)
    model = chat_router.route(q).model
    answer, cost = recorded(replaying, q, model)
    assert record.model == model and record.decision is not None
    assert record.decision.model == model and record.answer == answer
    assert record.cost == pytest.approx(cost) and session.spent == pytest.approx(cost)
    # Streamed for real: the text grows chunk by chunk, the first text before the end.
    texts = [u.text for u in updates if u.record is None and u.text]
    assert len(texts) >= 2 and texts[-1] == answer and len(texts[0]) < len(answer)
    assert record.first_token_s is not None and record.first_token_s <= record.latency_s
    # The chosen model is data of the turn, never in the history sent later.
    assert session.conversation.turns == [(q, answer)]
    assert model not in session.conversation.messages_for("next")[0]["content"]
    assert record.routing_text == q and record.notice is None


def test_switching_the_context_mode_changes_what_the_router_reads(
    replaying: RoutingData, chat_router: Any
) -> None:
    session = make_session(chat_router)
    q1, q2, q3 = replaying.queries[4], replaying.queries[5], replaying.queries[6]
    run(session, q1)
    _, second = run(session, q2)
    assert second.routing_text == q2 and second.context == ()
    session.configure(mode="full_context")
    _, third = run(session, q3)
    assert third.context == (0, 1) and third.routing_text.startswith(q1)
    assert third.routing_text.endswith(q3) and third.ok
    session.configure(mode="last_k", top_k=1)
    record = list(session.turn(q1))[-1].record
    assert record is not None and record.context == (2,)
    assert record.routing_text.startswith(q3)


def test_knobs_cost_weight_and_budget(replaying: RoutingData, chat_router: Any) -> None:
    session = make_session(chat_router)
    q = replaying.queries[7]
    session.configure(knob="cost_weight", cost_weight=1e9)
    _, cheap = run(session, q)
    assert cheap.decision is not None and cheap.decision.cost_weight == 1e9
    cheapest = min(cheap.decision.cost, key=lambda m: cheap.decision.cost[m])  # type: ignore[union-attr]
    assert cheap.model == cheapest and "cost weight 1e+09" in cheap.knob
    # A budget smaller than any answer: a notice, nothing spent, the chat goes on.
    session.configure(knob="budget", budget=1e-9)
    spent = session.spent
    _, refused = run(session, replaying.queries[8])
    assert not refused.ok and refused.notice is not None
    assert refused.notice.startswith("Budget reached") and session.spent == spent
    session.configure(knob="default")
    _, again = run(session, replaying.queries[8])
    assert again.ok


def test_failures_are_notices_and_the_chat_goes_on(
    replaying: RoutingData, chat_router: Any
) -> None:
    q = replaying.queries[9]
    chosen = chat_router.route(q).model
    # Fault injection: the chosen model's endpoint does not exist.
    pool = replay_pool(chat_router.pool_)
    broken = Pool(
        replace(s, litellm_model="replay/no-such-model") if s.name == chosen else s for s in pool
    )
    session = make_session(chat_router, broken)
    _, record = run(session, q)
    assert record.ok and record.fell_back and record.model != chosen
    assert record.notice is not None and record.notice.startswith(f"{chosen} failed;")
    _, unknown = run(session, "A question nobody recorded an answer to")
    assert not unknown.ok and unknown.notice is not None
    assert unknown.notice.startswith("Every model failed")
    assert len(session.conversation.turns) == 1  # a failed turn is not history
    _, ok = run(session, replaying.queries[10])
    assert ok.ok and len(session.turns) == 3
    assert session.feedback(1, True) == "Only a routed answer can be rated."
    assert "does not learn from feedback" in session.feedback(2, False)
    assert session.turns[2].feedback == -1


def test_an_agentic_turn_shows_its_steps(replaying: RoutingData, chat_router: Any) -> None:
    session = make_session(chat_router)
    q1, q2 = replaying.queries[11], replaying.queries[12]
    session.configure(flow="agentic")
    updates, record = run(session, f"### Part 1\n{q1}\n### Part 2\n{q2}")
    assert record.ok and record.flow == "agentic", record.notice
    calls = [s for s in record.steps if s.role == "call"]
    assert [s.prompt.strip() for s in calls] == [q1, q2]
    for s in calls:
        assert s.reply == recorded(replaying, s.prompt.strip(), s.model)[0]
    assert record.cost == pytest.approx(sum(s.cost or 0.0 for s in record.steps))
    # Steps arrive while the flow runs, before the last update.
    assert any(u.steps and u.record is None for u in updates)


def test_bad_settings_change_nothing(chat_router: Any) -> None:
    session = make_session(chat_router)
    with pytest.raises(ValueError, match="unknown router 'nope'"):
        session.configure(router="nope")
    with pytest.raises(ValueError, match="unknown context mode"):
        session.configure(mode="bogus", knob="budget", budget=1.0)
    assert session.knob == "default" and session.budget is None
    with pytest.raises(ValueError, match="unknown flow"):
        session.configure(flow="swarm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        next(session.turn("  "))


def test_thumbs_reach_a_router_that_learns_online(
    replaying: RoutingData, chat_router: Any, chat_bandit: Any
) -> None:
    bandit = chat_bandit
    ex = {
        name: Executor(r, pool=replay_pool(r.pool_), keys="")
        for name, r in (("knn", chat_router), ("bandit", bandit))
    }
    session = ChatSession(ex, Conversation())
    session.configure(router="bandit")
    q = wordy(replaying, bandit)
    _, record = run(session, q)
    assert record.ok and record.router == "bandit" and record.model is not None
    before = bandit.route(q).quality[record.model]
    assert session.feedback(0, False).startswith("Feedback sent to bandit")
    after = bandit.route(q).quality[record.model]
    assert after < before  # a thumbs down lowered the model's predicted quality
    session.feedback(0, True)
    assert bandit.route(q).quality[record.model] > after


def test_thumbs_reach_a_personalized_router_for_the_user(
    replaying: RoutingData, bench: RoutingData, chat_router: Any, tmp_path: Path
) -> None:
    from llmrouter_core.personalized import PersonalizedRouter

    store = f"sqlite:///{tmp_path / 'feedback.db'}"
    personal = PersonalizedRouter(base=chat_router, store=store).fit(bench.split("train"))
    ex = Executor(personal, pool=replay_pool(personal.pool_), keys="")
    session = ChatSession({"personal": ex}, Conversation())
    q = wordy(replaying, chat_router)
    _, record = run(session, q)
    assert record.ok
    with pytest.raises(ValueError, match="give a user id"):
        session.feedback(0, True)
    session.configure(user="ada")
    _, record = run(session, q)
    assert session.feedback(1, False).startswith("Feedback sent to personal")
    events = personal.feedback_store.events("ada")
    assert [(e.query, e.model, e.rating) for e in events] == [(q, record.model, 0.0)]


def test_a_multi_round_turn_that_breaks_its_protocol_is_a_notice(
    replaying: RoutingData, chat_router: Any
) -> None:
    # Recorded answers were not written as a multi-round policy: the policy's reply has no
    # <search>/<answer> tag, its repair prompt was never recorded, and the flow stops.
    session = make_session(chat_router)
    session.configure(flow="multi_round")
    q = wordy(replaying, chat_router)
    _, record = run(session, q)
    assert record.flow == "multi_round" and record.steps
    assert record.steps[0].role == "plan" and record.steps[0].model == chat_router.route(q).model
    assert record.steps[0].error is not None and record.steps[0].error.startswith("format:")
    assert record.notice is not None and record.notice.startswith("The flow stopped early")
    assert record.cost > 0
    assert record.cost == pytest.approx(sum(s.cost or 0.0 for s in record.steps))
    assert session.spent == pytest.approx(record.cost)
