"""This package's LiteLLM providers.

* ``replay/<model>`` (:mod:`llmrouter_core.providers.replay`) answers with the responses a model
  actually gave in a routing dataset, at the recorded cost.
* ``local/<name>`` (:mod:`llmrouter_core.providers.local`) runs small GGUF models on the CPU
  (``local`` extra).

The executor registers them on demand (:func:`ensure_providers`); call
:func:`register_providers` to use them with plain ``litellm.completion``, and
:func:`register_provider` to add a LiteLLM custom provider of your own the same way.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from llmrouter_core.errors import MissingExtraError
from llmrouter_core.pool import ModelSpec
from llmrouter_core.providers._registry import register_provider

__all__ = ["ensure_providers", "register_provider", "register_providers"]


def register_providers() -> None:
    """Register the ``replay`` and ``local`` providers with LiteLLM (idempotent)."""
    from llmrouter_core.providers.local import register_local_provider
    from llmrouter_core.providers.replay import register_replay_provider

    register_replay_provider()
    register_local_provider()


def ensure_providers(specs: Iterable[ModelSpec]) -> None:
    """Register the providers that ``specs`` call, and check their runtime is installed.

    Raises:
        MissingExtraError: A ``local/`` model is used without llama-cpp-python installed.
    """
    providers = {s.litellm_model.partition("/")[0] for s in specs if "/" in s.litellm_model}
    if "replay" in providers:
        from llmrouter_core.providers.replay import register_replay_provider

        register_replay_provider()
    if "local" in providers:
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingExtraError("llama-cpp-python", "local", "local models")
        from llmrouter_core.providers.local import register_local_provider

        register_local_provider()
