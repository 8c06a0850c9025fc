"""LlamaIndex agents over routed pools: a ``FunctionAgent`` over a pool without a
tool-capable model fails with the project's clear error (not LlamaIndex's "LLM must be a
FunctionCallingLLM"), a structured output of such a pool still works by prompting, and an
agent's output names the model that answered and its cost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.llmrouter import RoutedLLM

from llmrouter_core.execution import NoEligibleModelError, NoToolModelError

TOOL_MODELS = ("gpt-4-1106-preview", "gpt-3.5-turbo-1106")  # scripted in the tool pool


def _multiply(calls: list[tuple[int, int]]) -> FunctionTool:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers and return the product."""
        calls.append((a, b))
        return a * b

    return FunctionTool.from_defaults(fn=multiply)


def test_function_agent_over_a_pool_without_tools_fails_clearly(
    knn_router: Any, replay_pool: Any
) -> None:
    llm = RoutedLLM(knn_router, pool=replay_pool)
    assert llm.tool_models == []
    agent = FunctionAgent(tools=[_multiply([])], llm=llm, system_prompt="Use the tools.")

    async def run() -> Any:
        return await agent.run(user_msg="What is 37 times 91?")

    with pytest.raises(NoToolModelError, match="no pool model supports tools") as caught:
        asyncio.run(run())
    assert isinstance(caught.value, NoEligibleModelError)
    assert set(caught.value.excluded) == set(knn_router.models_)


def test_structured_output_of_a_text_only_pool_is_prompted() -> None:
    """A function-calling LLM whose pool takes no tools still gives structured outputs: they
    are asked for in the prompt, not by a tool call."""
    from llama_index.core.prompts import PromptTemplate
    from pydantic import BaseModel

    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.testing import ScriptedProvider

    class City(BaseModel):
        name: str
        country: str

    provider = ScriptedProvider({"small": '{"name": "Paris", "country": "France"}'})
    llm = RoutedLLM(PoolOrderRouter(provider.pool()))
    assert llm.tool_models == [] and llm.metadata.is_function_calling_model
    city = llm.structured_predict(
        City, PromptTemplate("The capital of {country}?"), country="France"
    )
    assert city == City(name="Paris", country="France")
    [call] = provider.calls
    assert "tools" not in call.params and "France" in str(call.messages)


def test_agent_output_carries_model_and_cost(knn_router: Any, tool_pool: Any) -> None:
    calls: list[tuple[int, int]] = []
    llm = RoutedLLM(knn_router, pool=tool_pool)
    agent = FunctionAgent(tools=[_multiply(calls)], llm=llm, system_prompt="Use the tools.")

    async def run() -> Any:
        return await agent.run(user_msg="What is 12 times 11?")

    output = asyncio.run(run())
    assert calls == [(12, 11)] and "132" in str(output)
    extra = output.response.additional_kwargs
    assert extra["model"] in TOOL_MODELS
    assert extra["cost"] > 0
