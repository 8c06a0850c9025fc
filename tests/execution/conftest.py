"""Fixtures of the execution tests: real RouterBench slices, a trained router, and pools that
call the router's models through LiteLLM's mock responses (for fault injection) or through the
replay provider (recorded answers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from llmrouter_core.data import RoutingData, load_routerbench


@pytest.fixture(scope="session")
def litellm() -> Any:
    import litellm as _litellm

    return _litellm


@pytest.fixture(scope="session")
def arc(data_dir: Path) -> RoutingData:
    """RouterBench's ARC-Challenge files (train + test), defective rows dropped."""
    bench = data_dir / "routerbench"
    return load_routerbench(
        [bench / "arc_challenge_train.csv", bench / "arc_challenge_test.csv"], on_defect="drop"
    )


@pytest.fixture(scope="session")
def arc_test(arc: RoutingData) -> RoutingData:
    return arc.split("test")


@pytest.fixture(scope="session")
def knn_router(arc: RoutingData) -> Any:
    """A kNN router trained on 300 RouterBench training queries."""
    import llmrouter_core as lr

    train = arc.split("train")
    return lr.get_router("knn", n_neighbors=15).fit(train.subset(np.arange(300)))


@pytest.fixture(scope="session")
def cheap_router(arc: RoutingData) -> Any:
    """The cheapest-model baseline, trained on the same slice."""
    import llmrouter_core as lr

    train = arc.split("train")
    return lr.get_router("cheapest").fit(train.subset(np.arange(300)))


@pytest.fixture(scope="session")
def bench(data_dir: Path) -> RoutingData:
    """RouterBench's ARC-Challenge (one-letter answers) and MBPP (code) files."""
    files = [
        data_dir / "routerbench" / f"{task}_{split}.csv"
        for task in ("arc_challenge", "mbpp")
        for split in ("train", "test")
    ]
    return load_routerbench(files, on_defect="drop")


@pytest.fixture(scope="session")
def chat_router(bench: RoutingData) -> Any:
    """A kNN router trained on 400 ARC and MBPP training queries."""
    import llmrouter_core as lr

    train = bench.split("train")
    rng = np.random.default_rng(0)
    return lr.get_router("knn", n_neighbors=15).fit(
        train.subset(np.sort(rng.choice(train.n_queries, 400, replace=False)))
    )


@pytest.fixture(scope="session")
def chat_bandit(bench: RoutingData) -> Any:
    """The bandit router (it learns online from feedback) on 300 training queries."""
    import llmrouter_core as lr

    return lr.get_router("bandit").fit(bench.split("train").subset(np.arange(300)))
