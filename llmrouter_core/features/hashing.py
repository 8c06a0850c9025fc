"""The default embedder: hashed word and character n-grams with TF-IDF weights.

It needs no download and no model file, routes one query in well under a millisecond, and
its only learned state is one IDF vector. Hashing (instead of a vocabulary) keeps the saved
router small and makes unseen words land in stable features.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core.errors import NotFittedError

__all__ = ["HashingEmbedder"]


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

    # HashingVectorizer is stateless, so build it lazily (sklearn import cost) and once.
    def _vecs(self) -> Any:
        if self._vectorizers is None:
            with self._lock:
                if self._vectorizers is None:
                    from sklearn.feature_extraction.text import HashingVectorizer

                    common = {
                        "n_features": self.n_features,
                        "alternate_sign": False,
                        "norm": None,
                        "lowercase": True,
                        "dtype": np.float32,
                    }
                    vecs = [HashingVectorizer(ngram_range=(1, 2), **common)]
                    if self.char_ngrams:
                        vecs.append(
                            HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common)
                        )
                    self._vectorizers = vecs
        return self._vectorizers

    def _counts(self, texts: Sequence[str]) -> Any:
        docs = [t[: self.max_chars] for t in texts]
        if not docs:  # sklearn's hasher fails on an empty batch
            import scipy.sparse as sp

            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        mats = [v.transform(docs) for v in self._vecs()]
        x = mats[0] if len(mats) == 1 else mats[0] + mats[1]
        x = x.tocsr()
        if self.sublinear_tf:
            x.data = 1.0 + np.log(x.data)
        return x

    def fit(self, texts: Sequence[str]) -> HashingEmbedder:
        x = self._counts(texts)
        df = np.bincount(x.indices, minlength=self.n_features).astype(np.float64)
        n = x.shape[0]
        self.idf_ = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        if self.idf_ is None:
            raise NotFittedError("HashingEmbedder is not fitted; call fit(texts) first")
        from sklearn.preprocessing import normalize

        x = self._counts(texts)
        if x.shape[0] == 0:
            return x
        x.data *= self.idf_[x.indices]
        return normalize(x, norm="l2", copy=False)

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
        self.idf_ = np.asarray(state["idf"], dtype=np.float32)
