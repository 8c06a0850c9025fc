"""LangChain's standard unit tests for RoutedChatModel (no model is called)."""

from __future__ import annotations

from typing import Any

import lc_testkit as kit
from langchain_llmrouter import RoutedChatModel
from langchain_llmrouter.chat_models import ROUTER_ENV
from langchain_tests.unit_tests import ChatModelUnitTests


class TestRoutedChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[RoutedChatModel]:
        return RoutedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": kit.two_model_router(), "pool": kit.conformance_pool()}

    @property
    def model_override_value(self) -> str:
        return kit.STRONG

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        # The router is read from LLMROUTER_ROUTER (a saved router directory).
        path = kit.saved_two_model_router()
        return {ROUTER_ENV: path}, {"pool": kit.conformance_pool()}, {"router": path}
