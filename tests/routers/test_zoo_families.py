"""Family-specific behaviour of the numpy scorers of the zoo, on real data slices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrouter_core import get_router, load_router
from llmrouter_core.data import RoutingData
from llmrouter_core.errors import DataError, UnknownModelError
from llmrouter_core.features import HashingEmbedder
from llmrouter_core.scoring.bandit import BanditHead
from llmrouter_core.scoring.cluster import TaskHead
from llmrouter_core.scoring.elo import bradley_terry
from llmrouter_core.scoring.hybrid import HybridHead, hybrid_labels
from llmrouter_core.scoring.latent import fit_mirt
from llmrouter_core.training.costs import CostModel, FeatureCostModel
from llmrouter_core.training.projection import Projector
from llmrouter_core.training.recipes import pairwise_loss
from llmrouter_core.training.solvers import minimize_lbfgs, soft_bce


def log_loss(q: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(q, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


@pytest.fixture(scope="module")
def dc_small(dcrouter):  # type: ignore[no-untyped-def]
    """300 dcrouter training and 150 test queries (graded scores, 9 models, task labels)."""
    train, test = dcrouter
    rng = np.random.default_rng(3)
    return (
        train.subset(np.sort(rng.choice(train.n_queries, 300, replace=False))),
        test.subset(np.sort(rng.choice(test.n_queries, 150, replace=False))),
    )


# -- optimisation and losses -------------------------------------------------------------------
def dense_features(texts: list[str], dim: int) -> np.ndarray:
    x = HashingEmbedder().fit(texts).transform(texts)
    return Projector(dim).fit(x).transform(x)


def test_lbfgs_matches_the_closed_form_of_a_ridge_problem(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    z = dense_features(train.queries, 16)
    y = train.scores[:, 0]
    lam = 3.0
    exact = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ y)

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        r = z @ w - y
        return 0.5 * float(r @ r) + 0.5 * lam * float(w @ w), z.T @ r + lam * w

    np.testing.assert_allclose(minimize_lbfgs(fun, np.zeros(z.shape[1]), 500), exact, atol=1e-4)


def test_pairwise_loss_gradient_matches_finite_differences(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    y = train.scores[:20]
    loss = pairwise_loss(y)
    s = np.random.default_rng(0).normal(size=y.shape)
    value, grad = loss(s)
    assert value > 0
    eps = 1e-6
    for i, j in [(0, 0), (3, 5), (19, 10)]:
        s2 = s.copy()
        s2[i, j] += eps
        numeric = (loss(s2)[0] - value) / eps
        assert math.isclose(numeric, grad[i, j], rel_tol=1e-3, abs_tol=1e-5)
    # Only score gaps carry preferences: shifting every logit of a query changes nothing.
    np.testing.assert_allclose(loss(s + 3.0)[0], value, rtol=1e-12)


def test_soft_bce_gradient(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    y = train.scores[:5]
    z = np.linspace(-2, 2, y.size).reshape(y.shape)
    loss, g = soft_bce(z, y)
    np.testing.assert_allclose(g, 1 / (1 + np.exp(-z)) - y)
    assert loss > 0


# -- IRT / MF ----------------------------------------------------------------------------------
def test_irt_fits_the_training_scores_better_than_the_model_means(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    z = dense_features(train.queries, 32)
    y = train.scores
    coef, icpt = fit_mirt(z, y, n_dims=2, l2=1e-3)
    q = 1 / (1 + np.exp(-(z @ coef + icpt)))
    assert log_loss(q, y) < log_loss(np.broadcast_to(y.mean(axis=0), y.shape), y) - 0.02


def test_mf_pairwise_is_calibrated_to_the_score_scale(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    router = get_router("mf", dim=8, l2=0.01, blend=1.0).fit(train)
    assert router.recipe == "pairwise"
    q = router.predict_quality(train.queries)
    # Pairwise scores carry no level; the calibration puts the mean prediction of each model
    # near its mean training score.
    np.testing.assert_allclose(q.mean(axis=0), train.scores.mean(axis=0), atol=0.05)


# -- Elo / Bradley-Terry -----------------------------------------------------------------------
def test_bradley_terry_orders_models_by_their_wins(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    means = train.scores.mean(axis=0)
    beta = bradley_terry(means[None, :])[0]
    for a in range(len(means)):
        for b in range(len(means)):
            if means[a] > means[b] + 1e-9:
                assert beta[a] > beta[b]
    # Only score differences matter: shifting every score leaves the ratings unchanged.
    np.testing.assert_allclose(bradley_terry(means[None, :] - 0.1)[0], beta, atol=1e-9)
    # Equal records give equal ratings.
    np.testing.assert_allclose(bradley_terry(np.full((1, 4), 0.5))[0], 0.0, atol=1e-12)


def _bradley_terry_mm(ms: np.ndarray, n_iter: int, prior: float = 0.05) -> np.ndarray:
    """The minorisation-maximisation iterations for the Bradley-Terry fit (Hunter 2004), as a
    reference: a different algorithm for the same maximum-likelihood strengths."""
    k, m = ms.shape
    wins = 0.5 + 0.5 * (ms[:, :, None] - ms[:, None, :]) + 0.5 * prior
    off = ~np.eye(m, dtype=bool)
    w_sum = np.where(off, wins, 0.0).sum(axis=2)
    p = np.ones((k, m))
    for _ in range(n_iter):
        p = w_sum / np.where(off, (1.0 + prior) / (p[:, :, None] + p[:, None, :]), 0.0).sum(2)
        p /= np.exp(np.log(p).mean(axis=1, keepdims=True))
    return np.log(p)


def test_bradley_terry_is_the_maximum_likelihood_fit(rb_small) -> None:  # type: ignore[no-untyped-def]
    """Newton's steps reach the strengths that the minorisation-maximisation algorithm
    converges to: on real similarity-weighted records, on random ones, and on lopsided ones
    (0/1 scores, where MM needs thousands of iterations), and the likelihood's gradient is
    zero there."""
    train, _ = rb_small
    rng = np.random.default_rng(0)
    y = train.scores
    w = rng.dirichlet(np.full(y.shape[0], 0.05), size=40)  # a few battles dominate each row
    cases = [w @ y, rng.random((40, 7)), (rng.random((40, 5)) > 0.5).astype(float), np.eye(4)]
    for ms in cases:
        beta = bradley_terry(ms)
        np.testing.assert_allclose(beta, _bradley_terry_mm(ms, 20_000), atol=1e-8)
        np.testing.assert_allclose(beta.sum(axis=1), 0.0, atol=1e-12)
        m = ms.shape[1]
        wins = (0.5 + 0.5 * (ms[:, :, None] - ms[:, None, :]) + 0.025) * ~np.eye(m, dtype=bool)
        p_win = 1.0 / (1.0 + np.exp(beta[:, None, :] - beta[:, :, None]))
        grad = wins.sum(axis=2) - 1.05 * (p_win * ~np.eye(m, dtype=bool)).sum(axis=2)
        np.testing.assert_allclose(grad, 0.0, atol=1e-10)
    # Rows are independent tournaments: a batch equals its rows fitted one by one.
    np.testing.assert_allclose(
        bradley_terry(cases[1]), np.vstack([bradley_terry(r) for r in cases[1]]), atol=1e-13
    )
    assert bradley_terry(np.empty((0, 3))).shape == (0, 3)
    with pytest.raises(ValueError, match="prior"):
        bradley_terry(cases[1], prior=0.0)


def test_elo_quality_is_global_and_follows_the_ratings(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("elo").fit(train)
    q = router.predict_quality(test.queries[:30])
    np.testing.assert_allclose(q, np.broadcast_to(q[0], q.shape))
    ratings = np.asarray(router.scorer_.ratings_)
    assert ratings.shape == (len(router.models_),)
    assert np.all(np.diff(q[0][np.argsort(ratings)]) >= -1e-12)


def test_sw_ranking_follows_the_most_similar_battles(rb_small) -> None:  # type: ignore[no-untyped-def]
    """With sharp similarity weights, the ratings of a training query come from itself and
    its near-duplicates: the models that answered it rank above those that did not."""
    train, _ = rb_small
    router = get_router("sw_ranking", sharpness=30.0, blend=1.0).fit(train)
    q = router.predict_quality(train.queries)
    y = train.scores
    mixed = y.max(axis=1) > y.min(axis=1)
    good = np.where(y[mixed] == 1, q[mixed], np.nan)
    bad = np.where(y[mixed] == 0, q[mixed], np.nan)
    assert np.nanmean(good) > np.nanmean(bad) + 0.05


# -- Hybrid-LLM --------------------------------------------------------------------------------
def test_hybrid_labels(dc_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = dc_small
    y = train.scores
    large = int(np.argmax(y.mean(axis=0)))
    det = hybrid_labels(y, large, "deterministic")
    np.testing.assert_array_equal(det[:, 0], (y[:, 0] >= y[:, large]).astype(float))
    assert np.all(det[:, large] == 1)
    prob = hybrid_labels(y, large, "probabilistic")
    binary = np.all(np.isin(y, [0.0, 1.0]), axis=1)
    np.testing.assert_allclose(prob[binary], det[binary])  # the same on 0/1 scores
    assert np.all((prob >= 0) & (prob <= 1))
    trans = hybrid_labels(y, large, "transformed")
    for j in range(y.shape[1]):
        if j != large:  # the relaxation only ever makes labels more balanced
            assert abs(trans[:, j].mean() - 0.5) <= abs(det[:, j].mean() - 0.5) + 1e-12


def test_hybrid_router_scales_the_large_model(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("hybrid", label="transformed", alpha=10.0, blend=1.0).fit(train)
    large = train.models[int(np.argmax(train.scores.mean(axis=0)))]
    head = router.scorer_.head_
    assert isinstance(head, HybridHead)
    assert router.models_[head.large] == large
    assert router.scorer_.large_ == head.large
    q = router.predict_quality(test.queries)
    j = head.large
    np.testing.assert_allclose(q[:, j], train.scores[:, j].mean())
    assert np.all(q <= q[:, [j]] + 1e-12)
    with pytest.raises(UnknownModelError):
        get_router("hybrid", large="no-such-model").fit(train)


# -- CARROT: per-query cost ---------------------------------------------------------------------
def test_feature_cost_model_learns_answer_length_by_task(routerbench) -> None:  # type: ignore[no-untyped-def]
    """Code questions are short prompts with long answers: the prompt-length cost model gets
    them wrong, the feature cost model does not."""
    train, test = routerbench
    rng = np.random.default_rng(0)
    tr = train.subset(np.sort(rng.choice(train.n_queries, 600, replace=False)))
    router = get_router("carrot", estimator="linear", alpha=10.0).fit(tr)
    assert isinstance(router.cost_model_, FeatureCostModel)
    tokens = CostModel().fit(tr)
    err_feat = np.abs(router.predict_cost(test.queries) - test.costs).mean()
    err_tok = np.abs(tokens.predict(test.queries) - test.costs).mean()
    x = router.embedder_.transform(test.queries)
    np.testing.assert_allclose(
        router.cost_model_.predict(test.queries, x), router.predict_cost(test.queries)
    )
    assert err_feat < 0.8 * err_tok
    gpt4 = test.models.index("gpt-4-1106-preview")
    tasks = np.asarray(test.tasks)
    pred = router.predict_cost(test.queries)[:, gpt4]
    assert pred[tasks == "mbpp"].mean() > pred[tasks == "winogrande"].mean()
    assert test.costs[tasks == "mbpp", gpt4].mean() > test.costs[tasks == "winogrande", gpt4].mean()


def test_feature_cost_model_keeps_exact_token_costs(dc_small) -> None:  # type: ignore[no-untyped-def]
    """dcrouter costs come from prices x tokens: nothing to correct, none learned."""
    train, test = dc_small
    router = get_router("carrot", estimator="knn", n_neighbors=25).fit(train)
    assert router.cost_model_.alpha_choice_ == [None] * train.n_models
    np.testing.assert_allclose(
        router.predict_cost(test.queries), CostModel().fit(train).predict(test.queries)
    )


# -- clusters and tasks ------------------------------------------------------------------------
def test_task_router_recognises_tasks(dc_small) -> None:  # type: ignore[no-untyped-def]
    train, test = dc_small
    router = get_router("task", alpha=1e-5, blend=1.0).fit(train)
    head = router.scorer_.head_
    assert isinstance(head, TaskHead)
    x = router.embedder_.transform(test.queries)
    names = np.unique(np.asarray(train.tasks))
    pred = names[head.task_probabilities(x).argmax(axis=1)]
    known = np.isin(np.asarray(test.tasks), names)
    accuracy = float(np.mean(pred[known] == np.asarray(test.tasks)[known]))
    assert accuracy > 0.6  # 15 tasks: chance is below 0.15
    np.testing.assert_allclose(head.task_probabilities(x).sum(axis=1), 1.0)


def test_task_router_without_task_labels_uses_clusters(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    bare = RoutingData(
        query_ids=train.query_ids,
        queries=train.queries,
        models=train.models,
        scores=train.scores,
        costs=train.costs,
    )
    router = get_router("task", alpha=1e-5, n_clusters=5).fit(bare)
    assert router.scorer_.head_.means.shape == (5, train.n_models)
    assert router.route(test.queries[0]).model in train.models


def test_cluster_predictions_are_cluster_means(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("cluster", n_clusters=4, blend=1.0).fit(train)
    q = router.predict_quality(test.queries)
    assert len({tuple(np.round(row, 12)) for row in q}) <= 4


# -- bandit ------------------------------------------------------------------------------------
def test_bandit_learns_from_feedback_and_keeps_it(rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("bandit", l2=100.0, exploration=0.0).fit(train)
    query = test.queries[0]
    weak = int(np.argmin(train.scores.mean(axis=0)))
    model = router.models_[weak]
    before = router.predict_quality([query])[0, weak]
    for _ in range(20):
        router.feedback(query, model, 1.0)
    after = router.predict_quality([query])[0, weak]
    assert after > before + 0.05
    assert router.scorer_.n_feedback_ == 20
    router.save(tmp_path / "b")
    loaded = load_router(tmp_path / "b")
    assert loaded.scorer_.n_feedback_ == 20
    np.testing.assert_allclose(loaded.predict_quality([query]), router.predict_quality([query]))


def test_bandit_rejects_bad_feedback_without_changing_state(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("bandit", l2=100.0).fit(train)
    head = router.scorer_.head_
    assert isinstance(head, BanditHead)
    state = {k: v.copy() for k, v in head.get_state().items()}
    for model, score in [
        ("no-such-model", 1.0),
        (train.models[0], 1.5),
        (train.models[0], float("nan")),
        (train.models[0], "good"),
    ]:
        with pytest.raises((UnknownModelError, DataError)):
            router.feedback_batch(
                [test.queries[0], test.queries[1]], [train.models[0], model], [1.0, score]
            )
    for k, v in router.scorer_.head_.get_state().items():
        np.testing.assert_array_equal(v, state[k])
    assert router.scorer_.n_feedback_ == 0
    with pytest.raises(DataError):
        router.feedback("   ", train.models[0], 1.0)


def test_bandit_exploration(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    mean = get_router("bandit", l2=100.0, exploration=0.0).fit(train)
    ucb = get_router("bandit", l2=100.0, exploration=0.5).fit(train)
    q0, q1 = mean.predict_quality(test.queries), ucb.predict_quality(test.queries)
    assert np.all(q1 >= q0 - 1e-12) and np.any(q1 > q0)
    ts = get_router("bandit", l2=100.0, strategy="thompson", exploration=0.5).fit(train)
    a = ts.predict_quality(test.queries[:5])
    np.testing.assert_array_equal(a, ts.predict_quality(test.queries[:5]))  # reproducible
    assert not np.allclose(a, q0[:5])  # and exploring
