"""Embedding caches: an in-memory LRU and an optional on-disk store, around any embedder.

Routing the same prompt twice (retries, fallbacks, a cascade's second step, repeated system
prompts) should not encode it twice. :class:`CachedEmbedder` wraps an embedder, keys each row
by the sha1 of its text, and only sends the texts it has not seen to the wrapped embedder.

On disk, each row is one ``.npy`` file under ``<dir>/<fingerprint>/<hh>/<sha1>.npy``, where
the fingerprint identifies the embedder's vector space (model bytes, configuration, learned
state), so vectors of two models or two fits never mix. Files are written atomically and read
with ``allow_pickle=False``; a file that does not hold a vector of the expected shape is
ignored (and rewritten).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from llmrouter_core.features.base import Embedder, FeatureMatrix
from llmrouter_core.features.onnx import as_text_list

__all__ = ["CacheInfo", "CachedEmbedder", "default_cache_dir", "embedder_fingerprint"]

logger = logging.getLogger(__name__)

#: Environment variable naming the on-disk cache root.
CACHE_DIR_ENV = "LLMROUTER_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$LLMROUTER_CACHE_DIR`` if set, else ``~/.cache/llmrouter/embeddings``."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "llmrouter" / "embeddings"


def text_key(text: str) -> str:
    """Hex sha1 of a text's UTF-8 bytes (lone surrogates kept, so every ``str`` has a key)."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def embedder_fingerprint(embedder: Embedder) -> str:
    """A short id of an embedder's vector space, safe as a directory name.

    Uses the embedder's own ``fingerprint()`` when it has one (e.g. model-file hashes);
    otherwise hashes its name, configuration and learned state.

    Raises:
        NotFittedError: A trainable embedder is not fitted yet.
    """
    own = getattr(embedder, "fingerprint", None)
    if callable(own):
        return str(own())
    h = hashlib.sha1()
    h.update(embedder.name.encode())
    h.update(json.dumps(embedder.get_config(), sort_keys=True, default=str).encode())
    for key, arr in sorted(embedder.get_state().items()):
        a = np.ascontiguousarray(arr)
        h.update(f"\0{key}:{a.dtype.str}:{a.shape}\0".encode())
        h.update(a.tobytes())
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in embedder.name)
    return f"{safe}-{h.hexdigest()[:16]}"


class CacheInfo(NamedTuple):
    """Counters of a :class:`CachedEmbedder` (like ``functools.lru_cache``'s)."""

    hits: int
    disk_hits: int
    misses: int
    maxsize: int
    currsize: int


class CachedEmbedder:
    """An embedder with an LRU cache in memory and, optionally, on disk.

    Transparent: ``name``, ``sparse``, :meth:`get_config` and the state are the wrapped
    embedder's, so a router saved with a cached embedder loads with the plain one. Thread-safe;
    a cache hit returns exactly the array first computed for that text.

    Args:
        embedder: The embedder to wrap (dense; a sparse one is cached in memory only).
        maxsize: Rows kept in memory (least recently used go first); 0 disables the memory
            cache.
        disk_dir: ``None`` or ``False``: no disk cache. ``True``: :func:`default_cache_dir`.
            A path: that directory.

    Example:
        >>> from llmrouter_core.features.onnx import MiniLMEmbedder
        >>> emb = CachedEmbedder(MiniLMEmbedder(), maxsize=10_000)
        >>> a = emb.transform(["hello"])
        >>> b = emb.transform(["hello"])  # from the cache
        >>> bool((a == b).all()), emb.cache_info().hits
        (True, 1)
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        maxsize: int = 10_000,
        disk_dir: str | os.PathLike[str] | bool | None = None,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize must be an integer >= 0; got {maxsize!r}")
        self.embedder = embedder
        self.name: str = embedder.name
        self.sparse: bool = embedder.sparse
        self.maxsize = maxsize
        if disk_dir is True:
            self.disk_dir: Path | None = default_cache_dir()
        elif disk_dir is None or disk_dir is False:
            self.disk_dir = None
        else:
            self.disk_dir = Path(disk_dir).expanduser()
        if self.disk_dir is not None and embedder.sparse:
            raise ValueError(
                f"the on-disk cache holds dense vectors; {embedder.name!r} is sparse "
                "(use the memory cache only: disk_dir=None)"
            )
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._fingerprint: str | None = None
        self._hits = 0
        self._disk_hits = 0
        self._misses = 0

    # -- transparent protocol --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return self.embedder.get_config()

    def get_state(self) -> dict[str, npt.NDArray[Any]]:
        return self.embedder.get_state()

    def set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self.embedder.set_state(state)
        self.clear(disk=False)

    def fit(self, texts: Sequence[str]) -> CachedEmbedder:
        """Fit the wrapped embedder; forgets the memory cache (its vectors may change)."""
        self.embedder.fit(texts)
        self.clear(disk=False)
        return self

    # -- cache -----------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """The wrapped embedder's :func:`embedder_fingerprint` (computed once per fit)."""
        if self._fingerprint is None:
            self._fingerprint = embedder_fingerprint(self.embedder)
        return self._fingerprint

    def cache_info(self) -> CacheInfo:
        """Hits (memory), disk hits, misses and the memory cache size."""
        with self._lock:
            return CacheInfo(
                self._hits, self._disk_hits, self._misses, self.maxsize, len(self._memory)
            )

    def clear(self, *, disk: bool = False) -> None:
        """Empty the memory cache and reset counters; with ``disk=True`` also delete this
        embedder's files on disk."""
        with self._lock:
            self._memory.clear()
            self._hits = self._disk_hits = self._misses = 0
            fingerprint, self._fingerprint = self._fingerprint, None
        if disk and self.disk_dir is not None:
            import shutil

            fp = fingerprint or embedder_fingerprint(self.embedder)
            shutil.rmtree(self.disk_dir / fp, ignore_errors=True)

    def _disk_path(self, key: str) -> Path:
        assert self.disk_dir is not None
        return self.disk_dir / self.fingerprint() / key[:2] / f"{key}.npy"

    def _disk_get(self, key: str, dim: int | None) -> npt.NDArray[Any] | None:
        path = self._disk_path(key)
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable embedding cache file %s: %s", path, exc)
            return None
        if (
            not isinstance(arr, np.ndarray)
            or arr.ndim != 1
            or (dim is not None and arr.shape[0] != dim)
        ):
            logger.warning(
                "ignoring embedding cache file %s of shape %s", path, getattr(arr, "shape", None)
            )
            return None
        if arr.dtype.kind != "f" or not np.isfinite(arr).all():
            logger.warning("ignoring embedding cache file %s: not a finite float vector", path)
            return None
        return arr

    def _disk_put(self, key: str, row: npt.NDArray[Any]) -> None:
        path = self._disk_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, row, allow_pickle=False)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a full or read-only disk must not break routing
            logger.warning("could not write embedding cache file %s: %s", path, exc)

    def _remember(self, key: str, row: Any) -> None:
        if self.maxsize == 0:
            return
        with self._lock:
            self._memory[key] = row
            self._memory.move_to_end(key)
            while len(self._memory) > self.maxsize:
                self._memory.popitem(last=False)

    def transform(self, texts: Sequence[str]) -> FeatureMatrix:
        """Features of ``texts``: cached rows where available, the rest from the embedder.

        Raises:
            DataError: ``texts`` is a single string or holds a non-string.
        """
        docs = as_text_list(texts)
        keys = [text_key(t) for t in docs]
        rows: dict[str, Any] = {}
        with self._lock:
            for key in keys:
                if key in rows:
                    continue
                hit = self._memory.get(key)
                if hit is not None:
                    self._memory.move_to_end(key)
                    rows[key] = hit
                    self._hits += 1

        missing = [k for k in dict.fromkeys(keys) if k not in rows]
        if missing and self.disk_dir is not None:
            dim = getattr(self.embedder, "dim", None)
            for key in missing:
                arr = self._disk_get(key, dim if isinstance(dim, int) else None)
                if arr is not None:
                    arr.flags.writeable = False
                    rows[key] = arr
                    self._remember(key, arr)
                    with self._lock:
                        self._disk_hits += 1
            missing = [k for k in missing if k not in rows]

        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            computed = self.embedder.transform([docs[first[k]] for k in missing])
            with self._lock:
                self._misses += len(missing)
            for j, key in enumerate(missing):
                row = self._row(computed, j)
                rows[key] = row
                self._remember(key, row)
                if self.disk_dir is not None:
                    self._disk_put(key, row)

        return self._stack([rows[k] for k in keys])

    def _row(self, matrix: Any, j: int) -> Any:
        if self.embedder.sparse:
            return matrix[j].tocsr()
        row = np.array(matrix[j], copy=True)
        row.flags.writeable = False
        return row

    def _stack(self, rows: list[Any]) -> FeatureMatrix:
        if self.embedder.sparse:
            import scipy.sparse as sp

            if not rows:
                n_features = getattr(self.embedder, "n_features", 0)
                return sp.csr_matrix((0, n_features), dtype=np.float32)
            return sp.vstack(rows, format="csr")
        if not rows:
            dim = getattr(self.embedder, "dim", None)
            if isinstance(dim, int):
                return np.zeros((0, dim), dtype=np.float32)
            return np.asarray(self.embedder.transform([]))
        return np.vstack(rows)

    def __repr__(self) -> str:
        disk = f", disk_dir={str(self.disk_dir)!r}" if self.disk_dir is not None else ""
        return f"CachedEmbedder({self.embedder!r}, maxsize={self.maxsize}{disk})"
