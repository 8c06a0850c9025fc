"""The graph learner (``learner="graph"``) on real RouterBench queries: it learns a user's
vendor preference from other users' feedback and the user's own few events, cold start is
exact, a saved router routes identically in a new process, a user's pairs and profile never
read another user's events, and without torch it says which extra to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import llmrouter_core as lr
from llmrouter_core.errors import DataError, MissingExtraError
from llmrouter_core.personalized import PersonalizedRouter
from llmrouter_core.personalized.learner import Evidence

pytest.importorskip("torch")

HERE = Path(__file__).resolve().parent
FANS = {"mistral": ("mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat")}
LIKED = FANS["mistral"]


def teach(router: Any, user: str, liked: tuple[str, ...], queries: Any, seed: int) -> None:
    """A user who prefers ``liked`` models: on each query, the routed answer and a random
    other one are rated, 0.9 if their model is liked, else 0.2."""
    rng = np.random.default_rng(seed)
    models = router.models_
    for q in queries:
        chosen = router.route(q, user=user).model
        other = [m for m in models if m != chosen][int(rng.integers(len(models) - 1))]
        for model in (chosen, other):
            router.feedback(user, q, model, rating=0.9 if model in liked else 0.2)


@pytest.fixture(scope="module")
def graph(base: Any, rb_small: Any) -> Any:
    """A graph-learner router trained on 16 users: half like Mistral's models, half Claude."""
    train, _ = rb_small
    router = PersonalizedRouter(base=base, learner="graph").fit(train)
    queries = list(train.queries)
    claude = tuple(m for m in router.models_ if m.startswith("claude"))
    for u in range(16):
        liked = LIKED if u % 2 == 0 else claude
        teach(router, f"train-{u}", liked, queries[u * 15 : u * 15 + 60], seed=u)
    history = router.train_learner()
    assert 0 <= history["best_epoch"] < len(history["validation"])
    return router


def test_a_new_user_who_likes_a_vendor_gets_it_more_after_feedback(
    graph: Any, rb_small: Any
) -> None:
    test = list(rb_small[1].queries)
    before = graph.route_batch(test[40:], user="newcomer")
    assert before == graph.base_.route_batch(test[40:])  # cold start: the base's decisions
    teach(graph, "newcomer", LIKED, test[:40], seed=99)
    profile = graph.profile("newcomer")
    assert profile.n_events >= 10 and profile.trusted
    after = graph.route_batch(test[40:], user="newcomer")
    share = [np.mean([d.model in LIKED for d in ds]) for ds in (before, after)]
    assert share[1] > share[0] + 0.3
    assert after[0].extra["user"] == "newcomer"
    # Nobody else moved.
    assert graph.route_batch(test[40:], user="someone") == before


def test_cold_start_is_exact_even_before_training(base: Any, rb_small: Any) -> None:
    train, test = rb_small
    router = PersonalizedRouter(base=base, learner="graph").fit(train)
    teach(router, "u", LIKED, train.queries[:30], seed=1)  # untrained weights: no change
    for kwargs in ({}, {"cost_weight": 50.0}, {"budget": 0.001}):
        assert router.route_batch(test.queries, user="u", **kwargs) == base.route_batch(
            test.queries, **kwargs
        )
        assert router.route_batch(test.queries, **kwargs) == base.route_batch(
            test.queries, **kwargs
        )
    with pytest.raises(DataError, match="at least 2 users"):
        router.train_learner()


def test_a_profile_never_reads_another_users_events(graph: Any, rb_small: Any) -> None:
    """Pairs and profiles are per user: another user's opposite feedback on the same queries
    changes neither the user's profile nor the training samples built from the user."""
    queries = list(rb_small[1].queries[:30])
    claude = tuple(m for m in graph.models_ if m.startswith("claude"))
    teach(graph, "alone", LIKED, queries, seed=5)
    for q in queries[:8]:  # and pairwise choices
        graph.feedback("alone", q, LIKED[0], preferred_over=claude[0])
    theta = graph.profile("alone").theta.copy()
    teach(graph, "opposite", claude, queries, seed=5)
    for q in queries[:8]:
        graph.feedback("opposite", q, claude[0], preferred_over=LIKED[0])
    graph._reset_profiles()  # recomputed from the store, not read from the cache
    np.testing.assert_array_equal(graph.profile("alone").theta, theta)
    # Training samples: every sample's context edges come from the sample's own user (here
    # told apart by their costs), and never include the event the sample scores.
    store = graph.feedback_store
    evidence = [graph._evidence(store.events(u))[1] for u in ("alone", "opposite")]
    marked = [
        Evidence(ev.quality, np.full_like(ev.cost, float(i + 1)), *_rest(ev))
        for i, ev in enumerate(evidence)
    ]
    ctx, target = graph.learner_._samples(marked, 0.0)
    for u in range(ctx.n_users):
        own = ctx.cost[ctx.user == u]
        assert own.size and np.all(own == target.cost[u, 0])
    alone = evidence[0]
    assert ctx.n_users == alone.n - 1 + evidence[1].n - 1
    # A sample's context is the user's events before the scored one (at most k): one edge
    # per rating, two per pairwise choice (both answers of the same user's choice).
    sizes = np.bincount(ctx.user, minlength=ctx.n_users)
    edges = 1 + (alone.other >= 0)
    k = graph.learner_.k
    assert list(sizes[: alone.n - 1]) == [edges[max(0, t - k) : t].sum() for t in range(1, alone.n)]


def _rest(ev: Evidence) -> tuple[Any, ...]:
    return ev.cluster, ev.model, ev.rating, ev.other


def test_saved_graph_routes_identically_in_a_new_process(
    graph: Any, rb_small: Any, tmp_path: Path
) -> None:
    test = list(rb_small[1].queries)
    teach(graph, "saved-user", LIKED, test[:40], seed=7)
    mine = [d.model for d in graph.route_batch(test[40:], user="saved-user")]
    assert mine != [d.model for d in graph.base_.route_batch(test[40:])]
    graph.save(tmp_path / "router")
    doc = json.loads((tmp_path / "router" / "router.json").read_text(encoding="utf-8"))
    assert doc["wrapper"]["graph"]["trained"] and doc["wrapper"]["params"]["learner"] == "graph"
    # A SQLite store holding the saved user's events, for the new process.
    db = tmp_path / "fb.db"
    loaded = lr.load_router(tmp_path / "router", store=f"sqlite:///{db}")
    loaded.add_feedback(graph.feedback_store.events("saved-user"))
    (tmp_path / "q.json").write_text(json.dumps(test[40:]), encoding="utf-8")
    args = ["route", tmp_path / "router", db, tmp_path / "q.json", "saved-user"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(HERE / "feedback_worker.py"), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == mine


def test_graph_without_torch_names_the_extra(
    base: Any, rb_small: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    with pytest.raises(MissingExtraError, match=r"llmrouter-core\[torch\]"):
        PersonalizedRouter(base=base, learner="graph").fit(rb_small[0])
    offsets = PersonalizedRouter(base=base).fit(rb_small[0])  # the default needs no torch
    with pytest.raises(DataError, match="no shared weights"):
        offsets.train_learner()
