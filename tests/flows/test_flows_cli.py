"""``llmrouter infer --flow``: a composite of recorded RouterBench prompts answered part by
part on the replay pool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llmrouter_core.cli.main import app
from llmrouter_core.data import RoutingData
from llmrouter_core.flows import make_composites
from llmrouter_core.providers.replay import get_replay_store, set_replay_data

runner = CliRunner()


def run(*args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("flows_cli") / "router"
    result = run("train", "--router", "knn", "--data", "routerbench", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(autouse=True)
def _reset_replay() -> Any:
    yield
    set_replay_data(None)


def test_infer_flow_agentic_json(router_dir: Path, rb_test: RoutingData) -> None:
    c = make_composites(rb_test, 1, parts=(2,), seed=4)[0]
    result = run(
        "infer",
        "-r",
        router_dir,
        "--replay",
        "routerbench",
        "--flow",
        "agentic",
        "--cost-weight",
        "100",
        "--json",
        c.query,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"answer", "models", "cost", "stopped", "steps"}
    calls = [s for s in out["steps"] if s["role"] == "call"]
    assert len(calls) == 2
    store = get_replay_store()
    total = 0.0
    for step in calls:
        rec = store.lookup(step["model"], rb_test.queries[c.rows[step["part"]]])
        assert step["reply"] == rec.text
        total += rec.cost or 0.0
    assert out["cost"] == pytest.approx(total)
    assert sorted(out["models"]) == sorted({s["model"] for s in calls})
    plain = run(
        "infer",
        "-r",
        router_dir,
        "--replay",
        "routerbench",
        "--flow",
        "agentic",
        "--cost-weight",
        "100",
        "-v",
        c.query,
    )
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.rstrip("\n") == out["answer"]
    assert "route " in plain.stderr and "cost $" in plain.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--flow", "multi-round"), "needs --policy-model"),
        (("--flow", "agentic", "--model", "claude-v1"), "does not go with"),
        (("--flow", "multi-round", "--policy-model", "nope"), "unknown --policy-model 'nope'"),
    ],
)
def test_infer_flow_bad_options_are_one_error(
    router_dir: Path, args: tuple[str, ...], message: str
) -> None:
    result = run("infer", "-r", router_dir, "--replay", "routerbench", *args, "What is 2+2?")
    assert result.exit_code != 0 and "Traceback" not in result.output
    # the knob's default operating point, shown once the router is loaded, is not the error
    lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("knob: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
