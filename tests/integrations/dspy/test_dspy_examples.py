"""The DSPy examples run offline, end to end, at a small size."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_routed_lm_example(data_dir: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("dspy_routed_lm").main(n_questions=3, n_train=200)
    assert len(rows) == 3
    for row in rows:
        assert row["cost"] > 0 and row["score"] in (0.0, 1.0) and row["model"]
    assert "total $" in capsys.readouterr().out


def test_optimize_assignment_example(data_dir: Any, capsys: pytest.CaptureFixture[str]) -> None:
    models = ("mistralai/mistral-7b-chat", "zero-one-ai/Yi-34B-Chat")
    out = _load("dspy_optimize_assignment").main(
        dev=30, held_out=20, models=models, router_train=200
    )
    assignment = out["assignment"]
    assert list(assignment) == ["draft", "check", "arbiter"]
    for policy in assignment.values():
        assert policy.model in models or policy.cost_weight == 20.0
    results = out["results"]
    assert set(results) == {"tuned", *models}
    assert all(math.isfinite(r.objective) and r.n == 20 for r in results.values())
    assert "chosen on 30 dev prompts" in capsys.readouterr().out


def test_bootstrap_then_assign_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = _load("dspy_bootstrap_and_assign")
    out = example.main()
    assert "bootstrapped demos per stage" in capsys.readouterr().out
    # the cheap model writes the expressions, the strong one computes (the cheap one errs)
    assignment = {name: policy.label for name, policy in out["assignment"].items()}
    assert assignment == {"extract": example.CHEAP, "compute": example.STRONG}
    # DSPy's BootstrapFewShot demos survived save + load_program ...
    assert all(n >= 2 for n in out["demos"].values())
    # ... and are rendered into the prompts the models received
    last = out["calls"][-1]
    assert len([m for m in last.messages if m["role"] == "user"]) > 1
    tuned, loaded = out["results"]["tuned"], out["results"]["loaded"]
    assert loaded.quality == tuned.quality == 1.0
    assert loaded.cost == pytest.approx(tuned.cost)
