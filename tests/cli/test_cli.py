"""The ``llmrouter`` CLI, including the exact contracts outside tools rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llmrouter_core import load_router
from llmrouter_core.cli.main import app
from llmrouter_core.data import load_canonical, save_canonical

runner = CliRunner()


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def files(rb_small, tmp_path_factory):  # type: ignore[no-untyped-def]
    train, test = rb_small
    root = tmp_path_factory.mktemp("cli")
    save_canonical(train, root / "train.csv")
    with (root / "queries.jsonl").open("w") as fh:
        for i, (qid, q) in enumerate(zip(test.query_ids, test.queries)):
            # query ids of any JSON type are echoed back unchanged; extra fields are ignored
            fh.write(json.dumps({"query_id": i if i % 2 else qid, "query": q, "extra": [1]}) + "\n")
    return root, train, test


def test_list_routers_json_contract() -> None:
    result = _invoke("list-routers", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and rows
    names = {r["name"] for r in rows}
    assert {"auto", "knn", "logistic", "svm", "mlp", "single", "oracle"} <= names
    assert all(isinstance(r["family"], str) and r["family"] for r in rows)
    assert [r["name"] for r in rows if r["default"]] == ["auto"]


def test_train_then_route_sweep_contract(files) -> None:  # type: ignore[no-untyped-def]
    root, train, test = files
    out = root / "knn"
    result = _invoke(
        "train", "--router", "knn", "--data", str(root / "train.csv"), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    router = load_router(out)
    assert router.models_ == train.models
    result = _invoke(
        "route",
        "--router-dir",
        str(out),
        "--queries",
        str(root / "queries.jsonl"),
        "--sweep",
        "4",
        "--output",
        str(root / "out.jsonl"),
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (root / "out.jsonl").read_text().splitlines()]
    assert len(lines) == test.n_queries * 4
    assert all(set(row) == {"query_id", "point", "model"} for row in lines)
    assert {row["point"] for row in lines} == {0, 1, 2, 3}
    assert {row["model"] for row in lines} <= set(train.models)
    # ids come back as given (ints stay ints), every query once per point
    sent = [json.loads(x)["query_id"] for x in (root / "queries.jsonl").read_text().splitlines()]
    assert [row["query_id"] for row in lines[::4]] == sent
    # point 0 is the cheapest model per query; cost never falls as the point rises
    cost = router.predict_cost(test.queries)
    col = {m: j for j, m in enumerate(router.models_)}
    chosen = np.array(
        [[cost[i, col[lines[4 * i + k]["model"]]] for k in range(4)] for i in range(test.n_queries)]
    )
    np.testing.assert_allclose(chosen[:, 0], cost.min(axis=1))
    assert np.all(np.diff(chosen, axis=1) >= -1e-15)


def test_train_default_router_with_pool_and_no_costs(dcrouter, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, _ = dcrouter
    part = train.subset(np.arange(0, train.n_queries, 25))
    part.costs = None
    save_canonical(part, tmp_path / "dc.jsonl")
    assert load_canonical(tmp_path / "dc.jsonl").costs is None
    pool = {
        "models": [
            {"name": m, "input_price": 0.1 * (j + 1), "output_price": 0.2 * (j + 1)}
            for j, m in enumerate(part.models)
        ]
    }
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    result = _invoke(
        "train",
        "--data",
        str(tmp_path / "dc.jsonl"),
        "--pool",
        str(tmp_path / "pool.json"),
        "--out",
        str(tmp_path / "r"),
    )
    assert result.exit_code == 0, result.output
    router = load_router(tmp_path / "r")
    assert router.name == "auto"
    # Costs derived from the pool's prices: the pricier model is predicted to cost more.
    c = router.predict_cost(part.queries[:5])
    assert np.all(np.diff(c, axis=1) > 0)


def test_evaluate_prints_aiq(files) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = files
    out = root / "single"
    assert (
        _invoke(
            "train", "--router", "single", "--data", str(root / "train.csv"), "--out", str(out)
        ).exit_code
        == 0
    )
    result = _invoke(
        "evaluate",
        "--router-dir",
        str(out),
        "--data",
        "routerbench",
        "--json",
        str(root / "eval.json"),
        "--plot",
        str(root / "eval.png"),
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((root / "eval.json").read_text())
    assert 0.0 < doc["aiq"] <= 1.0
    assert doc["n_queries"] == 945
    assert (root / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_writes_leaderboard_and_plot(rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from llmrouter_core.data import RoutingData

    train, test = rb_small
    both = RoutingData.concat([train, test])
    both.splits = ["train"] * train.n_queries + ["test"] * test.n_queries
    save_canonical(both, tmp_path / "both.parquet")
    result = _invoke(
        "benchmark",
        "--dataset",
        str(tmp_path / "both.parquet"),
        "--routers",
        "single,knn",
        "--out",
        str(tmp_path / "bench"),
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "bench" / "leaderboard.json").read_text())
    assert {r["router"] for r in doc["leaderboard"]} == {"single", "knn"}
    assert doc["n_train"] == train.n_queries and doc["n_test"] == test.n_queries
    assert (tmp_path / "bench" / "curves.png").stat().st_size > 10_000
    assert "Leaderboard" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--router", "nope", "--data", "x.csv", "--out", "o"], "unknown router 'nope'"),
        (["train", "--data", "/no/such/file.csv", "--out", "o"], "no/such/file.csv"),
        (
            [
                "route",
                "--router-dir",
                "/no/such/dir",
                "--queries",
                "q.jsonl",
                "--sweep",
                "3",
                "--output",
                "o.jsonl",
            ],
            "router directory not found",
        ),
    ],
)
def test_bad_input_exits_with_one_clear_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len([x for x in result.stderr.splitlines() if x.strip()]) == 1


def test_wrong_columns_and_bad_queries_file(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = files
    (tmp_path / "bad.csv").write_text("id,text,llm,value\n1,hi,a,1\n")
    result = runner.invoke(
        app, ["train", "--data", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
    assert (
        _invoke(
            "train",
            "--router",
            "single",
            "--data",
            str(root / "train.csv"),
            "--out",
            str(tmp_path / "r"),
        ).exit_code
        == 0
    )
    (tmp_path / "q.jsonl").write_text('{"query_id": 1, "query": "fine"}\n{"query_id": 2}\n')
    result = runner.invoke(
        app,
        [
            "route",
            "--router-dir",
            str(tmp_path / "r"),
            "--queries",
            str(tmp_path / "q.jsonl"),
            "--sweep",
            "2",
            "--output",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert result.exit_code != 0
    assert "q.jsonl:2: missing field(s) query" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()  # nothing half-written
    result = runner.invoke(
        app,
        [
            "route",
            "--router-dir",
            str(tmp_path / "r"),
            "--queries",
            str(tmp_path / "q.jsonl"),
            "--sweep",
            "0",
            "--output",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert result.exit_code != 0 and "--sweep must be at least 1" in result.stderr


def test_installed_script_runs() -> None:
    exe = Path(sys.executable).parent / "llmrouter"
    proc = subprocess.run(
        [str(exe), "list-routers", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert any(r["name"] == "knn" for r in json.loads(proc.stdout))
