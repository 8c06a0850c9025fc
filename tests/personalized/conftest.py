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


CHEAP = "mistralai/mistral-7b-chat"


def teach_frugal(router: Any, user: str, queries: Any, n: int) -> None:
    """Feedback of a user who wants it cheap: on each of ``n`` queries, the cheap model's
    answer is rated high and the one the router gave (if another) low."""
    for q in list(queries)[:n]:
        chosen = router.route(q, user=user).model
        router.feedback(user, q, CHEAP, rating=0.9)
        if chosen != CHEAP:
            router.feedback(user, q, chosen, rating=0.1)


@pytest.fixture()
def frugal() -> Any:
    """:func:`teach_frugal`."""
    return teach_frugal
