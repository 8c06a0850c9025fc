"""The personalized router on real RouterBench queries: exact cold start, feedback that moves
decisions the way the user asked, shrinkage, bad input, save/load, and the executor passing
the user through."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import llmrouter_core as lr
from llmrouter_core.errors import DataError, UnknownModelError
from llmrouter_core.personalized import FeedbackEvent, PersonalizedRouter

CHEAP = "mistralai/mistral-7b-chat"
VENDOR = ("claude-v1", "claude-v2", "claude-instant-v1")


def test_every_router_accepts_a_user_and_ignores_it(base: Any, rb_small: Any) -> None:
    queries = rb_small[1].queries[:15]
    assert base.route_batch(queries, user="alice") == base.route_batch(queries)
    assert base.route(queries[0], user="alice") == base.route(queries[0])
    assert not base.supports_feedback


def test_registered_and_built_by_name(rb_small: Any) -> None:
    router = lr.get_router("personalized", base="single", n_clusters=3)
    assert isinstance(router, PersonalizedRouter) and router.supports_feedback
    assert "personalized" in {r.name for r in lr.list_routers()}
    router.fit(rb_small[0])
    assert router.base_.name == "single" and router.centers_.shape[0] <= 3
    with pytest.raises(ValueError, match="cannot be personalized"):
        lr.get_router("personalized", base="personalized").fit(rb_small[0])


def test_cold_start_routes_exactly_as_the_base(router: Any, base: Any, rb_small: Any) -> None:
    queries = rb_small[1].queries
    router.feedback("bob", queries[0], CHEAP, rating=1.0)  # someone else's feedback
    for kwargs in ({}, {"cost_weight": 50.0}, {"budget": 0.001}, {"allowed": VENDOR}):
        assert router.route_batch(queries, user="alice", **kwargs) == base.route_batch(
            queries, **kwargs
        )
        assert router.route_batch(queries, **kwargs) == base.route_batch(queries, **kwargs)
    assert router.profile("alice").is_cold
    assert not router.profile("alice").theta.any()


def test_pairwise_feedback_moves_routing_towards_the_users_preference(
    router: Any, base: Any, rb_small: Any
) -> None:
    train, test = rb_small
    for q in train.queries[:25]:  # a user who prefers the cheap model's answer
        chosen = router.route(q, user="frugal").model
        if chosen != CHEAP:
            router.feedback("frugal", q, CHEAP, preferred_over=chosen)
    before = base.route_batch(test.queries)
    after = router.route_batch(test.queries, user="frugal")
    assert np.mean([d.model == CHEAP for d in after]) > np.mean([d.model == CHEAP for d in before])
    cost_after = np.mean([d.cost[d.model] for d in after])
    assert cost_after < np.mean([d.cost[d.model] for d in before])
    assert after[0].router == "personalized" and after[0].extra["user"] == "frugal"
    # Other users are unaffected.
    assert router.route_batch(test.queries, user="someone") == before


def test_ratings_of_a_vendor_raise_its_share(router: Any, base: Any, rb_small: Any) -> None:
    train, test = rb_small
    for q in train.queries[:15]:
        for model in router.models_:
            router.feedback("fan", q, model, rating=1.0 if model in VENDOR else 0.2)
    share = np.mean([d.model in VENDOR for d in router.route_batch(test.queries, user="fan")])
    assert share > np.mean([d.model in VENDOR for d in base.route_batch(test.queries)])
    assert share > 0.8
    profile = router.profile("fan")
    assert profile.n_events == 15 * len(router.models_)
    assert min(profile.model_offsets[m] for m in VENDOR) > max(
        v for m, v in profile.model_offsets.items() if m not in VENDOR
    )


def test_few_events_move_the_profile_little(router: Any, rb_small: Any) -> None:
    """Shrinkage: one rating moves an offset less than twenty saying the same."""
    queries = rb_small[0].queries
    router.feedback("once", queries[0], CHEAP, rating=1.0)
    for q in queries[:20]:
        router.feedback("often", q, CHEAP, rating=1.0)
    once = router.profile("once").model_offsets[CHEAP]
    often = router.profile("often").model_offsets[CHEAP]
    assert 0 < once < often
    assert once < 0.2


def test_bad_feedback_is_refused_and_nothing_is_stored(router: Any, rb_small: Any) -> None:
    q = rb_small[0].queries[0]
    bad: list[tuple[tuple[Any, ...], dict[str, Any], type[Exception]]] = [
        (("u", q, CHEAP), {"rating": 1.5}, DataError),
        (("u", q, CHEAP), {"rating": True}, DataError),
        (("u", q, CHEAP), {}, DataError),
        (("u", q, "gpt-5"), {"rating": 0.5}, UnknownModelError),
        (("u", q, CHEAP), {"preferred_over": "gpt-5"}, UnknownModelError),
        (("u", q, CHEAP), {"preferred_over": CHEAP}, DataError),
        (("", q, CHEAP), {"rating": 0.5}, DataError),
        (("u", "  ", CHEAP), {"rating": 0.5}, DataError),
    ]
    for args, kwargs, error in bad:
        with pytest.raises(error):
            router.feedback(*args, **kwargs)
    with pytest.raises(UnknownModelError):  # one bad event: none of the batch is stored
        router.add_feedback(
            [FeedbackEvent("u", q, CHEAP, 0.5), FeedbackEvent("u", q, "gpt-5", 0.5)]
        )
    assert router.feedback_store.count() == 0
    with pytest.raises(TypeError, match="per-user feedback"):
        router.feedback_batch([q], [CHEAP], [1.0])


def test_save_and_load_keep_the_profiles(
    router: Any, rb_small: Any, tmp_path: Path, frugal: Any
) -> None:
    train, test = rb_small
    frugal(router, "frugal", train.queries, 15)
    router.save(tmp_path / "r")
    loaded = lr.load_router(tmp_path / "r")
    assert isinstance(loaded, PersonalizedRouter)
    assert loaded.feedback_store.count("frugal") == router.feedback_store.count("frugal")
    assert [d.model for d in loaded.route_batch(test.queries, user="frugal")] == [
        d.model for d in router.route_batch(test.queries, user="frugal")
    ]
    np.testing.assert_allclose(loaded.profile("frugal").theta, router.profile("frugal").theta)
    # The base saved inside loads as the base it is.
    assert loaded.base_.name == "linear"
    assert loaded.route_batch(test.queries) == router.base_.route_batch(test.queries)


def test_export_import_and_forget(router: Any, rb_small: Any, frugal: Any) -> None:
    frugal(router, "frugal", rb_small[0].queries, 10)
    n = router.feedback_store.count("frugal")
    doc = router.export_user("frugal")
    assert len(doc["events"]) == n > 10
    assert router.import_user(doc, user="twin") == n
    np.testing.assert_allclose(router.profile("twin").theta, router.profile("frugal").theta)
    assert router.forget("frugal") == n
    assert router.profile("frugal").is_cold
    with pytest.raises(DataError):
        router.import_user({"format": "something else"})
    with pytest.raises(UnknownModelError):
        router.import_user({**doc, "events": [{**doc["events"][0], "model": "gpt-5"}]})
    assert router.feedback_store.count("twin") == n


def test_the_executor_routes_for_the_user(router: Any, rb_small: Any, frugal: Any) -> None:
    from llmrouter_core.execution import Executor
    from llmrouter_core.providers.replay import replay_pool, set_replay_data

    train, test = rb_small
    frugal(router, "frugal", train.queries, 25)
    set_replay_data(test)
    try:
        ex = Executor(router, pool=replay_pool(router.pool_), keys="")
        query = next(
            q for q in test.queries if router.route(q, user="frugal").model != router.route(q).model
        )
        personal = router.route(query, user="frugal")
        assert ex.route(query, user="frugal") == personal
        assert ex.route(query) == router.route(query)
        result = ex.complete(query, user="frugal")
        assert result.model == personal.model and result.decision == personal
        assert (
            result.answer
            == test.responses[list(test.queries).index(query)][
                list(test.models).index(personal.model)
            ]
        )

        async def both() -> list[Any]:
            return list(
                await asyncio.gather(
                    ex.acomplete(query, user="frugal"), ex.acomplete(query, user="other")
                )
            )

        mine, theirs = asyncio.run(both())
        assert mine.decision == personal
        assert theirs.decision == router.route(query)
    finally:
        set_replay_data(None)


def test_the_self_check_follows_a_profile_only_once_it_predicts_the_user(
    router: Any, base: Any, rb_small: Any, frugal: Any
) -> None:
    """A consistent user's profile passes the check on their own history; one whose feedback
    is noise does not, and routes exactly as the base router though it has a profile."""
    train, test = rb_small
    frugal(router, "frugal", train.queries, 25)
    consistent = router.profile("frugal")
    assert consistent.checked is not None and consistent.trusted
    assert consistent.checked[0] - consistent.checked[1] >= router.self_check
    rng = np.random.default_rng(3)
    for q in train.queries[:25]:  # ratings that say nothing about the answers
        for model in rng.choice(router.models_, 2, replace=False):
            router.feedback("noisy", q, str(model), rating=float(rng.random()))
    noisy = router.profile("noisy")
    assert noisy.n_events == 50 and np.abs(noisy.theta).max() > 0
    assert not noisy.trusted and noisy.checked is not None
    assert noisy.checked[0] - noisy.checked[1] < router.self_check
    assert router.route_batch(test.queries, user="noisy") == base.route_batch(test.queries)
    # Without the check, the same profile is followed.
    unchecked = PersonalizedRouter(base=base, store=router.feedback_store, self_check=0)
    unchecked.fit(train)
    assert unchecked.profile("noisy").trusted and unchecked.profile("noisy").checked is None
    with pytest.raises(ValueError, match="self_check"):
        PersonalizedRouter(base=base, self_check=-1).fit(train)
