"""Heads: the learned part of a scorer, as plain arrays, and the one registry of head kinds.

Scikit-learn estimators and the solvers of :mod:`llmrouter_core.training` do the learning; a
head keeps only the arrays needed to predict, so routing one query costs a few small products
(no estimator validation), and saving a router never pickles an estimator. Every head kind is
registered once (:func:`register_head`); :func:`load_head` rebuilds any kind from its arrays,
importing the module that defines it on demand.
"""

from __future__ import annotations

import importlib
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from llmrouter_core._math import RowMatrix, clip_inplace, sigmoid
from llmrouter_core.data.core import FloatArray
from llmrouter_core.training.costs import pack_matrix, unpack_matrix

__all__ = [
    "Head",
    "KNNHead",
    "LinearHead",
    "MLPHead",
    "load_head",
    "register_head",
    "sub_arrays",
]

Arrays = dict[str, Any]
H = TypeVar("H", bound=type)


def _dot(x: Any, w: Any) -> FloatArray:
    out = x @ w
    if sp.issparse(out):
        out = out.toarray()
    return np.asarray(out, dtype=np.float64)


def _drop_columns(x: Any, drop: Any) -> Any:
    """A CSR copy of ``x`` without the entries of the columns where ``drop`` is true."""
    csr = sp.csr_matrix(x, copy=True)
    csr.data[drop[csr.indices]] = 0
    csr.eliminate_zeros()
    return csr


class Head:
    """Maps a feature matrix to predicted quality per model, ``(n, m)`` in [0, 1]."""

    kind = ""

    def predict(self, x: Any) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_state(self) -> Arrays:  # pragma: no cover - abstract
        raise NotImplementedError


class LinearHead(Head):
    """``link(x @ W + b)`` with ``link`` = identity (clipped) or logistic."""

    kind = "linear"

    def __init__(self, coef: Any, intercept: FloatArray, link: str = "identity") -> None:
        # coef is (d, m), dense or sparse; stored sparse when mostly zero (hashed features
        # unseen in training).
        if sp.issparse(coef):
            csr = sp.csr_matrix(coef, dtype=np.float32, copy=True)
            csr.eliminate_zeros()
            size = csr.shape[0] * csr.shape[1]
            self.coef: Any = csr if csr.nnz < 0.5 * size else csr.toarray()
        else:
            coef = np.asarray(coef, dtype=np.float32)
            self.coef = sp.csr_matrix(coef) if np.mean(coef == 0) > 0.5 else coef
        self.intercept = np.asarray(intercept, dtype=np.float64)
        if link not in {"identity", "logistic"}:
            raise ValueError(f"unknown link {link!r}")
        self.link = link

    @cached_property
    def _rows(self) -> RowMatrix:
        return RowMatrix(self.coef)

    def decision(self, x: Any) -> FloatArray:
        """``x @ W + b`` (the logit of a logistic head)."""
        return self._rows.rmatmul(x) + self.intercept

    def predict(self, x: Any) -> FloatArray:
        z = self.decision(x)
        if self.link == "logistic":
            return sigmoid(z)
        return clip_inplace(z, 0.0, 1.0)

    def get_state(self) -> Arrays:
        return {
            **pack_matrix("coef", self.coef),
            "intercept": self.intercept,
            "link": np.asarray([self.link == "logistic"]),
        }

    @classmethod
    def from_state(cls, arrays: Arrays) -> LinearHead:
        link = "logistic" if bool(arrays["link"][0]) else "identity"
        return cls(unpack_matrix("coef", arrays), arrays["intercept"], link=link)


class KNNHead(Head):
    """Similarity-weighted mean of the neighbours' scores, shrunk toward the model means.

    ``q = (sum_i w_i y_i + alpha * prior) / (sum_i w_i + alpha)`` over the ``k`` most
    cosine-similar training queries (rows of ``x_train`` are L2-normalised), with weights
    ``w_i = max(sim_i, 0) ** power``.
    """

    kind = "knn"

    def __init__(
        self, x_train: Any, y: FloatArray, k: int, alpha: float, power: float = 1.0
    ) -> None:
        self.x_train = x_train
        self.x_train_t = (
            x_train.T.tocsr() if sp.issparse(x_train) else np.ascontiguousarray(x_train.T)
        )
        self.y = np.asarray(y, dtype=np.float64)
        self.k = int(k)
        self.alpha = float(alpha)
        self.power = float(power)
        self.prior = self.y.mean(axis=0)

    def similarities(self, x: Any) -> FloatArray:
        """Cosine similarity of each row of ``x`` to every training query."""
        return _dot(x, self.x_train_t)

    def similarities_many(self, x: Any, n_dense: int = 512) -> FloatArray:
        """:meth:`similarities` for a large batch (equal up to float32 rounding).

        Sparse text features share a few very frequent columns (common words), which make a
        sparse-times-sparse product slow when both sides have many rows. Here the
        ``n_dense`` columns most frequent in training are multiplied as dense blocks (BLAS)
        and only the rest as sparse matrices. Training uses it (cross-validation,
        calibration); routing keeps :meth:`similarities`, whose result does not depend on
        the batch.
        """
        if not (sp.issparse(x) and sp.issparse(self.x_train)):
            return self.similarities(x)
        from threadpoolctl import threadpool_limits

        train = sp.csr_matrix(self.x_train)
        df = np.bincount(train.indices, minlength=train.shape[1])
        n_freq = min(int(n_dense), int(np.count_nonzero(df)))
        freq = np.zeros(train.shape[1], dtype=bool)
        freq[np.argsort(-df, kind="stable")[:n_freq]] = True
        cols = np.flatnonzero(freq)
        x = sp.csr_matrix(x)
        # One product of a few hundred columns: BLAS threads cost more than they save.
        with threadpool_limits(limits=1, user_api="blas"):
            out = np.asarray(x[:, cols].toarray() @ train[:, cols].toarray().T, dtype=np.float64)
        out += _dot(_drop_columns(x, freq), _drop_columns(train, freq).T.tocsr())
        return out

    def predict(self, x: Any) -> FloatArray:
        return self.predict_from_similarities(self.similarities(x))

    def predict_from_similarities(self, sims: FloatArray) -> FloatArray:
        """Predictions given :meth:`similarities` (lets a caller try several ``k``)."""
        n_train = sims.shape[1]
        k = min(self.k, n_train)
        if k < n_train:
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            idx = np.broadcast_to(np.arange(n_train), (sims.shape[0], n_train))
        w = np.maximum(np.take_along_axis(sims, idx, axis=1), 0.0) ** self.power
        num = np.einsum("nk,nkm->nm", w, self.y[idx]) + self.alpha * self.prior
        den = w.sum(axis=1, keepdims=True) + self.alpha
        return np.asarray(num / den, dtype=np.float64)

    def get_state(self) -> Arrays:
        return {
            **pack_matrix("x_train", self.x_train),
            "y": self.y,
            "params": np.asarray([self.k, self.alpha, self.power], dtype=np.float64),
        }

    @classmethod
    def from_state(cls, arrays: Arrays) -> KNNHead:
        k, alpha, power = (float(v) for v in arrays["params"])
        return cls(unpack_matrix("x_train", arrays), arrays["y"], int(k), alpha, power)


class MLPHead(Head):
    """A ReLU multi-layer perceptron with one output per model (clipped to [0, 1])."""

    kind = "mlp"

    def __init__(self, coefs: list[Any], intercepts: list[FloatArray]) -> None:
        self.coefs = [np.asarray(c, dtype=np.float32) for c in coefs]
        self.intercepts = [np.asarray(b, dtype=np.float32) for b in intercepts]

    def predict(self, x: Any) -> FloatArray:
        h: Any = x
        last = len(self.coefs) - 1
        for i, (w, b) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            h = _dot(h, w) + b
            if i < last:
                h = np.maximum(h, 0.0)
        return np.asarray(np.clip(h, 0.0, 1.0), dtype=np.float64)

    def get_state(self) -> Arrays:
        out: Arrays = {"n_layers": np.asarray([len(self.coefs)])}
        for i, (w, b) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            out[f"w{i}"] = w
            out[f"b{i}"] = b
        return out

    @classmethod
    def from_state(cls, arrays: Arrays) -> MLPHead:
        n = int(arrays["n_layers"][0])
        return cls([arrays[f"w{i}"] for i in range(n)], [arrays[f"b{i}"] for i in range(n)])


_HEADS: dict[str, Any] = {}
# Head kinds defined outside this module -> their module, so a saved router loads without
# importing every scorer family.
_HEAD_MODULES = {
    "sw-ranking": "llmrouter_core.scoring.elo",
    "graph": "llmrouter_core.scoring.graph",
    "encoder": "llmrouter_core.scoring.encoder",
    "contrastive": "llmrouter_core.scoring.contrastive",
    "bandit": "llmrouter_core.scoring.bandit",
    "cluster": "llmrouter_core.scoring.cluster",
    "task": "llmrouter_core.scoring.cluster",
    "hybrid": "llmrouter_core.scoring.hybrid",
    "stack": "llmrouter_core.scoring.stack",
    "constant": "llmrouter_core.scoring.constant",
}


def register_head(cls: H) -> H:
    """Class decorator: make a head kind (its ``kind`` attribute) loadable by
    :func:`load_head`."""
    _HEADS[cls.kind] = cls  # type: ignore[attr-defined]
    return cls


def load_head(kind: str, arrays: Arrays) -> Head:
    """Rebuild a head of any registered kind from its saved arrays.

    Raises:
        ValueError: ``kind`` is not a known head kind.
    """
    if kind not in _HEADS and kind in _HEAD_MODULES:
        importlib.import_module(_HEAD_MODULES[kind])
    if kind not in _HEADS:
        raise ValueError(f"unknown head kind {kind!r}")
    head: Head = _HEADS[kind].from_state(arrays)
    return head


def sub_arrays(arrays: Arrays, prefix: str) -> Arrays:
    """The arrays under ``prefix`` with the prefix removed."""
    n = len(prefix)
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix)}


for _cls in (LinearHead, KNNHead, MLPHead):
    register_head(_cls)
