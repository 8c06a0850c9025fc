"""The torch-based scorers of the zoo: graph, RouterDC, fine-tuned encoder (``torch`` extra)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from llmrouter_core import get_router, load_router
from llmrouter_core.errors import MissingExtraError

TORCH_ROUTERS = ["graph", "routerdc", "encoder"]


def test_zoo_modules_import_torch_lazily() -> None:
    code = (
        "import sys\n"
        "import llmrouter_core.scoring.graph, llmrouter_core.scoring.contrastive\n"
        "import llmrouter_core.scoring.encoder, llmrouter_core.scoring.stack\n"
        "from llmrouter_core import list_routers\n"
        "list_routers()\n"
        "bad = {'torch', 'transformers'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", TORCH_ROUTERS)
def test_missing_torch_names_the_extra(name: str, rb_small, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now fails
    router = get_router(name)
    with pytest.raises(MissingExtraError, match=r"llmrouter-core\[torch\]"):
        router.fit(train)
    assert not router.is_fitted


torch = pytest.importorskip("torch")


@pytest.fixture
def torch_settings():  # type: ignore[no-untyped-def]
    """Runs the test with 2 intra-op threads (not the 1 the scorers train with), restoring the
    caller's setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("graph", {"n_neighbors": 10, "l2": 1e-3, "steps": 20}),
        ("routerdc", {"temperature": 0.2, "epochs": 2}),
        ("encoder", {"max_length": 16, "epochs": 1}),
    ],
)
def test_fitting_leaves_torch_settings_alone(name: str, params, rb_small, torch_settings) -> None:  # type: ignore[no-untyped-def]
    """Fitting (cross-validation included) neither changes the process's thread count nor
    draws from or reseeds torch's global random generator."""
    train, test = rb_small
    part = train.subset(np.arange(0, train.n_queries, 2))
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    router = get_router(name, **params).fit(part)
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.get_rng_state(), state)
    router.predict(test.queries[:5])
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.get_rng_state(), state)


def log_loss(q: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(q, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def test_graph_neighbours_exclude_the_query_itself(rb_small) -> None:  # type: ignore[no-untyped-def]
    from llmrouter_core.scoring.graph import _normalize_rows, neighbours

    train, _ = rb_small
    router = get_router("graph", n_neighbors=10, l2=1e-3, steps=60, blend=1.0).fit(train)
    assert router.scorer_.input == "dense_raw"
    z = router.projector_.transform(router.embedder_.transform(train.queries))
    idx, w = neighbours(z, _normalize_rows(z), 10, exclude_self=True)
    assert not np.any(idx == np.arange(len(z))[:, None])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    # Without exclusion a training query is its own nearest neighbour.
    idx_all, _ = neighbours(z, _normalize_rows(z), 1)
    assert np.mean(idx_all[:, 0] == np.arange(len(z))) > 0.9


def test_graph_learns_beyond_the_model_means(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    router = get_router("graph", n_neighbors=20, l2=1e-4, steps=200, blend=1.0).fit(train)
    z = router.projector_.transform(router.embedder_.transform(train.queries))
    head = router.scorer_.head_
    q = head.predict(z)
    np.testing.assert_allclose(q, router.predict_quality(train.queries))  # blend 1
    y = train.scores
    assert log_loss(q, y) < log_loss(np.broadcast_to(y.mean(axis=0), y.shape), y)


def test_routerdc_puts_queries_near_their_best_models(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    router = get_router("routerdc", temperature=0.2, epochs=30, blend=1.0).fit(train)
    assert router.scorer_.input == "dense"
    z = router.projector_.transform(router.embedder_.transform(train.queries))
    sims = router.scorer_.head_.similarities(z)
    y = train.scores
    best = y >= y.max(axis=1, keepdims=True)
    mixed = y.max(axis=1) > y.min(axis=1)
    assert sims[mixed][best[mixed]].mean() > sims[mixed][~best[mixed]].mean() + 0.05


@pytest.fixture(scope="module")
def encoder_router(rb_small):  # type: ignore[no-untyped-def]
    train, _ = rb_small
    return get_router("encoder", n_layers=3, max_length=32, epochs=2, batch_size=16).fit(train)


def test_encoder_saves_only_its_trained_layers(encoder_router, rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    router = encoder_router
    assert router.best_params_["epochs"] in (1, 2)
    assert router.scorer_.input == "text"
    router.save(tmp_path / "e")
    with np.load(tmp_path / "e" / "arrays.npz", allow_pickle=False) as npz:
        names = {n.removeprefix("scorer/") for n in npz.files}
    assert any(n.startswith("enc/layer2.") for n in names)  # the top of the three layers used
    assert not any(n.startswith(("enc/layer0.", "enc/layer1.")) for n in names)  # frozen
    assert not any(n.startswith(("enc/layer3.", "enc/layer5.")) for n in names)  # unused
    loaded = load_router(tmp_path / "e")
    assert loaded.scorer_.n_layers == 3
    assert len(loaded.scorer_.encoder_.model.encoder.layer) == 3
    np.testing.assert_allclose(
        loaded.predict_quality(test.queries[:20]),
        router.predict_quality(test.queries[:20]),
        atol=1e-6,
    )


def test_encoder_reads_the_end_of_long_prompts(encoder_router, rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    enc = encoder_router.scorer_.encoder_
    prompt = max(train.queries, key=len)  # a few-shot prompt: the question comes last
    ids = enc.encode([prompt])[0]
    assert len(ids) == 32
    question = enc.encode([prompt[-80:]])[0]
    assert ids[-5:] == question[-5:]
    with pytest.raises(ValueError):
        get_router("encoder", truncation="middle").fit(train)
    for bad in ({"n_layers": 0}, {"n_layers": 7}, {"n_layers": 2, "trainable_layers": 3}):
        with pytest.raises(ValueError, match="layers"):
            get_router("encoder", **bad).fit(train)


@pytest.mark.parametrize("truncation", ["tail", "head"])
def test_encoder_tokens_equal_those_of_the_whole_text(encoder_router, rb_small, truncation) -> None:  # type: ignore[no-untyped-def]
    """The fast first cut keeps exactly the tokens that tokenizing the whole prompt keeps."""
    from llmrouter_core.scoring.encoder import _Encoder

    train, test = rb_small
    texts = [
        *train.queries,
        *test.queries,
        "x" * 100 + " the question",  # no whitespace near the cut: the first try is redone
        "word " * 400,
        "a" * 5000,
    ]
    enc = encoder_router.scorer_.encoder_
    for max_length in (8, 32, 100):
        mine = _Encoder(1, 1, 2, max_length, truncation, 0)
        keep = max_length - 2
        for text, ids in zip(texts, mine.encode(texts), strict=True):
            whole = enc.tokenizer.encode(text, add_special_tokens=False).ids
            kept = whole[-keep:] if truncation == "tail" else whole[:keep]
            assert ids == [enc.cls_id, *kept, enc.sep_id]


def test_encoder_fused_inference_equals_the_bert_layers(encoder_router, rb_small) -> None:  # type: ignore[no-untyped-def]
    """Routing runs the layers as fused products; they give BERT's own layers' outputs."""
    _, test = rb_small
    enc = encoder_router.scorer_.encoder_
    by_length = sorted(test.queries, key=len)
    queries = by_length[:20] + by_length[-20:]  # short and long: a padded batch
    assert len(min(enc.encode(queries), key=len)) < enc.max_length
    assert enc.fast
    fused = enc.logits(queries, batch_size=40)
    single = np.vstack([enc.logits([q]) for q in queries[:5]])
    enc.fast = False
    try:
        layers = enc.logits(queries, batch_size=40)
    finally:
        enc.fast = True
    np.testing.assert_allclose(fused, layers, atol=1e-5)
    np.testing.assert_allclose(single, layers[:5], atol=1e-5)
    assert np.ptp(layers, axis=0).max() > 1e-3  # the queries do get different logits
