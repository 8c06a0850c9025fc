"""LlamaIndex adapter of llmrouter-core: ``RoutedLLM`` routes each call to a model of a pool.

``llama_index`` and ``llama_index.llms`` are namespace packages (as in LlamaIndex's own
integrations), so this module installs next to ``llama-index-core``.

Example:
    >>> from llama_index.llms.llmrouter import RoutedLLM                    # doctest: +SKIP
    >>> llm = RoutedLLM(router="runs/my-router", cost_weight=50.0)          # doctest: +SKIP
"""

import os as _os

# LiteLLM fetches its price table from the network at import unless told to use its bundled
# copy (the core sets the same default in import_litellm()).
_os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llama_index.llms.llmrouter.base import (
    RoutedLLM,
    from_execution_result,
    to_openai_messages,
)

__all__ = ["RoutedLLM", "from_execution_result", "to_openai_messages"]
