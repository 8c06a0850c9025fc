"""Real RouterBench prompts for the feature tests (read from the shared data directory)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]

# (file stem, rows taken): 50 prompts of three tasks, long few-shot ones and short ones.
SAMPLE = (("arc_challenge_test", 17), ("mbpp_test", 17), ("winograde_test", 16))


def data_dir() -> Path:
    return Path(os.environ.get("LLMROUTER_DATA_DIR", REPO / ".." / "shared" / "data"))


def prompt_text(raw: str) -> str:
    """RouterBench stores a prompt as a stringified list of turns."""
    turns = ast.literal_eval(raw)
    assert isinstance(turns, list), raw[:80]
    return "\n".join(str(t) for t in turns)


def read_prompts(stem: str, n: int | None = None) -> list[str]:
    path = data_dir() / "routerbench" / f"{stem}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"RouterBench data not found at {path}; set LLMROUTER_DATA_DIR")
    df = pd.read_csv(path, usecols=["prompt"])
    texts = [prompt_text(p) for p in df["prompt"]]
    return texts if n is None else texts[:n]


@pytest.fixture(scope="session")
def routerbench_sample() -> tuple[list[str], list[str]]:
    """(texts, tasks): 50 RouterBench test prompts from three tasks."""
    texts: list[str] = []
    tasks: list[str] = []
    for stem, n in SAMPLE:
        rows = read_prompts(stem, n)
        texts += rows
        tasks += [stem.rsplit("_", 1)[0]] * len(rows)
    return texts, tasks


@pytest.fixture(scope="session")
def mbpp_prompts() -> list[str]:
    """All MBPP test prompts (short, one sentence each)."""
    return read_prompts("mbpp_test")


@pytest.fixture(scope="session")
def train_prompts() -> list[str]:
    """A slice of RouterBench train prompts of all three tasks."""
    out: list[str] = []
    for stem in ("arc_challenge_train", "mbpp_train", "winograde_train"):
        out += read_prompts(stem, 100)
    return out
