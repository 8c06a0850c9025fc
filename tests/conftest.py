"""Shared fixtures: the real routing data (read from ``$LLMROUTER_DATA_DIR``) and small slices.

Unit tests run with the network blocked (pytest-socket, see pyproject.toml); tests that talk to
a loopback server opt in with ``@pytest.mark.enable_socket``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
os.environ["LLMROUTER_DATA_DIR"] = str(DATA_DIR)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "routerbench").is_dir():
        pytest.fail(f"real routing data not found at {DATA_DIR}; set LLMROUTER_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def routerbench(data_dir: Path):  # type: ignore[no-untyped-def]
    """The whole RouterBench subset (defects dropped, train/test overlap removed)."""
    from llmrouter_core.benchmark import load_split

    return load_split("routerbench", data_dir=data_dir)


@pytest.fixture(scope="session")
def rb_small(routerbench):  # type: ignore[no-untyped-def]
    """A seeded slice: 240 train and 120 test queries, all three tasks, all 11 models."""
    train, test = routerbench
    rng = np.random.default_rng(7)
    tr = train.subset(np.sort(rng.choice(train.n_queries, 240, replace=False)))
    te = test.subset(np.sort(rng.choice(test.n_queries, 120, replace=False)))
    return tr, te


@pytest.fixture(scope="session")
def dcrouter(data_dir: Path):  # type: ignore[no-untyped-def]
    """LLMRouter's dcrouter data (costs from its pool prices), honest train/test split."""
    from llmrouter_core.benchmark import load_split

    return load_split("llmrouter", data_dir=data_dir)
