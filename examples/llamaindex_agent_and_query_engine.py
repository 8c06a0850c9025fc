"""A LlamaIndex ``FunctionAgent`` with real Python tools, and a query engine, over routed LLMs.

1. The agent: ordinary LlamaIndex code (``FunctionAgent(tools=..., llm=...)``) with a
   ``RoutedLLM`` as its LLM. Every model call of the agent is routed by a kNN router trained
   on RouterBench, among the pool models that support tools (the agent binds tools); the
   agent's output names the model that answered and what it cost. The two tool-capable
   models (gpt-4 and gpt-3.5) are served by a rule-based stand-in that calls the tool offered
   with the question's numbers and then states the tool's result (not a language model); the
   others cannot take tools. With API keys, drop the stand-in pool and the same router calls
   the real models.
2. The query engine: a ``SummaryIndex`` over a few documents, queried through a
   ``RoutedLLM`` over the local models (small real LLMs on the CPU, ``local`` extra; this part
   is skipped without them). The retrieved text is in the prompt the routed model answers.

Usage:
    python examples/llamaindex_agent_and_query_engine.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
from llama_index.core import Document, SummaryIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.llmrouter import RoutedLLM

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.execution import PoolOrderRouter
from llmrouter_core.pool import Pool
from llmrouter_core.providers.local import default_local_pool, local_models_available
from llmrouter_core.testing import ScriptedProvider, ScriptedReply
from llmrouter_core.testing.provider import ScriptedCall

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO.parent / "shared" / "data"))
TOOL_MODELS = ("gpt-4-1106-preview", "gpt-3.5-turbo-1106")
DOCS = (
    "The lighthouse of Varn was built in 1872 and is painted red.",
    "Varn is a fishing town on the northern coast.",
)


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


class ToolCaller:
    """The stand-in: with tools, call the one the question names (else the first) with the
    question's integers; after a tool result, state it."""

    def respond(self, call: ScriptedCall) -> str | ScriptedReply:
        tools = call.params.get("tools") or []
        last = call.messages[-1]
        if not tools:
            return "I have no tool for this."
        if last.get("role") == "tool":
            return f"The answer is {last.get('content')}."
        question = str(call.messages[-1].get("content"))
        names = [t["function"]["name"] for t in tools]
        name = next((n for n in names if n in question or n.rstrip("y") in question), names[0])
        a, b = (int(x) for x in re.findall(r"-?\d+", question)[:2])
        arguments = json.dumps({"a": a, "b": b})
        return ScriptedReply(
            tool_calls=[
                {
                    "id": f"call_{name}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ]
        )


def agent_pool(router: Any) -> Pool:
    """The router's pool (priced from RouterBench's recorded costs): the tool-capable two
    answered by the stand-in, the others (no tools) by their recorded answers."""
    from llmrouter_core.providers.replay import replay_pool

    provider = ScriptedProvider(dict.fromkeys(TOOL_MODELS, ToolCaller()))
    scripted = provider.pool(supports_tools=True)
    return Pool(
        dataclasses.replace(s, litellm_model=scripted[s.name].litellm_model, supports_tools=True)
        if s.name in TOOL_MODELS
        else s
        for s in replay_pool(router.pool_)
    )


def run_agent(n_train: int = 400) -> list[dict[str, Any]]:
    train, _ = load_split("routerbench", data_dir=DATA_DIR)
    router = lr.get_router("knn").fit(train.subset(np.arange(min(n_train, train.n_queries))))
    llm = RoutedLLM(router, pool=agent_pool(router), cost_weight=100.0)
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=multiply), FunctionTool.from_defaults(fn=add)],
        llm=llm,
        system_prompt="Use the tools to compute.",
    )

    async def ask(question: str) -> Any:
        return await agent.run(user_msg=question)

    rows = []
    for question in ("What is 37 multiplied by 91?", "What is 1200 add 34?"):
        output = asyncio.run(ask(question))
        extra = output.response.additional_kwargs  # who answered the last turn, its cost
        rows.append(
            {
                "question": question,
                "answer": str(output),
                "tool_calls": [
                    (c.tool_name, c.tool_kwargs, c.tool_output.content) for c in output.tool_calls
                ],
                "model": extra["model"],
                "cost": extra["cost"],
            }
        )
        print(f"{question!r} -> {output} ({extra['model']}, ${extra['cost']:.6f})")
    return rows


def run_query_engine() -> dict[str, Any] | None:
    if not local_models_available():
        print("query engine: skipped (the local models are not installed: extra 'local')")
        return None
    local = default_local_pool().subset(local_models_available())
    llm = RoutedLLM(PoolOrderRouter(local), max_tokens=32)
    index = SummaryIndex.from_documents([Document(text=t) for t in DOCS])
    response = index.as_query_engine(llm=llm).query("When was the lighthouse of Varn built?")
    print(f"query engine: {str(response).strip()!r}")
    return {
        "answer": str(response),
        "sources": [n.node.get_content() for n in response.source_nodes],
    }


def main() -> dict[str, Any]:
    return {"agent": run_agent(), "query_engine": run_query_engine()}


if __name__ == "__main__":
    main()
