"""Shared setup of the LangChain adapter tests: real routers trained on RouterBench slices and
offline pools that serve them.

What is real and what is not:

* The routers are real kNN routers trained on real RouterBench outcomes (scores and costs).
* ``replay/<model>`` answers are the responses those models really gave to RouterBench
  prompts, at their recorded cost.
* ``local/smollm2-135m`` is a real (tiny) language model run on the CPU with llama.cpp; it
  stands in for ``mistralai/mistral-7b-chat`` in the conformance suite when installed.
* ``scripted/<model>`` is a rule-based stand-in, not a language model (see
  ``langchain_llmrouter.testing``): it makes tool calls and JSON answers offline.

The standard LangChain suites read their model parameters from properties, not fixtures,
so the trained routers are cached module-level values here.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from langchain_core.callbacks import BaseCallbackHandler

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

logger = logging.getLogger(__name__)

#: The two-model pool of the conformance suites: a cheap open model and a strong API model.
CHEAP = "mistralai/mistral-7b-chat"
STRONG = "gpt-4-1106-preview"
#: Models of RouterBench's pool that support tools and JSON schemas in their real APIs.
TOOL_MODELS = ("gpt-4-1106-preview", "gpt-3.5-turbo-1106", "claude-v2", "claude-instant-v1")
N_TRAIN = 300


def data_dir() -> Path:
    return Path(os.environ["LLMROUTER_DATA_DIR"])


@functools.lru_cache(maxsize=1)
def routerbench() -> tuple[Any, Any]:
    """RouterBench's (train, test) split."""
    from llmrouter_core.benchmark import load_split

    return load_split("routerbench", data_dir=data_dir())


@functools.lru_cache(maxsize=1)
def full_router() -> Any:
    """A kNN router over RouterBench's 11 models, trained on 300 training queries."""
    import llmrouter_core as lr

    train, _ = routerbench()
    return lr.get_router("knn", n_neighbors=10, blend=1.0).fit(train.subset(np.arange(N_TRAIN)))


@functools.lru_cache(maxsize=1)
def two_model_router() -> Any:
    """A kNN router over (CHEAP, STRONG), trained on 300 training queries."""
    import llmrouter_core as lr

    train, _ = routerbench()
    data = train.subset(np.arange(N_TRAIN)).select_models([CHEAP, STRONG])
    return lr.get_router("knn", n_neighbors=10, blend=1.0).fit(data)


@functools.lru_cache(maxsize=1)
def saved_two_model_router() -> str:
    """The directory of :func:`two_model_router` saved to disk (removed at exit)."""
    import atexit
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="llmrouter-lc-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = str(Path(directory) / "router")
    two_model_router().save(path)
    return path


def local_model_available() -> bool:
    from llmrouter_core.providers.local import local_models_available

    return "smollm2-135m" in local_models_available()


def litellm_prices(names: Any) -> Any:
    """A pool of ``names`` with LiteLLM's published prices (where it knows the model)."""
    from llmrouter_core.pool import Pool

    return Pool.from_names(names, fill_prices=True)


@functools.lru_cache(maxsize=1)
def conformance_pool() -> Any:
    """The pool of the conformance suite: CHEAP served by the local SmolLM2 model (or, without
    llama-cpp-python, by the scripted stand-in, text only), STRONG by the scripted stand-in
    with tools and JSON schemas."""
    from dataclasses import replace

    from langchain_llmrouter.testing import scripted_pool

    from llmrouter_core.pool import ModelSpec, Pool

    priced = litellm_prices([STRONG])
    strong = scripted_pool(priced)[STRONG]
    if local_model_available():
        cheap = ModelSpec(
            CHEAP,
            litellm_model="local/smollm2-135m",
            input_price=0.0,
            output_price=0.0,
            context_window=1920,
        )
    else:
        logger.warning(
            "llama-cpp-python or SmolLM2 missing: the scripted stand-in answers for %s", CHEAP
        )
        cheap = replace(
            scripted_pool(Pool([ModelSpec(CHEAP)]), tools=False, json_schema=False)[CHEAP],
            input_price=0.0,
            output_price=0.0,
        )
    return Pool([cheap, strong])


def replay_pool(router: Any) -> Any:
    """``router``'s models answering with their recorded RouterBench responses."""
    from llmrouter_core.providers.replay import replay_pool as _replay_pool
    from llmrouter_core.providers.replay import set_replay_data

    _, test = routerbench()
    set_replay_data(test)
    return _replay_pool(router.pool_)


def tool_pool(router: Any) -> Any:
    """``router``'s models with LiteLLM prices; the tool-capable ones served by the scripted
    stand-in, the others by replay (no tools)."""
    from dataclasses import replace

    from langchain_llmrouter.testing import scripted_pool

    from llmrouter_core.pool import Pool

    replayed = replay_pool(router)
    # LiteLLM's published prices; where it has none, the router's (fitted to RouterBench's
    # recorded costs), so every call's cost is known.
    listed = litellm_prices(router.models_)
    priced = Pool(
        s if s.has_prices else replace(s, input_price=router.pool_[s.name].input_price,
                                       output_price=router.pool_[s.name].output_price)
        for s in listed
    )
    specs = []
    for spec in scripted_pool(priced, models=[m for m in TOOL_MODELS if m in priced]):
        if not spec.litellm_model.startswith("scripted/"):
            spec = replace(
                replayed[spec.name], input_price=spec.input_price, output_price=spec.output_price
            )
        specs.append(spec)
    return Pool(specs)


def recorded(prompt: str, model: str) -> tuple[str, float]:
    """The response ``model`` gave to the RouterBench test ``prompt`` and its recorded cost."""
    _, test = routerbench()
    i = test.queries.index(prompt)
    j = test.models.index(model)
    assert test.costs is not None and test.responses is not None
    return str(test.responses[i, j]), float(test.costs[i, j])


class Recorder(BaseCallbackHandler):
    """Records chat-model runs, chain runs (with parents and outputs) and streamed tokens."""

    def __init__(self) -> None:
        self.chat_runs: list[UUID] = []
        self.chains: list[dict[str, Any]] = []
        self.tokens = 0

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.chat_runs.append(run_id)

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.chains.append(
            {
                "run_id": run_id,
                "parent": parent_run_id,
                "name": kwargs.get("name"),
                "metadata": kwargs.get("metadata"),
                "inputs": inputs,
            }
        )

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        for chain in self.chains:
            if chain["run_id"] == run_id:
                chain["outputs"] = outputs

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens += 1
