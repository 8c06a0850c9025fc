"""Fixtures of the DSPy adapter tests: RouterBench replayed offline.

Every routed call is answered by the ``replay`` provider with the response the chosen model
really gave to that RouterBench prompt, at its recorded cost; the metric is the dataset's
recorded score of that response.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

MC_TASKS = ("arc-challenge", "winogrande")


@pytest.fixture(autouse=True)
def fresh_dspy_cache() -> Any:
    """An empty in-memory DSPy cache per test; nothing written to disk."""
    import dspy

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    yield


@pytest.fixture(scope="session")
def rb_all(routerbench: Any) -> Any:
    from llmrouter_core.data.core import RoutingData

    train, test = routerbench
    return RoutingData.concat([train, test])


@pytest.fixture(scope="session")
def replay(rb_all: Any) -> Any:
    from llmrouter_core.providers.replay import set_replay_data

    store = set_replay_data(rb_all)
    yield store
    set_replay_data(None)


@pytest.fixture(scope="session")
def outcomes(rb_all: Any) -> Any:
    from dspy_llmrouter.recorded import RecordedOutcomes

    return RecordedOutcomes(rb_all)


@pytest.fixture(scope="session")
def mc_split(routerbench: Any) -> dict[str, Any]:
    """Multiple-choice rows (ARC-Challenge, WinoGrande): a devset and router-training rows
    from RouterBench's train split, a held-out set from its test split (seeded, disjoint)."""
    train, test = routerbench
    rows = np.array([i for i in range(train.n_queries) if train.tasks[i] in MC_TASKS])
    rows = np.random.default_rng(0).permutation(rows)
    held = np.array([i for i in range(test.n_queries) if test.tasks[i] in MC_TASKS])
    held = np.random.default_rng(1).permutation(held)
    return {
        "train": train,
        "test": test,
        "dev": [int(i) for i in rows[:300]],
        "router": np.sort(rows[300:800]),
        "held_out": [int(i) for i in held[:300]],
    }


@pytest.fixture(scope="session")
def knn_router(mc_split: dict[str, Any]) -> Any:
    """A kNN router trained on 500 multiple-choice training queries (none in the devset)."""
    import llmrouter_core as lr

    data = mc_split["train"].subset(mc_split["router"])
    return lr.get_router("knn", n_neighbors=10, blend=1.0).fit(data)


@pytest.fixture(scope="session")
def replay_pool(knn_router: Any, replay: Any) -> Any:
    from llmrouter_core.providers.replay import replay_pool as make

    return make(knn_router.pool_)
