"""The LlamaIndex example runs offline, end to end, at a small size."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_routed_llm_example(data_dir: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from llama_index.core import Settings

    spec = importlib.util.spec_from_file_location(
        "example_llamaindex_routed_llm", EXAMPLES / "llamaindex_routed_llm.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = Settings._llm
    try:
        rows = module.main(n_questions=3, n_train=200)
    finally:
        Settings._llm = previous
    assert len(rows) == 6
    quality_first = [r for r in rows if r["cost_weight"] == 0.0]
    thrifty = [r for r in rows if r["cost_weight"] > 0]
    # A higher cost weight never picks a model the router expects to cost more.
    for strong, cheap in zip(quality_first, thrifty, strict=True):
        assert cheap["predicted_cost"] <= strong["predicted_cost"] + 1e-15
        assert cheap["cost"] > 0 and strong["cost"] > 0
        assert strong["answer"] and cheap["answer"]
    assert "streamed" in capsys.readouterr().out


def test_function_agent_and_query_engine_example(
    data_dir: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "example_llamaindex_agent", EXAMPLES / "llamaindex_agent_and_query_engine.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main()
    multiply, add = out["agent"]
    # the agent called the real Python tools with the question's numbers and used the result
    assert multiply["tool_calls"] == [("multiply", {"a": 37, "b": 91}, "3367")]
    assert add["tool_calls"] == [("add", {"a": 1200, "b": 34}, "1234")]
    assert "3367" in multiply["answer"] and "1234" in add["answer"]
    for row in (multiply, add):
        assert row["model"] in module.TOOL_MODELS  # routed among the tool-capable models
        assert row["cost"] > 0
    engine = out["query_engine"]
    from llmrouter_core.providers.local import local_models_available

    if not local_models_available():
        assert engine is None
        return
    assert set(engine["sources"]) == set(module.DOCS)
    assert engine["answer"].strip()
