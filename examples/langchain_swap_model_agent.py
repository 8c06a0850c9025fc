"""Swap the chat model of an existing tool-calling agent for a routed one.

The agent below is ordinary LangChain code: tools, a system prompt, a checkpointer. The only
change is the model. Instead of one provider model::

    model = ChatOpenAI(model="gpt-4o-mini")

it gets a ``RoutedChatModel``, which routes every model call of the agent to the model of a
pool that a trained router picks for it (among the models that support tools, since the
agent binds tools), and reports which model answered and what it cost.

Runs offline. The router is a kNN router trained on real RouterBench outcomes of the pool's
two models; the models are served by the scripted stand-in of ``langchain_llmrouter.testing``
(rule-based, not a language model) and charged at their real LiteLLM prices. With API keys,
drop ``scripted_pool`` and the same pool calls the real models.

Usage:
    python examples/langchain_swap_model_agent.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_llmrouter import RoutedChatModel
from langchain_llmrouter.testing import scripted_pool
from langgraph.checkpoint.memory import InMemorySaver

import llmrouter_core as lr
from llmrouter_core.benchmark import load_split
from llmrouter_core.pool import Pool

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO.parent / "shared" / "data"))
MODELS = ["gpt-4-1106-preview", "gpt-3.5-turbo-1106"]
QUESTIONS = [
    "What is the weather in Lisbon?",
    "Convert 250 euros to 'JPY' for my trip.",
]


# -- the existing agent (unchanged) -------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"Sunny and 24 C in {city}."


@tool
def convert_currency(amount: float, currency: str) -> str:
    """Convert an amount of euros to another currency."""
    rates = {"JPY": 161.0, "USD": 1.08, "GBP": 0.85}
    return f"{amount:g} EUR = {amount * rates.get(currency.upper(), 1.0):,.0f} {currency}"


def build_agent(model: Any) -> Any:
    return create_agent(
        model,
        tools=[get_weather, convert_currency],
        system_prompt="You are a concise travel assistant. Use the tools.",
        checkpointer=InMemorySaver(),
    )


# -- the one change: a routed model -------------------------------------------------------


def train_router() -> Any:
    train, _ = load_split("routerbench", data_dir=DATA_DIR)
    data = train.subset(np.arange(400)).select_models(MODELS)
    return lr.get_router("knn", n_neighbors=10).fit(data)


def routed_model(router: Any, cost_weight: float) -> RoutedChatModel:
    pool = scripted_pool(Pool.from_names(MODELS, fill_prices=True))
    return RoutedChatModel(router=router, pool=pool, cost_weight=cost_weight)


def main() -> list[dict[str, Any]]:
    rows = []
    router = train_router()
    # The router's one knob: 0 puts quality first; 100 pays at most $0.01 per 1 point of
    # expected quality.
    for cost_weight in (0.0, 100.0):
        agent = build_agent(routed_model(router, cost_weight))
        print(f"\n== cost weight {cost_weight:g}")
        for k, question in enumerate(QUESTIONS):
            state = agent.invoke(
                {"messages": [("user", question)]}, {"configurable": {"thread_id": f"trip-{k}"}}
            )
            print(f"> {question}")
            for message in state["messages"]:
                if not isinstance(message, AIMessage):
                    continue
                meta = message.response_metadata
                calls = ", ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
                print(f"  [{meta['model_name']}, ${meta['cost']:.6f}] {calls or message.text}")
                rows.append(
                    {
                        "cost_weight": cost_weight,
                        "question": question,
                        "model": meta["model_name"],
                        "cost": meta["cost"],
                        "tool_calls": message.tool_calls,
                        "text": message.text,
                    }
                )
        total = sum(r["cost"] for r in rows if r["cost_weight"] == cost_weight)
        print(f"  ${total:.6f} in total")
    return rows


if __name__ == "__main__":
    main()
