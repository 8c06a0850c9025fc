"""The embedder protocol: text -> feature matrix.

An embedder turns query texts into a 2-D feature matrix (dense ``ndarray`` or
``scipy.sparse`` CSR). Trained embedders learn from training queries in :meth:`fit`; all of
them save their configuration and learned state as JSON + arrays, never pickles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Embedder", "FeatureMatrix", "fit_transform"]

FeatureMatrix = Any  # np.ndarray (n, d) float32/64 or scipy.sparse.csr_matrix (n, d)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into features.

    Attributes:
        name: Registry name (``"hashing"``, ``"minilm"``, ...).
        sparse: Whether :meth:`transform` returns a ``scipy.sparse`` matrix.
    """

    name: str
    sparse: bool

    def fit(self, texts: Sequence[str]) -> Embedder:
        """Learn from training texts (a no-op for pretrained encoders); returns self."""
        ...

    def transform(self, texts: Sequence[str]) -> FeatureMatrix:
        """Features of ``texts``, one row per text."""
        ...

    def get_config(self) -> dict[str, Any]:
        """JSON-safe constructor arguments."""
        ...

    def get_state(self) -> dict[str, npt.NDArray[Any]]:
        """Learned arrays (empty for stateless embedders)."""
        ...

    def set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        """Restore learned arrays from :meth:`get_state`."""
        ...


def fit_transform(embedder: Embedder, texts: Sequence[str]) -> FeatureMatrix:
    """``embedder.fit(texts).transform(texts)``, in one pass when the embedder can."""
    one_pass = getattr(embedder, "fit_transform", None)
    if callable(one_pass):
        return one_pass(texts)
    return embedder.fit(texts).transform(texts)


def l2_normalize_rows(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norms == 0, 1.0, norms), dtype=x.dtype)
