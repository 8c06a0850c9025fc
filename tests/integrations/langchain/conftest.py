"""Fixtures of the LangChain adapter tests (see ``lc_testkit`` for what is real)."""

from __future__ import annotations

from typing import Any

import lc_testkit as kit
import pytest


@pytest.fixture(scope="session")
def rb_test() -> Any:
    """RouterBench's test split."""
    return kit.routerbench()[1]


@pytest.fixture(scope="session")
def router() -> Any:
    return kit.full_router()


@pytest.fixture(scope="session")
def replay(router: Any) -> Any:
    return kit.replay_pool(router)


@pytest.fixture(scope="session")
def tool_pool(router: Any) -> Any:
    return kit.tool_pool(router)
