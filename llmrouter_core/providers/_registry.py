"""Registration of this package's in-process LiteLLM providers (``replay``, ``local``)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["known_call_cost", "register_cost_hook", "register_provider", "registered_providers"]

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


# -- providers that know a call's cost before making it ----------------------------------

CostHook = Callable[[str, list[dict[str, Any]]], "float | None"]
_cost_hooks: dict[str, CostHook] = {}


def register_cost_hook(provider: str, hook: CostHook) -> None:
    """Let the in-process provider ``provider`` (the prefix of ``provider/model`` ids) tell
    the cost of a call before it is made; ``hook(model, messages)`` returns USD or ``None``.

    Budgets reserve that exact amount instead of a price-based bound, and streamed answers
    are costed with it.
    """
    _cost_hooks[provider] = hook


def known_call_cost(litellm_model: str, messages: list[dict[str, Any]]) -> float | None:
    """The exact cost of calling ``litellm_model`` on ``messages`` if its provider knows it."""
    provider, sep, model = litellm_model.partition("/")
    hook = _cost_hooks.get(provider) if sep else None
    if hook is None:
        return None
    try:
        value = hook(model, messages)
    except Exception:  # an unknown prompt fails at call time, with its message
        return None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
