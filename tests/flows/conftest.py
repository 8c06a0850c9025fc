"""Fixtures of the flow tests: RouterBench's test split replayed (recorded answers and
costs), a kNN router trained on its train split, and an executor on the replay pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from llmrouter_core.data import RoutingData
from llmrouter_core.execution import Executor
from llmrouter_core.providers.replay import register_replay_provider, replay_pool, set_replay_data


@pytest.fixture(scope="session")
def rb_test(routerbench: Any) -> RoutingData:
    test: RoutingData = routerbench[1]
    return test


@pytest.fixture(scope="session")
def flow_router(routerbench: Any) -> Any:
    """A kNN router trained on 400 RouterBench training queries of all three tasks."""
    import llmrouter_core as lr

    train = routerbench[0]
    rows = np.sort(np.random.default_rng(3).choice(train.n_queries, 400, replace=False))
    return lr.get_router("knn", n_neighbors=15).fit(train.subset(rows))


@pytest.fixture()
def replaying(rb_test: RoutingData) -> Iterator[RoutingData]:
    register_replay_provider()
    set_replay_data(rb_test)
    yield rb_test
    set_replay_data(None)


@pytest.fixture()
def replay_executor(replaying: RoutingData, flow_router: Any) -> Executor:
    return Executor(flow_router, pool=replay_pool(flow_router.pool_), max_retries=0)
