"""Registration of this package's in-process LiteLLM providers (``replay``, ``local``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["register_provider", "registered_providers"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_ours: dict[str, Any] = {}


def register_provider(provider: str, make_handler: Callable[[], Any]) -> None:
    """Add ``provider`` to ``litellm.custom_provider_map`` once per process.

    Other entries of the map are left alone; if the application already registered its own
    handler under the same name, that handler is kept (and a warning logged).
    """
    from llmrouter_core._lazy import import_litellm

    litellm = import_litellm()
    with _lock:
        current = list(getattr(litellm, "custom_provider_map", None) or [])
        present = [item for item in current if item.get("provider") == provider]
        if present:
            if present[0].get("custom_handler") is not _ours.get(provider):
                logger.warning(
                    "a LiteLLM provider named %r is already registered; keeping it", provider
                )
                _ours[provider] = present[0].get("custom_handler")
            return
        handler = _ours.get(provider)
        if handler is None:
            handler = _ours[provider] = make_handler()
        current.append({"provider": provider, "custom_handler": handler})
        setattr(litellm, "custom_provider_map", current)  # noqa: B010 - a module attribute


def registered_providers() -> list[str]:
    """Providers registered through :func:`register_provider` in this process."""
    return sorted(_ours)
