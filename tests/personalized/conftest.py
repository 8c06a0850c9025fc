"""Fixtures of the personalized-routing tests: a personalized router over a real trained base
router (RouterBench slices, see tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def base(rb_small: Any) -> Any:
    """A linear router fitted on 240 RouterBench training queries."""
    import llmrouter_core as lr

    return lr.get_router("linear").fit(rb_small[0])


@pytest.fixture()
def router(base: Any, rb_small: Any) -> Any:
    """A personalized router around the fitted base, with its own memory store."""
    from llmrouter_core.personalized import PersonalizedRouter

    return PersonalizedRouter(base=base).fit(rb_small[0])
