"""``llmrouter infer`` and ``llmrouter chat`` with a saved trained router, answering offline
from RouterBench's recorded responses (``--replay``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from llmrouter_core.cli.run_commands import register
from llmrouter_core.data import RoutingData
from llmrouter_core.providers.replay import set_replay_data


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def router_dir(knn_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("router")
    knn_router.save(path)
    return path


@pytest.fixture(scope="module")
def replay_file(data_dir: Path) -> str:
    return str(data_dir / "routerbench" / "arc_challenge_test.csv")


@pytest.fixture(autouse=True)
def _reset_replay() -> Any:
    yield
    set_replay_data(None)


def run(app: typer.Typer, args: list[str], stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, args, input=stdin)


def typed(prompt: str) -> str:
    """A multi-line prompt as typed into the chat: each line but the last ends in a backslash."""
    return "\\\n".join(prompt.split("\n")) + "\n"


def recorded(data: RoutingData, query: str, model: str) -> tuple[str, float]:
    i = data.queries.index(query)
    j = data.model_index(model)
    assert data.responses is not None and data.costs is not None
    return str(data.responses[i, j]), float(data.costs[i, j])


def test_infer_json_answers_with_the_recorded_response(
    app: typer.Typer,
    router_dir: Path,
    replay_file: str,
    arc_test: RoutingData,
    knn_router: Any,
) -> None:
    q = arc_test.queries[7]
    res = run(app, ["infer", "--router-dir", str(router_dir), "--replay", replay_file, "--json", q])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out) == {"model", "answer", "cost", "attempts"}
    assert out["model"] == knn_router.route(q).model
    text, cost = recorded(arc_test, q, out["model"])
    assert out["answer"] == text and out["cost"] == pytest.approx(cost)
    assert [a["outcome"] for a in out["attempts"]] == ["success"]


def test_infer_route_only(
    app: typer.Typer, router_dir: Path, arc_test: RoutingData, knn_router: Any
) -> None:
    q = arc_test.queries[8]
    res = run(
        app, ["infer", "-r", str(router_dir), "--route-only", "--json", "--cost-weight", "inf", q]
    )
    assert res.exit_code == 0, res.output
    decision = json.loads(res.stdout.strip().splitlines()[-1])
    expected = knn_router.route(q, cost_weight=float("inf"))
    assert decision["model"] == expected.model
    assert decision["ranked"] == list(expected.ranked)
    assert decision["cost_weight"] == "inf"
    plain = run(app, ["infer", "-r", str(router_dir), "--route-only", q])
    assert plain.stdout.strip().splitlines()[0] == knn_router.route(q).model


def test_infer_batch_from_a_file(
    app: typer.Typer, router_dir: Path, replay_file: str, arc_test: RoutingData, tmp_path: Path
) -> None:
    queries = arc_test.queries[20:32]
    path = tmp_path / "queries.jsonl"
    lines = [json.dumps({"query": q}) for q in queries]
    lines.insert(3, json.dumps({"query": "A question that was never recorded."}))
    path.write_text("\n".join(lines) + "\n")
    res = run(
        app,
        [
            "infer",
            "-r",
            str(router_dir),
            "--replay",
            replay_file,
            "--json",
            "--input",
            str(path),
            "--concurrency",
            "3",
        ],
    )
    assert res.exit_code == 1  # one query failed; the others were answered
    rows = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert len(rows) == len(queries) + 1
    assert rows[3]["model"] is None and "AllModelsFailedError" in rows[3]["error"]
    answered = rows[:3] + rows[4:]
    for q, row in zip(queries, answered, strict=True):
        text, cost = recorded(arc_test, q, row["model"])
        assert row["answer"] == text and row["cost"] == pytest.approx(cost)


def test_infer_budget_refuses_what_does_not_fit(
    app: typer.Typer, router_dir: Path, replay_file: str, arc_test: RoutingData
) -> None:
    q = arc_test.queries[40]
    res = run(
        app,
        [
            "infer",
            "-r",
            str(router_dir),
            "--replay",
            replay_file,
            "--json",
            "--budget",
            "0.0000001",
            q,
        ],
    )
    assert res.exit_code == 1
    assert "spend limits" in res.output and '"answer"' not in res.stdout


def test_infer_usage_errors(app: typer.Typer, router_dir: Path, tmp_path: Path) -> None:
    assert run(app, ["infer", "-r", str(router_dir)]).exit_code != 0
    missing = run(app, ["infer", "-r", str(tmp_path / "nope"), "hello"])
    assert missing.exit_code == 1 and "error" in missing.output
    bad_pool = tmp_path / "pool.json"
    bad_pool.write_text(json.dumps({"models": [{"name": "other"}]}))
    res = run(app, ["infer", "-r", str(router_dir), "--pool", str(bad_pool), "hello"])
    assert res.exit_code == 1 and "lacks the router's models" in res.output


@pytest.mark.parametrize("mode", ["current_only", "full_context", "retrieval"])
def test_chat_answers_each_turn(
    app: typer.Typer,
    router_dir: Path,
    replay_file: str,
    arc_test: RoutingData,
    knn_router: Any,
    mode: str,
) -> None:
    questions = arc_test.queries[60:63]
    stdin = "".join(typed(q) for q in questions) + "/exit\n"
    res = run(
        app,
        ["chat", "-r", str(router_dir), "--replay", replay_file, "--mode", mode, "--no-stream"],
        stdin,
    )
    assert res.exit_code == 0, res.output
    first_text, _ = recorded(arc_test, questions[0], knn_router.route(questions[0]).model)
    assert first_text in res.stdout


def test_chat_commands(
    app: typer.Typer, router_dir: Path, replay_file: str, arc_test: RoutingData
) -> None:
    q = arc_test.queries[70]
    stdin = f"/mode retrieval\n{typed(q)}/reset\n/mode full\n{typed(q)}unrecorded question\n"
    res = run(app, ["chat", "-r", str(router_dir), "--replay", replay_file], stdin)
    assert res.exit_code == 0, res.output  # an unanswerable turn does not end the chat
    assert "context: retrieval" in res.output and "context: full_context" in res.output
    assert "conversation cleared" in res.output
    assert "AllModelsFailedError" in res.output or "all 11 models tried failed" in res.output
    bad = run(app, ["chat", "-r", str(router_dir), "--mode", "nonsense"], "")
    assert bad.exit_code == 1 and "unknown context mode" in bad.output


def test_chat_unknown_command_prints_help_and_goes_on(
    app: typer.Typer,
    router_dir: Path,
    replay_file: str,
    arc_test: RoutingData,
    knn_router: Any,
) -> None:
    q = arc_test.queries[60]
    stdin = f"/mode bogus\n/frobnicate\n/mode last_k 0\n/mode last 2\n{typed(q)}/exit\n"
    res = run(app, ["chat", "-r", str(router_dir), "--replay", replay_file, "--no-stream"], stdin)
    assert res.exit_code == 0, res.output
    assert "unknown context mode 'bogus'" in res.output
    assert "unknown command /frobnicate" in res.output
    assert "k must be a whole number >= 1" in res.output
    assert res.output.count("/mode MODE [K]") >= 4  # the banner, then help after each mistake
    assert "context: last_k (k=2)" in res.output
    answer, _ = recorded(arc_test, q, knn_router.route(q).model)
    assert answer in res.stdout
