"""The LangChain examples run offline and do what they say (on smaller settings)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[4] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_swap_model_agent(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("langchain_swap_model_agent")
    rows = example.main()
    assert "$" in capsys.readouterr().out
    by_weight: dict[float, list[dict]] = {}
    for row in rows:
        by_weight.setdefault(row["cost_weight"], []).append(row)
        assert row["model"] in example.MODELS
    assert sorted(by_weight) == [0.0, 100.0]
    for group in by_weight.values():
        # Each question: one tool call, then an answer that reads the tool's result.
        calls = [r["tool_calls"][0] for r in group if r["tool_calls"]]
        assert [c["name"] for c in calls] == ["get_weather", "convert_currency"]
        assert calls[0]["args"] == {"city": "Lisbon"}
        assert calls[1]["args"] == {"amount": 250.0, "currency": "JPY"}
        texts = [r["text"] for r in group if not r["tool_calls"]]
        assert "Lisbon" in texts[0] and "JPY" in texts[1]
    spend = {w: sum(r["cost"] for r in g) for w, g in by_weight.items()}
    assert spend[100.0] < spend[0.0]


def test_router_node(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("langchain_router_node")
    out = example.main(["--questions", "16", "--train", "600", "--target-cost", "0.001"])
    assert "saves" in capsys.readouterr().out
    existing, routed = out["existing"], out["routed"]
    assert existing["answers_by_model"] == {example.STRONG: 16}
    assert set(routed["answers_by_model"]) == {example.STRONG, example.FAST}
    assert sum(routed["answers_by_model"].values()) == 16
    assert routed["cost_per_question"] < existing["cost_per_question"]
    assert 0.0 <= routed["accuracy"] <= 1.0


def test_budget_agent(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("langchain_budget_agent")
    out = example.main(["--budget", "0.012", "--questions", "16"])
    assert "spent" in capsys.readouterr().out
    for run in (out["quality_first"], out["paced"]):
        assert run["spent"] <= out["budget"]
        assert run["budget_spent"] == pytest.approx(run["spent"])
        remaining = [a["remaining"] for a in run["answered"]]
        assert remaining == sorted(remaining, reverse=True)
    first, paced = out["quality_first"], out["paced"]
    # Quality first runs out of money; pacing answers more questions with the same budget.
    assert first["stopped"] is not None
    assert len(paced["answered"]) > len(first["answered"])


def test_agentic_graph_with_router_node_fanout_and_checkpointer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import lc_testkit as kit

    example = load("langgraph_agentic_graph")
    out = example.main(["--questions", "6", "--train", "600"])
    assert "one thread, 12 messages" in capsys.readouterr().out
    rows = out["rows"]
    assert {r["path"] for r in rows} == {"answer", "fan_out"}  # both branches taken
    for row in rows:
        # every answer is what the answering model really said to that question
        assert row["answer"] == kit.recorded(row["question"], row["model"])[0]
        if row["path"] == "fan_out":
            assert len(row["candidates"]) == 2 and row["model"] in row["candidates"]
            assert example.STRONG in row["candidates"]
        else:
            assert row["model"] != example.STRONG and row["candidates"] == []
        assert row["cost"] > 0
    # the checkpointer kept the whole conversation in one thread, in order
    history = out["history"]
    assert [m.content for m in history[0::2]] == [r["question"] for r in rows]
    assert [m.content for m in history[1::2]] == [r["answer"] for r in rows]
    # streamed as a chat UI sees it: one answer, the kept one
    texts = [text for text, _ in out["streamed"]]
    assert "".join(texts) == rows[0]["answer"]
