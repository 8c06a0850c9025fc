"""The one feature projection: sparse or wide features -> a few dense dimensions.

Families that learn latent vectors (IRT, matrix factorisation, bandit, graph, contrastive,
clusters, the MLP) read a truncated SVD of the embedder's output instead of its hundreds of
thousands of hashed columns. The projection is fitted without labels, so a router fits it once
on all its training queries and shares it between cross-validation folds and candidates.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from llmrouter_core._math import RowMatrix
from llmrouter_core.data.core import FloatArray

__all__ = ["Projector"]

Arrays = dict[str, Any]


class Projector:
    """Sparse or wide features -> ``n_components`` dense dimensions, centred on the training
    rows and, with ``standardize``, scaled to unit variance.

    Sparse input: truncated SVD (randomised, two power iterations) over the columns that occur
    in at least ``min_df`` training rows (columns seen once carry no pattern to generalise
    from and would bloat the saved router). Dense input wider than ``n_components``: PCA;
    narrower: kept as is.

    Args:
        n_components: Dimensions kept (at most ``min(n_rows, n_columns) - 1``).
        min_df: Minimum number of training rows a sparse column must occur in.
        random_state: Seed of the randomised SVD.
        standardize: Scale each dimension to unit variance (``False`` keeps the geometry,
            e.g. for clustering, and only centres).

    Example:
        >>> x = sp.random(50, 200, density=0.1, random_state=0, format="csr")
        >>> Projector(8).fit(x).transform(x).shape
        (50, 8)
    """

    def __init__(
        self,
        n_components: int = 64,
        min_df: int = 2,
        random_state: int = 0,
        standardize: bool = True,
    ) -> None:
        self.n_components = int(n_components)
        self.min_df = int(min_df)
        self.random_state = int(random_state)
        self.standardize = bool(standardize)

    def fit(self, x: Any) -> Projector:
        n = x.shape[0]
        self.n_features_ = int(x.shape[1])
        if sp.issparse(x):
            x = sp.csr_matrix(x)
            df = np.bincount(x.indices, minlength=x.shape[1])
            cols = np.flatnonzero(df >= self.min_df)
            if cols.size < 2:
                cols = np.flatnonzero(df >= 1)
            sub = x[:, cols]
            k = max(1, min(self.n_components, cols.size - 1, n - 1))
            from sklearn.decomposition import TruncatedSVD

            svd = TruncatedSVD(
                k, algorithm="randomized", n_iter=2, random_state=self.random_state
            ).fit(sub)
            self.cols_: npt.NDArray[np.int64] | None = cols.astype(np.int64)
            self.components_ = np.asarray(svd.components_.T, dtype=np.float32)  # (cols, k)
            self.mean_in_: FloatArray | None = None
        else:
            x = np.asarray(x, dtype=np.float64)
            self.cols_ = None
            if x.shape[1] > self.n_components and n > self.n_components:
                mean = x.mean(axis=0)
                _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
                self.components_ = np.asarray(vt[: self.n_components].T, dtype=np.float32)
                self.mean_in_ = mean
            else:
                self.components_ = np.eye(x.shape[1], dtype=np.float32)
                self.mean_in_ = None
        z = self._raw(x)
        self.shift_ = z.mean(axis=0)
        self.scale_ = np.maximum(z.std(axis=0), 1e-6)
        if not self.standardize:
            self.scale_ = np.ones_like(self.scale_)
        return self

    @cached_property
    def _rows(self) -> RowMatrix:
        assert self.cols_ is not None
        d = int(self.cols_.max()) + 1 if self.cols_.size else 0
        return RowMatrix(self.components_, rows=self.cols_, d=d)

    def _raw(self, x: Any) -> FloatArray:
        if self.cols_ is not None:
            if not sp.issparse(x):
                x = sp.csr_matrix(x)
            return self._rows.rmatmul(x)
        x = np.asarray(x, dtype=np.float64)
        if self.mean_in_ is not None:
            x = x - self.mean_in_
        out: FloatArray = np.asarray(x @ self.components_, dtype=np.float64)
        return out

    def transform(self, x: Any) -> FloatArray:
        """``(n, dim)`` projected features (float64)."""
        out: FloatArray = self._raw(x) - self.shift_
        out /= self.scale_
        return out

    def centred(self, z: FloatArray) -> FloatArray:
        """Standardised output ``z`` of :meth:`transform` back to the centred-only scale."""
        out: FloatArray = z * self.scale_
        return out

    @property
    def dim(self) -> int:
        return int(self.components_.shape[1])

    def truncated(self, n_components: int) -> Projector:
        """The same projection keeping only its first ``n_components`` directions (the top
        directions of a truncated SVD are ordered by singular value)."""
        k = max(1, min(int(n_components), self.dim))
        out = Projector(k, self.min_df, self.random_state, self.standardize)
        out.n_features_ = self.n_features_
        out.cols_ = self.cols_
        out.mean_in_ = self.mean_in_
        out.components_ = np.ascontiguousarray(self.components_[:, :k])
        out.shift_ = self.shift_[:k].copy()
        out.scale_ = self.scale_[:k].copy()
        return out

    def fold_into(self, weight: FloatArray, bias: FloatArray) -> tuple[FloatArray, FloatArray]:
        """A layer ``transform(x) @ weight + bias`` as the same layer on the raw features:
        ``(weight (n_features, h), bias (h,))``."""
        scaled = np.asarray(weight, dtype=np.float64) / self.scale_[:, None]
        inner = np.asarray(self.components_, dtype=np.float64) @ scaled
        new_bias = np.asarray(bias - self.shift_ @ scaled, dtype=np.float64)
        if self.mean_in_ is not None:
            new_bias = new_bias - self.mean_in_ @ inner
        if self.cols_ is None:
            return inner, new_bias
        full = np.zeros((self.n_features_, weight.shape[1]))
        full[self.cols_] = inner
        return full, new_bias

    def get_state(self) -> Arrays:
        out: Arrays = {
            "components": self.components_,
            "shift": self.shift_,
            "scale": self.scale_,
            "n_features": np.asarray([self.n_features_], dtype=np.int64),
        }
        if self.cols_ is not None:
            out["cols"] = self.cols_
        if self.mean_in_ is not None:
            out["mean_in"] = self.mean_in_
        return out

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> Projector:
        obj = cls(n_components=int(np.asarray(arrays["components"]).shape[1]))
        obj.components_ = np.asarray(arrays["components"], dtype=np.float32)
        obj.shift_ = np.asarray(arrays["shift"], dtype=np.float64)
        obj.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
        obj.cols_ = np.asarray(arrays["cols"], dtype=np.int64) if "cols" in arrays else None
        obj.mean_in_ = (
            np.asarray(arrays["mean_in"], dtype=np.float64) if "mean_in" in arrays else None
        )
        if "n_features" in arrays:
            obj.n_features_ = int(np.asarray(arrays["n_features"]).ravel()[0])
        elif obj.cols_ is not None and obj.cols_.size:
            obj.n_features_ = int(obj.cols_.max()) + 1
        else:
            obj.n_features_ = int(obj.components_.shape[0])
        return obj
