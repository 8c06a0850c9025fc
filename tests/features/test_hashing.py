"""HashingEmbedder (the default): fit/transform on real prompts, state, edge inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from llmrouter_core.errors import NotFittedError
from llmrouter_core.features import Embedder, HashingEmbedder, get_embedder

N = 2**14


@pytest.fixture(scope="module")
def fitted(train_prompts: list[str]) -> HashingEmbedder:
    return HashingEmbedder(n_features=N).fit(train_prompts)


def test_registry_default() -> None:
    e = get_embedder()
    assert isinstance(e, HashingEmbedder) and isinstance(e, Embedder)
    assert e.name == "hashing" and e.sparse is True
    with pytest.raises(ValueError, match="unknown embedder"):
        get_embedder("word2vec")


def test_not_fitted() -> None:
    e = HashingEmbedder(n_features=N)
    with pytest.raises(NotFittedError):
        e.transform(["x"])
    with pytest.raises(NotFittedError):
        e.get_state()


def test_fit_transform(fitted: HashingEmbedder, routerbench_sample: tuple) -> None:
    texts, tasks = routerbench_sample
    x = fitted.transform(texts)
    assert sp.issparse(x) and x.shape == (len(texts), N)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1))).ravel()
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    idf = fitted.get_state()["idf"]
    assert idf.shape == (N,) and idf.dtype == np.float32 and (idf >= 1.0).all()
    # Words common to every prompt weigh less than rare ones.
    assert idf.min() < idf.max()
    # Nearest neighbour of each prompt is of the same task.
    dense = x.toarray()
    sim = dense @ dense.T
    np.fill_diagonal(sim, -np.inf)
    same = np.mean([tasks[i] == tasks[j] for i, j in enumerate(sim.argmax(axis=1))])
    assert same >= 0.95
    np.testing.assert_array_equal(fitted.transform(texts).toarray(), dense)


def test_state_round_trip(fitted: HashingEmbedder, routerbench_sample: tuple) -> None:
    texts, _ = routerbench_sample
    cfg = json.loads(json.dumps(fitted.get_config()))  # JSON-safe
    clone = HashingEmbedder(**cfg)
    clone.set_state({k: np.array(v) for k, v in fitted.get_state().items()})
    np.testing.assert_array_equal(
        clone.transform(texts[:10]).toarray(), fitted.transform(texts[:10]).toarray()
    )
    assert clone.get_config() == fitted.get_config()


def test_huge_and_empty_inputs(fitted: HashingEmbedder, mbpp_prompts: list[str]) -> None:
    huge = mbpp_prompts[0] + " " + "lorem ipsum dolor " * 200_000  # 3.6M characters
    x = fitted.transform([huge, "", "   "])
    assert x.shape == (3, N)
    # Only the first max_chars characters count.
    cut = fitted.transform([huge[: fitted.max_chars]])
    np.testing.assert_array_equal(x[0].toarray(), cut.toarray())
    assert x[1].nnz == 0 and x[2].nnz == 0  # nothing to hash: an all-zero row
    assert fitted.transform([]).shape == (0, N)


def test_char_ngrams_catch_typos(train_prompts: list[str]) -> None:
    chars = HashingEmbedder(n_features=N, char_ngrams=True).fit(train_prompts)
    words_only = HashingEmbedder(n_features=N, char_ngrams=False).fit(train_prompts)
    a, b = "Write a python function to reverse a string.", "Writ a pythn functon to revers a strng."
    x = chars.transform([a, b]).toarray()
    y = words_only.transform([a, b]).toarray()
    assert float(x[0] @ x[1]) > float(y[0] @ y[1])


def test_transform_right_after_fit_reuses_the_counts(train_prompts: list[str]) -> None:
    reference = HashingEmbedder(n_features=N).fit(train_prompts)
    expected = reference.transform(list(train_prompts)).toarray()  # a copy: counts afresh
    emb = HashingEmbedder(n_features=N)
    np.testing.assert_array_equal(emb.fit_transform(train_prompts).toarray(), expected)
    # fit, then the same texts (a copied list of the same strings): the kept counts.
    emb.fit(train_prompts)
    np.testing.assert_array_equal(emb.transform(list(train_prompts)).toarray(), expected)
    # The counts are used once; later calls count again and agree.
    np.testing.assert_array_equal(emb.transform(train_prompts).toarray(), expected)
    # fit, then other texts first: the kept counts are dropped, never mixed up.
    emb.fit(train_prompts)
    other = emb.transform(train_prompts[:3])
    np.testing.assert_array_equal(other.toarray(), expected[:3])
    np.testing.assert_array_equal(emb.transform(train_prompts).toarray(), expected)


def test_equal_but_distinct_texts_are_counted_afresh(train_prompts: list[str]) -> None:
    emb = HashingEmbedder(n_features=N).fit(train_prompts)
    copies = ["".join(list(t)) for t in train_prompts]  # equal strings, other objects
    reference = HashingEmbedder(n_features=N).fit(train_prompts)
    np.testing.assert_array_equal(
        emb.transform(copies).toarray(), reference.transform(copies).toarray()
    )


def test_word_counts_equal_scikit_learns_hashing_vectorizer(train_prompts: list[str]) -> None:
    """The fast counting path gives exactly scikit-learn's hashed word 1-2-gram counts, with
    cold caches and with lines and blocks of lines cached."""
    from sklearn.feature_extraction.text import HashingVectorizer

    from llmrouter_core.features import hashing

    texts = [
        *train_prompts[:150],
        "",
        "a b c",
        "x",
        "Größe straße ÉCOLE 東京 tokyo_2024 it's e-mail a1 __init__",
        "tabs\tand\nnew lines, punctuation!!! and    spaces",
        # Bigrams across lines, across token-less lines, and Windows line ends.
        "first line ends here\nsecond starts\n\n!!\nx\nafter blanks\r\nwindows line\r\n",
        "\n\nleading newlines\nrepeated line\nrepeated line\n",
        # Blocks between blank lines: repeated (so they are cached whole), token-less, with
        # runs of newlines, and a repeated block next to new ones.
        "shared block one\nof two lines\n\nfresh question here",
        "shared block one\nof two lines\n\nanother fresh question\n\n\n!!\n\n",
        "x shared block one\nof two lines\n\nshared block one\nof two lines\n\n\n\nend",
        "?\n!!\n\n\n\nshared block one\nof two lines",
    ]
    hashing.clear_caches()  # cold caches first; the second n repeats every text warm
    for n in (N, N, 2**18):
        ours = HashingEmbedder(n_features=n, char_ngrams=False)._word_counts(
            [t.lower() for t in texts]
        )
        ref = HashingVectorizer(
            ngram_range=(1, 2), n_features=n, alternate_sign=False, norm=None, lowercase=False
        ).transform([t.lower() for t in texts])
        assert (ours != ref.astype(np.float32)).nnz == 0
        # One text alone takes the single-document path (one sort instead of scipy's
        # duplicate summing): the same row, in canonical form.
        for i, text in enumerate(texts):
            alone = HashingEmbedder(n_features=n)._word_counts([text.lower()])
            assert alone.has_canonical_format
            assert alone.indices.dtype == alone.indptr.dtype == np.int32
            assert (alone != ref[i].astype(np.float32)).nnz == 0
    # The repeated block was kept whole; a block seen once, with new lines, was not.
    assert "shared block one\nof two lines" in hashing._LINE_CACHE[N]
    assert "shared block one\nof two lines" in hashing._LINE_CACHE[2**18]
    assert not any("fresh question" in key and "\n" in key for key in hashing._LINE_CACHE[N])


def test_sorted_counts_equal_scipys_duplicate_sum() -> None:
    from llmrouter_core.features.hashing import _sorted_counts

    rng = np.random.default_rng(0)
    for size in (0, 1, 2, 50, 3000):
        slots = rng.integers(0, 300, size=size).astype(np.int32)
        ref = sp.csr_matrix(
            (np.ones(size, dtype=np.float32), slots.copy(), np.asarray([0, size])), shape=(1, 300)
        )
        ref.sum_duplicates()
        values, counts = _sorted_counts(slots)
        np.testing.assert_array_equal(values, ref.indices)
        np.testing.assert_array_equal(counts, ref.data)
        assert counts.dtype == np.float32


def test_line_cache_leaves_features_unchanged(train_prompts: list[str]) -> None:
    """Repeated lines are looked up, not rescanned: counts are equal with a cold cache, a warm
    one, and a cache cleared mid-stream because it is full."""
    from llmrouter_core.features import hashing

    texts = [*train_prompts, "one line\ntwo line\n\none line", "x\n\ny z"]
    emb = HashingEmbedder(n_features=N)
    hashing.clear_caches()
    cold = emb._word_counts(texts)
    assert hashing._LINE_CACHE[N]  # lines were cached
    warm = emb._word_counts(texts)
    assert (cold != warm).nnz == 0
    limit = hashing._LINE_CACHE_CHARS
    try:
        hashing._LINE_CACHE_CHARS = 500  # forces clears while counting
        hashing.clear_caches()
        small = emb._word_counts(texts)
        assert sum(map(len, hashing._LINE_CACHE[N])) <= 500
    finally:
        hashing._LINE_CACHE_CHARS = limit
    assert (cold != small).nnz == 0


def test_cache_snapshot_restores_the_caches(train_prompts: list[str]) -> None:
    """A snapshot restores the caches as they were: lines and n-grams added after it are
    forgotten, those before it kept, and a later change to the live caches leaves the snapshot
    alone."""
    from llmrouter_core.features import hashing

    emb = HashingEmbedder(n_features=N)
    hashing.clear_caches()
    half = len(train_prompts) // 2
    first, later = train_prompts[:half], train_prompts[half:]
    before = emb._word_counts(first)
    snap = hashing.cache_snapshot()
    lines, slots = set(hashing._LINE_CACHE[N]), set(hashing._SLOT_CACHE[N])
    emb._word_counts(later)
    assert set(hashing._LINE_CACHE[N]) > lines  # the later texts added lines
    hashing.restore_caches(snap)
    assert set(hashing._LINE_CACHE[N]) == lines
    assert set(hashing._SLOT_CACHE[N]) == slots
    hashing._LINE_CACHE[N].clear()
    hashing.restore_caches(snap)  # the snapshot did not share the live dictionaries
    assert set(hashing._LINE_CACHE[N]) == lines
    assert (emb._word_counts(first) != before).nnz == 0


def test_a_text_alone_equals_its_row_in_a_batch(train_prompts: list[str]) -> None:
    """Routing one query and routing it in a batch read bit-identical features."""
    emb = HashingEmbedder(n_features=N).fit(train_prompts)
    texts = [*train_prompts[:40], "x", "!!\n\n", "one\none two\r\nthree three three"]
    batch = emb.transform(texts).toarray()
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(emb.transform([text]).toarray()[0], batch[i])
