"""The stacked ensemble (``auto``, the stack scorer) over members of several zoo families."""

from __future__ import annotations

import numpy as np
import pytest

from llmrouter_core import get_router, load_router
from llmrouter_core.features import HashingEmbedder
from llmrouter_core.scoring import get_scorer
from llmrouter_core.scoring.stack import DEFAULT_MEMBERS, StackScorer
from llmrouter_core.training.projection import Projector
from llmrouter_core.training.selection import simplex_grid

# features, dense (standardised), dense_raw (centred only), features
MIXED = ("knn", "irt", "cluster", "task")
STEPS = 4


@pytest.fixture(scope="module")
def stacked(rb_small):  # type: ignore[no-untyped-def]
    train, _ = rb_small
    # On this slice the highest cross-validated AIQ (no guard) keeps a member on the features
    # and one on the projection.
    return get_router("auto", members=MIXED, weight_steps=STEPS, guard=0.0).fit(train)


def test_default_members_are_registered_scorers() -> None:
    router = get_router("auto")
    assert isinstance(router.scorer, StackScorer)
    assert tuple(router.scorer.members) == DEFAULT_MEMBERS
    for name in DEFAULT_MEMBERS:
        member = get_scorer(name)  # raises for a name that is not a registered scorer
        assert member.input != "text"
    router.scorer.check_params()  # every default member may be a member


def test_router_names_as_members_are_translated() -> None:
    """The router names ``linear`` and ``mf`` stand for their scorers; scorer names pass."""
    router = get_router("auto", members=("linear", "mf", "irt", "knn"))
    assert tuple(router.scorer.members) == ("ridge", "bilinear", "irt", "knn")


def test_simplex_grid() -> None:
    grid = simplex_grid(3, 4)
    assert len(grid) == 15
    assert all(abs(sum(w) - 1.0) < 1e-12 and min(w) >= 0 for w in grid)
    assert len(set(grid)) == len(grid)


def test_stack_weights_and_report(stacked) -> None:  # type: ignore[no-untyped-def]
    weights = stacked.best_params_["weights"]
    assert set(weights) == {*MIXED, "prior"}
    assert abs(sum(weights.values()) - 1.0) < 1e-9
    assert all(w * STEPS == round(w * STEPS) for w in weights.values())  # on the grid
    assert set(stacked.best_params_["members"]) == set(MIXED)
    members = {r["member"] for r in stacked.cv_results_ if "member" in r}
    assert members == set(MIXED)
    best = max(r["criterion"] for r in stacked.cv_results_ if "weights" in r)
    assert stacked.cv_aiq_ == best  # without a guard, the criterion is the cross-validated AIQ
    assert stacked.margin_ == 0.0
    # The blend is the members' share; the fitted members are those with positive weight,
    # their weights normalised.
    scorer = stacked.scorer_
    assert stacked.blend_ == pytest.approx(1.0 - weights["prior"])
    kept = [w for name, w in weights.items() if name != "prior" and w > 0]
    assert len(scorer.members_) == len(kept) == len(scorer.weights_)
    np.testing.assert_allclose(scorer.weights_, np.asarray(kept) / sum(kept))


def test_stack_prediction_is_the_weighted_member_average(stacked, rb_small) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    scorer = stacked.scorer_
    assert isinstance(scorer, StackScorer)
    inputs = {m.input for m in scorer.members_}
    assert len(inputs) > 1, "the slice should keep members of different inputs"
    x = stacked.embedder_.transform(test.queries)
    z = scorer.projector_.transform(x)
    expected = np.zeros((len(test.queries), len(stacked.models_)))
    for member, w in zip(scorer.members_, scorer.weights_, strict=True):
        if member.input == "features":
            inp = x
        else:
            inp = z if member.input == "dense" else z * scorer.projector_.scale_
        expected += w * member.predict(inp)
    b = stacked.blend_
    expected = b * expected + (1 - b) * stacked.prior_
    np.testing.assert_allclose(stacked.predict_quality(test.queries), np.clip(expected, 0, 1))


def test_stack_reads_each_members_input(rb_small) -> None:  # type: ignore[no-untyped-def]
    """Members on the features, the standardised projection and the centred projection, with
    weights given: the stack's prediction is their weighted sum, and its saved state too."""
    train, test = rb_small
    embedder = HashingEmbedder().fit(train.queries)
    x, x_test = embedder.transform(train.queries), embedder.transform(test.queries)
    proj = Projector(32, random_state=0).fit(x)
    z = proj.transform(x)
    members = [
        get_scorer("knn", n_neighbors=25).fit(x, train.scores),
        get_scorer("irt", n_dims=2, l2=0.01).fit(z, train.scores),
        get_scorer("cluster", n_clusters=4).fit(proj.centred(z), train.scores),
    ]
    assert [m.input for m in members] == ["features", "dense", "dense_raw"]
    stack = StackScorer(members=("knn", "irt", "cluster"))
    stack.members_, stack.weights_ = members, [0.2, 0.3, 0.5]
    stack.projector_, stack.n_outputs_ = proj, train.n_models
    z_test = proj.transform(x_test)
    expected = (
        0.2 * members[0].predict(x_test)
        + 0.3 * members[1].predict(z_test)
        + 0.5 * members[2].predict(z_test * proj.scale_)
    )
    np.testing.assert_allclose(stack.predict(x_test), expected, atol=1e-12)
    meta, arrays = stack.get_state()
    again = StackScorer()
    again.set_state(meta, arrays)
    np.testing.assert_allclose(again.predict(x_test), expected, atol=1e-12)


def test_stack_roundtrip_with_mixed_inputs(stacked, rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    stacked.save(tmp_path / "auto")
    loaded = load_router(tmp_path / "auto")
    np.testing.assert_allclose(
        loaded.predict_quality(test.queries), stacked.predict_quality(test.queries), atol=1e-12
    )
    assert [type(m) for m in loaded.scorer_.members_] == [type(m) for m in stacked.scorer_.members_]
    assert [m.get_params() for m in loaded.scorer_.members_] == [
        m.get_params() for m in stacked.scorer_.members_
    ]
    assert loaded.scorer_.weights_ == stacked.scorer_.weights_


def test_stack_without_dense_members_keeps_no_projection(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("auto", members=("linear", "knn"), weight_steps=2).fit(train)
    assert router.scorer_.projector_ is None
    assert router.projector_ is None
    q = router.predict_quality(test.queries[:10])
    assert q.shape == (10, train.n_models)


def test_the_guard_keeps_the_prior_without_evidence(rb_small) -> None:  # type: ignore[no-untyped-def]
    """Scores that carry no signal (each row's scores permuted between queries): the guarded
    stack stays with the prior (the best single model per budget), and its quality-seeking end
    is the best training model's."""
    train, test = rb_small
    rng = np.random.default_rng(0)
    noise = train.subset(np.arange(train.n_queries))
    noise.scores = train.scores[rng.permutation(train.n_queries)]
    router = get_router("auto", members=("ridge", "knn")).fit(noise)
    assert router.best_params_["weights"]["prior"] == 1.0 and router.blend_ == 0.0
    decisions = router.route_batch(test.queries[:50], cost_weight=0.0)
    assert {d.model for d in decisions} == {noise.models[int(np.argmax(noise.mean_scores()))]}
    with pytest.raises(ValueError, match="guard"):
        get_router("auto", guard=-1.0).fit(train)


def test_the_anchor_margin_holds_at_every_cost_weight(rb_small) -> None:  # type: ignore[no-untyped-def]
    """The anchor is the best training model, or per budget the best single model for the
    budget (the prior's choice at each cost weight): a margin of 1 on the latter routes as
    the prior everywhere on the curve, and a small margin leaves the anchor only for a
    predicted utility gain above it."""
    from llmrouter_core.policy import choose, utilities

    train, test = rb_small
    router = get_router("linear").fit(train)
    q, c = router.predict(test.queries)
    prior = np.broadcast_to(router.prior_, q.shape)
    weights = [float(w) for w in router.sweep(9)]
    router.margin_, router.anchor_per_budget_ = 1.0, True
    for w, picks in zip(weights, router.choices(q, c, weights), strict=True):
        np.testing.assert_array_equal(picks, choose(prior, c, w))
    rows = np.arange(q.shape[0])
    for per_budget in (True, False):
        router.margin_, router.anchor_per_budget_ = 0.02, per_budget
        left = 0
        for w, picks in zip(weights[1:], router.choices(q, c, weights[1:]), strict=True):
            anchor = choose(prior, c, w if per_budget else 0.0)
            u = utilities(q, c, w)
            moved = picks != anchor
            left += int(moved.sum())
            assert np.all(u[rows, picks][moved] > u[rows, anchor][moved] + 0.02)
            # the batch decisions agree with the curve's choices
            decided = [d.model for d in router.route_batch(test.queries, cost_weight=w)]
            assert decided == [router.models_[int(j)] for j in picks]
        assert left > 0  # the predictions do move some queries off the anchor
