"""Fixtures of the serving tests: a kNN router trained on real RouterBench queries, the replay
provider answering with the models' recorded responses, and servers run on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from llmrouter_core.data import RoutingData, load_routerbench


@pytest.fixture(scope="session")
def arc(data_dir: Path) -> RoutingData:
    bench = data_dir / "routerbench"
    return load_routerbench(
        [bench / "arc_challenge_train.csv", bench / "arc_challenge_test.csv"], on_defect="drop"
    )


@pytest.fixture(scope="session")
def arc_test(arc: RoutingData) -> RoutingData:
    return arc.split("test")


@pytest.fixture(scope="session")
def mbpp_test(data_dir: Path) -> RoutingData:
    """RouterBench's MBPP test file: code answers, many words each."""
    return load_routerbench([data_dir / "routerbench" / "mbpp_test.csv"], on_defect="drop")


@pytest.fixture()
def replaying_mbpp(mbpp_test: RoutingData) -> Iterator[RoutingData]:
    from llmrouter_core.providers.replay import register_replay_provider, set_replay_data

    register_replay_provider()
    set_replay_data(mbpp_test)
    yield mbpp_test
    set_replay_data(None)


@pytest.fixture(scope="session")
def knn_router(arc: RoutingData) -> Any:
    """A kNN router trained on 300 RouterBench ARC training queries."""
    import llmrouter_core as lr

    return lr.get_router("knn", n_neighbors=15).fit(arc.split("train").subset(np.arange(300)))


@pytest.fixture(scope="session")
def router_dir(knn_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("routers") / "knn"
    knn_router.save(path)
    return path


@pytest.fixture()
def replaying(arc_test: RoutingData) -> Iterator[RoutingData]:
    """The replay provider answers with the recorded ARC test responses."""
    from llmrouter_core.providers.replay import register_replay_provider, set_replay_data

    register_replay_provider()
    set_replay_data(arc_test)
    yield arc_test
    set_replay_data(None)
