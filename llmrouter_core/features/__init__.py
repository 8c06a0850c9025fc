"""Query features: the :class:`Embedder` protocol and its implementations.

``get_embedder(name, **kwargs)`` builds one by name: ``"hashing"`` (default, no download),
``"minilm"`` (all-MiniLM-L6-v2, int8 ONNX, offline from PyPI), ``"minilm-torch"`` (the same
model in PyTorch, ``torch`` extra).
"""

from __future__ import annotations

from typing import Any

from llmrouter_core.features.base import Embedder, FeatureMatrix
from llmrouter_core.features.hashing import HashingEmbedder

__all__ = ["EMBEDDERS", "Embedder", "FeatureMatrix", "HashingEmbedder", "get_embedder"]

#: name -> "module:Class"; imported only when used.
EMBEDDERS: dict[str, str] = {
    "hashing": "llmrouter_core.features.hashing:HashingEmbedder",
    "minilm": "llmrouter_core.features.onnx:MiniLMEmbedder",
    "minilm-torch": "llmrouter_core.features.torch_st:TorchMiniLMEmbedder",
}


def get_embedder(name: str = "hashing", **kwargs: Any) -> Embedder:
    """Build the embedder registered as ``name``."""
    import importlib

    if name not in EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}; known: {', '.join(sorted(EMBEDDERS))}")
    module, cls = EMBEDDERS[name].split(":")
    obj: Embedder = getattr(importlib.import_module(module), cls)(**kwargs)
    return obj
