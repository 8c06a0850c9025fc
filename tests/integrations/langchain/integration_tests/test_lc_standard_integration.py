"""LangChain's standard integration tests for RoutedChatModel, run offline.

The router is a real kNN router trained on RouterBench (mistral-7b vs gpt-4). It routes at
the cheapest operating point (cost weight = inf), so every request the cheap model can serve
goes to it: that model is served by the real SmolLM2-135M running locally (real generated,
streamed text). Requests it cannot serve (tools, JSON schemas) are routed to gpt-4, served by
the scripted stand-in of ``langchain_llmrouter.testing`` (rule-based, not a language model),
which is how tool calling and structured output run without network. See ``lc_testkit``.
"""

from __future__ import annotations

import math
from typing import Any

import lc_testkit as kit
from langchain_llmrouter import RoutedChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests


class TestRoutedChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[RoutedChatModel]:
        return RoutedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "router": kit.two_model_router(),
            "pool": kit.conformance_pool(),
            "cost_weight": math.inf,
            "max_tokens": 40,
            "temperature": 0.0,
        }

    @property
    def model_override_value(self) -> str:
        # Routing alone would pick the cheap model for text; the override must win.
        return kit.STRONG

    @property
    def supports_anthropic_inputs(self) -> bool:
        # Anthropic-format tools and content blocks are translated to the pool's format.
        return True
