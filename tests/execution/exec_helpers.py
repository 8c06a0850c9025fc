"""Helpers of the execution tests: pools that call a router's models through LiteLLM mock
responses, with prices derived from the real data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from llmrouter_core.data import RoutingData
from llmrouter_core.pool import Pool, estimate_tokens

# Model families that support tool calling and JSON schemas in their providers' APIs, and the
# published context windows of the smaller RouterBench models.
TOOL_MODELS = ("gpt-4-1106-preview", "gpt-3.5-turbo-1106", "claude-v2", "claude-instant-v1")
SMALL_CONTEXT = {"meta/llama-2-70b-chat": 4096, "WizardLM/WizardLM-13B-V1.2": 4096}


def data_prices(data: RoutingData) -> dict[str, float]:
    """USD per 1M tokens per model, from the data's measured costs: mean cost over mean
    (prompt + response) tokens."""
    assert data.costs is not None and data.responses is not None
    prompt = np.array([estimate_tokens(q) for q in data.queries], dtype=float)
    out = {}
    for j, model in enumerate(data.models):
        resp = np.array(
            [estimate_tokens(r) if isinstance(r, str) else 0 for r in data.responses[:, j]]
        )
        out[model] = float(np.nanmean(data.costs[:, j]) / np.mean(prompt + resp) * 1e6)
    return out


def mocked_pool(
    router: Any, data: RoutingData, faults: Mapping[str, Mapping[str, Any]] | None = None
) -> Pool:
    """The router's models called as ``openai/<name>`` with LiteLLM mock responses, prices
    derived from the data, realistic capabilities; ``faults`` overrides a model's mock."""
    prices = data_prices(data)
    specs = []
    for spec in router.pool_:
        kwargs: dict[str, Any] = {"mock_response": f"answer of {spec.name}"}
        kwargs.update((faults or {}).get(spec.name, {}))
        specs.append(
            replace(
                spec,
                litellm_model=f"openai/{spec.name}",
                input_price=prices[spec.name],
                output_price=prices[spec.name],
                supports_tools=spec.name in TOOL_MODELS,
                supports_json_schema=spec.name in TOOL_MODELS,
                context_window=SMALL_CONTEXT.get(spec.name, 16384),
                extra={"litellm_kwargs": kwargs},
            )
        )
    return Pool(specs)


def register_probe(litellm: Any, provider: str = "probe") -> list[dict[str, Any]]:
    """A LiteLLM provider that answers every call and records what it was given (model, API
    key, optional parameters); returns the list it records into."""
    import threading

    from litellm.llms.custom_llm import CustomLLM

    calls: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Probe(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            with lock:
                calls.append(
                    {
                        "model": model,
                        "api_key": k.get("api_key"),
                        "params": dict(k.get("optional_params") or {}),
                    }
                )
            return litellm.ModelResponse(
                model=model,
                choices=[{"message": {"role": "assistant", "content": f"{model} answers"}}],
                usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            )

        async def acompletion(self, *a: Any, **k: Any) -> Any:
            return self.completion(*a, **k)

    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p["provider"] != provider],
        {"provider": provider, "custom_handler": Probe()},
    ]
    return calls


def probe_pool(router: Any, provider: str = "probe", **changes: Any) -> Pool:
    """The router's models, each called as ``<provider>/<name>``."""
    return Pool(
        replace(s, litellm_model=f"{provider}/{s.name}", extra={}, **changes) for s in router.pool_
    )
