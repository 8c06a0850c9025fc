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
