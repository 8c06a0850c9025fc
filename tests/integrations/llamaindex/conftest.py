"""Fixtures of the LlamaIndex adapter tests.

* A kNN router trained on a RouterBench slice, called through the ``replay`` provider: every
  answer is the response the routed model really gave to that prompt, at its recorded cost.
* ``scripted-tools/<model>``: a deterministic stand-in for a tool-calling LLM, registered as a
  LiteLLM custom provider for these tests only. No model of the offline pools emits tool
  calls (replay answers only recorded prompts; the local 135M/270M models cannot follow a
  tool schema reliably), so the agent tests run the real LlamaIndex agents, the real adapter,
  executor, router and LiteLLM, with this scripted model at the end. What it does is spelled
  out in :class:`ScriptedToolModel`.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

SCRIPTED = "scripted-tools"
TOOL_MODELS = ("gpt-4-1106-preview", "gpt-3.5-turbo-1106")
# USD per 1M tokens of the scripted stand-ins (the two models' list prices of their time).
PRICES = {"gpt-4-1106-preview": (10.0, 30.0), "gpt-3.5-turbo-1106": (1.0, 2.0)}


def _integers(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", text)]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class ScriptedToolModel:
    """What the ``scripted`` model answers (the same for every model name):

    * with ``tools``: if the last message is a tool result, "The answer is <result>.";
      otherwise a call of the first tool, its integer parameters filled in order with the
      integers of the last user message;
    * with a ReAct system prompt (``Action Input`` format): an ``Action`` on the first listed
      tool with those integers, or, once an ``Observation:`` is in the conversation,
      "Answer: The answer is <observation>.";
    * otherwise "I have no tool for this."
    """

    @staticmethod
    def reply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> dict:
        users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
        question = next((u for u in reversed(users) if not u.startswith("Observation:")), "")
        if tools:
            if messages[-1].get("role") == "tool":
                return {"content": f"The answer is {_text(messages[-1].get('content'))}."}
            fn = tools[0]["function"]
            params = fn.get("parameters", {}).get("properties", {})
            numbers = iter(_integers(question))
            args = {
                name: next(numbers, 0)
                for name, spec in params.items()
                if spec.get("type") in ("integer", "number")
            }
            return {
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{abs(hash(question)) % 10**8}",
                        "type": "function",
                        "function": {"name": fn["name"], "arguments": json.dumps(args)},
                    }
                ],
            }
        system = " ".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
        if "Action Input" in system:
            observations = [u for u in users if u.startswith("Observation:")]
            if observations:
                value = observations[-1].split(":", 1)[1].strip()
                return {
                    "content": "Thought: I can answer without using any more tools.\n"
                    f"Answer: The answer is {value}."
                }
            tool = re.search(r"> Tool Name: (\S+)", system)
            schema = re.search(r"Tool Args: (\{.*\})", system)
            props = json.loads(schema.group(1)).get("properties", {}) if schema else {}
            numbers = iter(_integers(question))
            args = {name: next(numbers, 0) for name in props}
            return {
                "content": "Thought: I need to use a tool to help me answer the question.\n"
                f"Action: {tool.group(1) if tool else 'none'}\n"
                f"Action Input: {json.dumps(args)}"
            }
        return {"content": "I have no tool for this."}


def _make_handler() -> Any:
    import litellm
    from litellm.llms.custom_llm import CustomLLM

    def respond(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        message = ScriptedToolModel.reply(messages, params.get("tools"))
        prompt_tokens = sum(len(_text(m.get("content"))) for m in messages) // 4 + 1
        completion_tokens = len(json.dumps(message)) // 4 + 1
        return litellm.ModelResponse(
            model=model,
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", **message},
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            created=int(time.time()),
        )

    def chunks(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> list:
        message = ScriptedToolModel.reply(messages, params.get("tools"))
        text = message.get("content") or ""
        out = [
            {
                "text": text[i : i + 16],
                "is_finished": False,
                "finish_reason": "",
                "index": 0,
                "tool_use": None,
                "usage": None,
            }
            for i in range(0, len(text), 16)
        ]
        for i, call in enumerate(message.get("tool_calls") or []):
            out.append(
                {
                    "text": "",
                    "is_finished": False,
                    "finish_reason": "",
                    "index": 0,
                    "tool_use": {**call, "index": i},
                    "usage": None,
                }
            )
        out.append(
            {
                "text": "",
                "is_finished": True,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                "index": 0,
                "tool_use": None,
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )
        return out

    class Handler(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list, *a: Any, **k: Any) -> Any:
            return respond(model, messages, k.get("optional_params") or {})

        async def acompletion(self, model: str, messages: list, *a: Any, **k: Any) -> Any:
            return respond(model, messages, k.get("optional_params") or {})

        def streaming(self, model: str, messages: list, *a: Any, **k: Any) -> Any:
            yield from chunks(model, messages, k.get("optional_params") or {})

        async def astreaming(self, model: str, messages: list, *a: Any, **k: Any) -> Any:
            for chunk in chunks(model, messages, k.get("optional_params") or {}):
                yield chunk

    return Handler()


@pytest.fixture(scope="session")
def scripted_provider() -> str:
    import litellm

    entry = {"provider": SCRIPTED, "custom_handler": _make_handler()}
    litellm.custom_provider_map = [*(litellm.custom_provider_map or []), entry]
    yield SCRIPTED
    litellm.custom_provider_map = [e for e in litellm.custom_provider_map if e is not entry]


@pytest.fixture(scope="session")
def rb_all(routerbench: Any) -> Any:
    """RouterBench train + test (the recorded responses the replay provider serves)."""
    from llmrouter_core.data.core import RoutingData

    train, test = routerbench
    return RoutingData.concat([train, test])


@pytest.fixture(scope="session")
def replay(rb_all: Any) -> Any:
    from llmrouter_core.providers.replay import set_replay_data

    store = set_replay_data(rb_all)
    yield store
    set_replay_data(None)


@pytest.fixture(scope="session")
def knn_router(routerbench: Any) -> Any:
    """A kNN router trained on 400 RouterBench training queries (all three tasks)."""
    import llmrouter_core as lr

    train, _ = routerbench
    rows = np.sort(np.random.default_rng(11).choice(train.n_queries, 400, replace=False))
    return lr.get_router("knn", n_neighbors=10, blend=1.0).fit(train.subset(rows))


@pytest.fixture(scope="session")
def replay_pool(knn_router: Any, replay: Any) -> Any:
    from llmrouter_core.providers.replay import replay_pool as make

    return make(knn_router.pool_)


@pytest.fixture(scope="session")
def tool_pool(knn_router: Any, replay_pool: Any, scripted_provider: str) -> Any:
    """The replay pool with the two OpenAI models answered by the scripted tool model; the
    other nine cannot take tools."""
    from llmrouter_core.pool import Pool

    specs = []
    for spec in replay_pool:
        if spec.name in TOOL_MODELS:
            price_in, price_out = PRICES[spec.name]
            spec = replace(
                spec,
                litellm_model=f"{scripted_provider}/{spec.name}",
                supports_tools=True,
                input_price=price_in,
                output_price=price_out,
            )
        specs.append(spec)
    return Pool(specs)


@pytest.fixture(scope="session")
def scripted_pool(knn_router: Any, scripted_provider: str) -> Any:
    """Every model of the router answered by the scripted model (for text-only agents)."""
    from llmrouter_core.pool import Pool

    return Pool(
        replace(s, litellm_model=f"{scripted_provider}/{s.name}", input_price=1.0, output_price=2.0)
        for s in knn_router.pool_
    )


@pytest.fixture(scope="session")
def rb_test_rows(routerbench: Any, replay: Any) -> tuple[Any, list[int]]:
    """RouterBench test prompts of the three tasks (a seeded sample)."""
    _, test = routerbench
    rows = np.random.default_rng(5).choice(test.n_queries, 12, replace=False)
    return test, [int(i) for i in rows]
