"""The default embedder: hashed word and character n-grams with TF-IDF weights.

It needs no download and no model file, routes one query in well under a millisecond, and
its only learned state is one IDF vector. Hashing (instead of a vocabulary) keeps the saved
router small and makes unseen words land in stable features.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core.errors import NotFittedError

__all__ = ["HashingEmbedder"]

# scikit-learn's token pattern ``(?u)\b\w\w+\b``: a greedy run of two or more word
# characters always ends and (scanning left to right) starts at a word boundary, so the
# boundary checks are implied; without them the scan is about 25% faster.
_TOKEN = re.compile(r"\w\w+")

# n-gram -> murmurhash3 slot, per number of features, shared by every embedder of the process:
# routed queries reuse most of their words, so most n-grams are hashed once per process.
# Bounded: cleared when it outgrows _SLOT_CACHE_MAX entries.
_SLOT_CACHE: dict[int, dict[str, int]] = {}
_SLOT_CACHE_MAX = 1_000_000

# Lowercased line -> (its n-gram slots as native int32 bytes, first token, last token), per
# number of features. Bytes keep the slots inline in one object, and a document's lines join
# into one buffer in a single call.
_Line = tuple[bytes, str | None, str | None]
# Prompts repeat whole lines (system prompts, templates, few-shot examples), so a repeated line
# costs one dictionary lookup instead of a token scan. A block of lines between blank lines
# (a few-shot example, a system prompt) is also kept whole, under its text, once it recurs
# with every line already known: a repeated block is then one lookup instead of one per line.
# Bounded by the characters it holds (cleared when full), so memory stays at a few tens of MB
# whatever the traffic.
_LINE_CACHE: dict[int, dict[str, _Line]] = {}
_LINE_CACHE_CHARS = 4_000_000
_line_cache_chars: dict[int, int] = {}


def clear_caches() -> None:
    """Empty the per-process n-gram and line caches (features are unchanged; only speed)."""
    _SLOT_CACHE.clear()
    _LINE_CACHE.clear()
    _line_cache_chars.clear()


CacheSnapshot = tuple[dict[int, dict[str, int]], dict[int, dict[str, _Line]], dict[int, int]]


def cache_snapshot() -> CacheSnapshot:
    """A copy of the per-process n-gram and line caches, for :func:`restore_caches` (e.g. to
    start repeated measurements from the same caches)."""
    return (
        {n: dict(d) for n, d in _SLOT_CACHE.items()},
        {n: dict(d) for n, d in _LINE_CACHE.items()},
        dict(_line_cache_chars),
    )


def restore_caches(snapshot: CacheSnapshot) -> None:
    """Put back the caches saved by :func:`cache_snapshot` (features are unchanged)."""
    slots, lines, chars = snapshot
    clear_caches()
    _SLOT_CACHE.update({n: dict(d) for n, d in slots.items()})
    _LINE_CACHE.update({n: dict(d) for n, d in lines.items()})
    _line_cache_chars.update(chars)


def _sorted_counts(
    slots: npt.NDArray[np.int32],
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """The distinct values of ``slots`` in increasing order, and how often each occurs (the
    row that ``csr_matrix.sum_duplicates`` makes of one row of occurrences)."""
    keys = np.sort(slots)
    # Run boundaries: the first element, each change of value, and the end.
    edges = np.empty(keys.size + 1, dtype=bool)
    edges[0] = edges[-1] = True
    np.not_equal(keys[1:], keys[:-1], out=edges[1:-1])
    bounds = np.flatnonzero(edges)
    return keys[bounds[:-1]], (bounds[1:] - bounds[:-1]).astype(np.float32)


class HashingEmbedder:
    """TF-IDF over hashed word 1-2-grams (optionally also character 3-5-grams).

    Args:
        n_features: Hash space size (a power of two).
        char_ngrams: Also hash character n-grams within word boundaries (robust to typos and
            code identifiers, but about six times slower on long prompts).
        sublinear_tf: Use ``1 + log(tf)``.
        max_chars: Texts are cut to this many characters before hashing, bounding the cost of
            huge inputs.

    Example:
        >>> emb = HashingEmbedder(n_features=2**10).fit(["hello world", "goodbye world"])
        >>> emb.transform(["hello"]).shape
        (1, 1024)
    """

    name = "hashing"
    sparse = True

    def __init__(
        self,
        n_features: int = 2**18,
        *,
        char_ngrams: bool = False,
        sublinear_tf: bool = True,
        max_chars: int = 20_000,
    ) -> None:
        self.n_features = n_features
        self.char_ngrams = char_ngrams
        self.sublinear_tf = sublinear_tf
        self.max_chars = max_chars
        self.idf_: npt.NDArray[np.float32] | None = None
        self._lock = threading.Lock()
        self._vectorizers: Any = None

    # The character n-gram vectoriser is stateless: build it lazily (import cost) and once.
    def _vecs(self) -> Any:
        if self._vectorizers is None:
            with self._lock:
                if self._vectorizers is None:
                    from sklearn.feature_extraction.text import HashingVectorizer

                    self._vectorizers = [
                        HashingVectorizer(
                            analyzer="char_wb",
                            ngram_range=(3, 5),
                            n_features=self.n_features,
                            alternate_sign=False,
                            norm=None,
                            dtype=np.float32,
                        )
                    ]
        return self._vectorizers

    def _word_counts(self, docs: Sequence[str]) -> Any:
        """Hashed word 1-2-gram counts, built directly as CSR.

        The same features as scikit-learn's ``HashingVectorizer(ngram_range=(1, 2))`` with
        non-negative signed-32-bit murmurhash3, without its per-call validation overhead
        (which dominated the latency of routing one query). Each distinct n-gram is hashed
        once per process, each distinct line is scanned once, and a recurring block of lines
        is looked up whole (bounded caches): texts repeat their words, and prompts repeat
        whole lines and blocks.
        """
        import scipy.sparse as sp
        from sklearn.utils import murmurhash3_32

        n = self.n_features
        index = _SLOT_CACHE.setdefault(n, {})
        if len(index) > _SLOT_CACHE_MAX:
            index.clear()
        lines = _LINE_CACHE.setdefault(n, {})

        def slot(gram: str) -> int:
            h = int(abs(murmurhash3_32(gram, seed=0))) % n
            index[gram] = h
            return h

        def remember(key: str, entry: _Line) -> None:
            size = _line_cache_chars.get(n, 0) + len(key)
            if size > _LINE_CACHE_CHARS:
                lines.clear()
                size = len(key)
            _line_cache_chars[n] = size
            lines[key] = entry

        def scan(line: str) -> _Line:
            tokens = _TOKEN.findall(line)
            entry: _Line = (b"", None, None)
            if tokens:
                grams = tokens + list(map(" ".join, zip(tokens, tokens[1:])))
                try:
                    slots = list(map(index.__getitem__, grams))
                except KeyError:
                    slots = [index[g] if g in index else slot(g) for g in grams]
                entry = (np.asarray(slots, dtype=np.int32).tobytes(), tokens[0], tokens[-1])
            remember(line, entry)
            return entry

        def link(
            pieces: list[str], out: list[bytes], miss: Callable[[str], _Line]
        ) -> tuple[str | None, str | None, bool]:
            """Append the slots of consecutive pieces of text (lines, or blocks of lines) to
            ``out``: each piece's cached entry (``miss(piece)`` builds an uncached one), plus
            the bigram across each boundary between pieces that have tokens (tokens never span
            a newline, so these are all the n-grams of the joined text). Returns the first and
            last tokens, and whether every piece was cached."""
            first: str | None = None
            last: str | None = None
            across: list[int] = []
            known = True
            for piece in pieces:
                entry = lines.get(piece)
                if entry is None:
                    known = False
                    entry = miss(piece)
                if entry[1] is None:
                    continue
                out.append(entry[0])
                if last is None:
                    first = entry[1]
                else:
                    gram = last + " " + entry[1]
                    across.append(index[gram] if gram in index else slot(gram))
                last = entry[2]
            if across:
                out.append(np.asarray(across, dtype=np.int32).tobytes())
            return first, last, known

        def block(text: str) -> _Line:
            """An uncached block: its lines, linked; kept whole if every line was known."""
            if "\n" not in text:  # one line: its own entry
                return scan(text)
            chunks: list[bytes] = []
            first, last, known = link(text.split("\n"), chunks, scan)
            entry = (b"".join(chunks), first, last)
            if known:
                remember(text, entry)
            return entry

        indptr = [0]  # in bytes, 4 per slot
        parts: list[bytes] = []
        total = 0
        for doc in docs:
            start = len(parts)
            link(doc.lower().split("\n\n"), parts, block)
            total += sum(map(len, parts[start:]))
            indptr.append(total)
        # A writable int32 array over one joined buffer (scipy sorts the batch's in place).
        indices = np.frombuffer(bytearray().join(parts), dtype=np.int32)
        if len(docs) == 1:  # routing one query: count by one sort, no sparse-matrix checks
            slots, counts = _sorted_counts(indices)
            ptr = np.asarray([0, slots.size], dtype=np.int32)
            return sp.csr_matrix((counts, slots, ptr), shape=(1, n))
        # One entry per n-gram occurrence; summing the duplicates (in C) makes the counts.
        x = sp.csr_matrix(
            (
                np.ones(indices.size, dtype=np.float32),
                indices,
                (np.asarray(indptr, dtype=np.int64) // 4).astype(np.int32),
            ),
            shape=(len(docs), n),
        )
        x.sum_duplicates()
        return x

    def _counts(self, texts: Sequence[str]) -> Any:
        docs = [t[: self.max_chars] for t in texts]
        x = self._word_counts(docs)
        if self.char_ngrams:
            x = (x + self._vecs()[0].transform(docs)).tocsr()
        if self.sublinear_tf:
            x.data = 1.0 + np.log(x.data)
        return x

    def fit(self, texts: Sequence[str]) -> HashingEmbedder:
        self._fit_idf(self._counts(texts))
        return self

    def _fit_idf(self, x: Any) -> None:
        df = np.bincount(x.indices, minlength=self.n_features).astype(np.float64)
        n = x.shape[0]
        self.idf_ = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)

    def fit_transform(self, texts: Sequence[str]) -> Any:
        """``fit(texts)`` then ``transform(texts)``, counting the n-grams once."""
        x = self._counts(texts)
        self._fit_idf(x)
        return self._weighted(x)

    def transform(self, texts: Sequence[str]) -> Any:
        if self.idf_ is None:
            raise NotFittedError("HashingEmbedder is not fitted; call fit(texts) first")
        return self._weighted(self._counts(texts))

    def _weighted(self, x: Any) -> Any:
        """TF-IDF weights of counts ``x``, rows L2-normalised (in place)."""
        assert self.idf_ is not None
        if x.shape[0] == 0:
            return x
        x.data *= self.idf_[x.indices]
        # Row L2 normalisation by hand: sklearn.preprocessing.normalize validates its input at
        # a cost larger than the whole transform of one short query. Squares are summed in
        # order, in float64, in both branches (so a text alone equals its row in a batch).
        if x.shape[0] == 1:
            squares = x.data.astype(np.float64) ** 2
            total = float(np.cumsum(squares)[-1]) if squares.size else 0.0
            x.data /= np.float32(math.sqrt(total) if total > 0 else 1.0)
            return x
        lengths = np.diff(x.indptr)
        rows = np.repeat(np.arange(x.shape[0]), lengths)
        sq = np.bincount(rows, weights=x.data.astype(np.float64) ** 2, minlength=x.shape[0])
        norms = np.sqrt(np.where(sq > 0, sq, 1.0))
        x.data /= norms[rows].astype(np.float32)
        return x

    def get_config(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "char_ngrams": self.char_ngrams,
            "sublinear_tf": self.sublinear_tf,
            "max_chars": self.max_chars,
        }

    def get_state(self) -> dict[str, npt.NDArray[Any]]:
        if self.idf_ is None:
            raise NotFittedError("HashingEmbedder is not fitted")
        return {"idf": self.idf_}

    def set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        idf = np.asarray(state["idf"], dtype=np.float32)
        if idf.shape != (self.n_features,) or not np.isfinite(idf).all():
            raise ValueError(
                f"the saved IDF has shape {idf.shape} for {self.n_features} hashed features"
            )
        self.idf_ = idf
