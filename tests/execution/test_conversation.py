"""Chat context modes on real RouterBench questions."""

from __future__ import annotations

from typing import Any

import pytest

from llmrouter_core.execution import Conversation


@pytest.fixture(scope="module")
def turns(arc_test: Any) -> list[tuple[str, str]]:
    # The question each prompt ends with (after its shared few-shot examples), with a recorded
    # answer.
    out = []
    for i in range(0, 60, 6):
        q = arc_test.queries[i].split("\n\n")[-1].split("\n")[0]
        out.append((q, str(arc_test.responses[i, 0])))
    assert len({q for q, _ in out}) == len(out)
    return out


def test_current_only_sends_just_the_query(turns: list[tuple[str, str]]) -> None:
    conv = Conversation("current", system="Be brief.")
    for q, a in turns:
        conv.add(q, a)
    assert conv.messages_for("next?") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "next?"},
    ]


def test_full_context_sends_every_turn(turns: list[tuple[str, str]]) -> None:
    conv = Conversation("full_context")
    for q, a in turns:
        conv.add(q, a)
    msgs = conv.messages_for("next?")
    assert len(msgs) == 2 * len(turns) + 1
    assert [m["content"] for m in msgs[:-1:2]] == [q for q, _ in turns]
    assert Conversation.routing_text(msgs).endswith("next?")


def test_retrieval_keeps_the_most_similar_turns(turns: list[tuple[str, str]]) -> None:
    conv = Conversation("retrieval", top_k=2)
    for q, a in turns:
        conv.add(q, a)
    target = 4
    # The same question again, reworded at the start, retrieves the earlier turn.
    query = "Once more: " + turns[target][0]
    picked = conv.retrieve(query)
    assert len(picked) == 2 and target in picked and picked == sorted(picked)
    msgs = conv.messages_for(query)
    assert len(msgs) == 5 and msgs[-1]["content"] == query
    assert turns[target][0] in [m["content"] for m in msgs]


def test_bad_modes() -> None:
    with pytest.raises(ValueError, match="unknown context mode"):
        Conversation("everything")
    with pytest.raises(ValueError):
        Conversation("retrieval", top_k=0)
    assert Conversation("retrieval").messages_for("hi") == [{"role": "user", "content": "hi"}]
