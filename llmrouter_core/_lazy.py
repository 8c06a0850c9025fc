"""Deferred imports of heavy optional dependencies.

``import llmrouter_core`` must stay light (no torch, no LiteLLM, no agent framework), so every
heavy import goes through these helpers at the point of use.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from llmrouter_core.errors import MissingExtraError

_litellm_quieted = False


def import_litellm() -> ModuleType:
    """Import LiteLLM with its bundled (offline) price table, its banners silenced.

    LiteLLM fetches its model price map from the network at import unless
    ``LITELLM_LOCAL_MODEL_COST_MAP`` is set, so it is set before the first import. On every
    failed call LiteLLM prints "Give Feedback / Get Help" and provider-list banners to stdout;
    the first import through here sets ``litellm.suppress_debug_info`` (the errors raised
    keep their messages; set ``LITELLM_LOG=DEBUG`` to see LiteLLM's own logs).
    """
    global _litellm_quieted
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        litellm = importlib.import_module("litellm")
    except ImportError as exc:  # pragma: no cover - litellm is a core dependency
        raise MissingExtraError("litellm", "all", "model execution and prices") from exc
    if not _litellm_quieted:
        _litellm_quieted = True
        setattr(litellm, "suppress_debug_info", True)  # noqa: B010 - a module attribute
    return litellm


def import_optional(module: str, extra: str, what: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra, what) from exc
