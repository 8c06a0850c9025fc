"""Chat context modes on real RouterBench questions."""

from __future__ import annotations

from typing import Any

import numpy as np
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


def test_last_k_sends_the_most_recent_turns(turns: list[tuple[str, str]]) -> None:
    conv = Conversation("last_k", top_k=2)
    for q, a in turns:
        conv.add(q, a)
    msgs = conv.messages_for("next?")
    assert [m["content"] for m in msgs] == [
        turns[-2][0],
        turns[-2][1],
        turns[-1][0],
        turns[-1][1],
        "next?",
    ]


def test_full_context_is_bounded_by_tokens(turns: list[tuple[str, str]]) -> None:
    from llmrouter_core.pool import estimate_tokens

    sizes = [estimate_tokens(q) + estimate_tokens(a) for q, a in turns]
    budget = sum(sizes[-3:])  # exactly the last three turns fit
    conv = Conversation("full", max_context_tokens=budget)
    for q, a in turns:
        conv.add(q, a)
    assert conv.context("next?") == [len(turns) - 3, len(turns) - 2, len(turns) - 1]
    conv.max_context_tokens = budget - 1
    assert conv.context("next?") == [len(turns) - 2, len(turns) - 1]


def test_retrieval_embeds_each_turn_once(turns: list[tuple[str, str]]) -> None:
    from llmrouter_core.execution.conversation import hashing_embed

    seen: list[str] = []

    def embed(texts: Any) -> Any:
        seen.extend(texts)
        return hashing_embed(texts)

    conv = Conversation("retrieval", top_k=2, embed=embed)
    for q, a in turns:
        conv.add(q, a)
        conv.messages_for("Once more: " + q)
    # Every turn's query embedded exactly once, plus each retrieval query once.
    past = [q for q, _ in turns]
    assert sorted(t for t in seen if not t.startswith("Once more")) == sorted(past)
    assert conv.embedded == len(seen)
    n_before = conv.embedded
    # Switching modes keeps the turns and their cached embeddings.
    conv.set_mode("full").set_mode("retrieval", top_k=3)
    picked = conv.retrieve(turns[2][0])
    assert 2 in picked and len(picked) == 3
    assert conv.embedded == n_before + 1  # only the query: no turn is embedded again
    conv.add("a new question", "an answer")
    conv.retrieve("a new question")
    assert conv.embedded == n_before + 3  # the new turn and the query


def test_a_failing_embedder_is_an_error_not_a_fallback(turns: list[tuple[str, str]]) -> None:
    from llmrouter_core.execution import ContextError

    def broken(texts: Any) -> Any:
        raise OSError("embedding service down")

    conv = Conversation("retrieval", top_k=1, embed=broken)
    for q, a in turns[:3]:
        conv.add(q, a)
    with pytest.raises(ContextError, match="embedding service down"):
        conv.messages_for("next?")
    conv.embed = lambda texts: np.zeros((1, 4))  # wrong number of rows
    with pytest.raises(ContextError, match="1 rows for 3 texts"):
        conv.messages_for("next?")


def test_set_mode_rejects_bad_input_unchanged() -> None:
    conv = Conversation("last_k", top_k=2)
    with pytest.raises(ValueError, match="unknown context mode 'bogus'"):
        conv.set_mode("bogus", top_k=5)
    with pytest.raises(ValueError, match="top_k"):
        conv.set_mode("retrieval", top_k=0)
    assert (conv.mode, conv.top_k) == ("last_k", 2)
