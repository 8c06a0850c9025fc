"""The stacked ensemble (``auto``) over members of several zoo families."""

from __future__ import annotations

import numpy as np
import pytest

from llmrouter_core import get_router, load_router
from llmrouter_core.routers.ensemble import DEFAULT_MEMBERS, ZooStackHead, simplex_grid

MIXED = ("knn", "irt", "cluster", "task")  # sparse, dense, dense (centred only), sparse


@pytest.fixture(scope="module")
def stacked(rb_small):  # type: ignore[no-untyped-def]
    train, _ = rb_small
    return get_router("auto", members=MIXED, weight_steps=3).fit(train)


def test_default_members_are_registered_scorers() -> None:
    router = get_router("auto")
    assert tuple(router.members) == DEFAULT_MEMBERS
    for name in DEFAULT_MEMBERS:
        router._member(name)  # raises for a name that is not a supervised scorer


def test_simplex_grid() -> None:
    grid = simplex_grid(3, 4)
    assert len(grid) == 15
    assert all(abs(sum(w) - 1.0) < 1e-12 and min(w) >= 0 for w in grid)


def test_stack_weights_and_report(stacked) -> None:  # type: ignore[no-untyped-def]
    weights = stacked.best_params_["weights"]
    assert set(weights) == {*MIXED, "prior"}
    assert abs(sum(weights.values()) - 1.0) < 1e-9
    assert all(w * 3 == round(w * 3) for w in weights.values())  # on the grid
    members = {r["member"] for r in stacked.cv_results_ if "member" in r}
    assert members == set(MIXED)
    best = max(r["cv_aiq"] for r in stacked.cv_results_ if "weights" in r)
    assert stacked.cv_aiq_ == best


def test_stack_prediction_is_the_weighted_member_average(stacked, rb_small) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    head = stacked.head_
    assert isinstance(head, ZooStackHead)
    x = stacked.embedder_.transform(test.queries)
    expected = np.zeros((len(test.queries), len(stacked.models_)))
    for member, w, mode in zip(head.heads, head.weights, head.modes, strict=True):
        if mode == 0:
            inp = x
        else:
            z = head.projector.transform(x)
            inp = z if mode == 1 else z * head.projector.scale_
        expected += w * member.predict(inp)
    b = stacked.blend_
    expected = b * expected + (1 - b) * stacked.prior_
    np.testing.assert_allclose(stacked.predict_quality(test.queries), np.clip(expected, 0, 1))


def test_stack_roundtrip_with_mixed_inputs(stacked, rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    stacked.save(tmp_path / "auto")
    loaded = load_router(tmp_path / "auto")
    np.testing.assert_allclose(
        loaded.predict_quality(test.queries), stacked.predict_quality(test.queries), atol=1e-12
    )
    assert [h.kind for h in loaded.head_.heads] == [h.kind for h in stacked.head_.heads]


def test_linear_members_on_the_projection_are_folded(rb_small, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A linear member that reads the projection is applied as one linear map of the sparse
    features: its predictions equal the two-step product to float32 rounding, the projection
    is not computed when no other member needs it, and the saved stack keeps the member."""
    from llmrouter_core.routers import heads
    from llmrouter_core.routers._zoo import Projector

    train, test = rb_small
    router = get_router("auto", members=("linear", "irt"), weight_steps=2).fit(train)
    head = router.head_
    assert isinstance(head, ZooStackHead)
    dense = [h for h, m in zip(head.heads, head.modes, strict=True) if m != 0]
    assert dense and all(type(h) is heads.LinearHead for h in dense)
    assert all(mode == 0 for _, _, mode in head._members)  # every member reads x itself
    x = router.embedder_.transform(test.queries)
    z = head.projector.transform(x)
    two_step = np.zeros((len(test.queries), len(router.models_)))
    for member, w, mode in zip(head.heads, head.weights, head.modes, strict=True):
        inp = x if mode == 0 else (z if mode == 1 else z * head.projector.scale_)
        two_step += w * member.predict(inp)
    calls: list[int] = []
    real = Projector.transform
    monkeypatch.setattr(Projector, "transform", lambda self, a: calls.append(1) or real(self, a))
    folded = head.predict(x)
    assert not calls
    np.testing.assert_allclose(folded, two_step, rtol=0, atol=1e-6)
    assert router.route_batch(test.queries[:20]) == [router.route(q) for q in test.queries[:20]]
    monkeypatch.undo()
    state = head.get_state()
    assert [h.kind for h in ZooStackHead.from_state(state).heads] == [h.kind for h in head.heads]
    assert all(h.coef is not None for h in head.heads)  # the originals, not the folded maps
