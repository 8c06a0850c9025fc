"""Replay over real RouterBench data with its real duplicates: every recorded prompt is
answered (the first recorded row), conflicts are logged once, the defect report only at DEBUG."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from llmrouter_core.providers.replay import ReplayStore, load_replay_data, set_replay_data

# Real duplicates of RouterBench's files: a sample id listed twice in arc_challenge_test.csv
# with different outcomes, and one prompt text recorded under two ids (train and test).
TWICE = "arc-challenge.val.172"
SHARED_TEXT_IDS = ("mbpp.dev.87", "mbpp.dev.29")


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    set_replay_data(None)


@pytest.fixture(scope="module")
def raw(data_dir: Path) -> pd.DataFrame:
    rb = data_dir / "routerbench"
    frames = [
        pd.read_csv(rb / f"{t}_{s}.csv", dtype=str, keep_default_na=False)
        for t in ("arc_challenge", "mbpp", "winograde")
        for s in ("train", "test")
    ]
    return pd.concat(frames, ignore_index=True)


def _text(cell: str) -> str:
    return "\n\n".join(ast.literal_eval(cell))


def test_conflicting_copies_are_answered_with_the_first_recorded_row(raw: pd.DataFrame) -> None:
    store = set_replay_data("routerbench")
    assert store is not None
    copies = raw[raw["sample_id"] == TWICE]
    assert len(copies) == 2
    prompt = _text(copies.iloc[0]["prompt"])
    for model in ("claude-v2", "gpt-4-1106-preview", "mistralai/mistral-7b-chat"):
        rec = store.lookup(model, prompt)
        assert rec.query_id == TWICE
        assert rec.text == _text(copies.iloc[0][f"{model}|model_response"])


def test_a_prompt_under_several_ids_is_answered_from_the_first_and_logged_once(
    raw: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    store = ReplayStore(load_replay_data("routerbench"), source="routerbench")
    rows = raw.set_index("sample_id").loc[list(SHARED_TEXT_IDS)]
    prompt = _text(rows.iloc[0]["prompt"])
    assert _text(rows.iloc[1]["prompt"]) == prompt
    differing = [
        m
        for m in store.models
        if rows.iloc[0][f"{m}|model_response"] != rows.iloc[1][f"{m}|model_response"]
    ]
    assert len(differing) >= 2
    with caplog.at_level(logging.INFO, logger="llmrouter_core.providers.replay"):
        answers = [store.lookup(m, prompt) for m in differing for _ in range(2)]
    first_id = store.data.query_ids[min(store.data.query_ids.index(q) for q in SHARED_TEXT_IDS)]
    assert {a.query_id for a in answers} == {first_id}
    for a, m in zip(answers[::2], differing, strict=True):
        assert a.text == _text(rows.loc[first_id][f"{m}|model_response"])
    logged = [r for r in caplog.records if "different responses" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.INFO


def test_replay_load_logs_the_defect_report_once_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="llmrouter_core"):
        data = load_replay_data("routerbench")
    assert data.meta["defects"]["counts"]["duplicate_id"] == 14
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    reports = [r for r in caplog.records if "rows read" in r.getMessage()]
    assert [r.levelno for r in reports] == [logging.DEBUG]


def test_bad_messages_are_a_clear_replay_error_not_a_crash() -> None:
    from llmrouter_core.providers.replay import ReplayError

    store = set_replay_data("routerbench")
    assert store is not None
    with pytest.raises(ReplayError, match="is not in routerbench"):
        store.lookup("claude-v2", ["not a message", {"role": "user", "content": "unrecorded"}])
    with pytest.raises(ReplayError, match="is not in routerbench"):
        store.lookup("claude-v2", [])
