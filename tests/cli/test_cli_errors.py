"""One clear plain-text error line per bad input, nothing half-written, quiet defect reports.

Every case runs the real ``llmrouter`` app on real files: a router trained on RouterBench
(``single``: fast), query files written to ``tmp_path``, the shared data for replay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llmrouter_core.cli.main import app
from llmrouter_core.data import load_dataset
from llmrouter_core.providers.replay import set_replay_data

runner = CliRunner()


def run(*args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result: Result) -> str:
    """The single non-empty stderr line of a failed run (asserted), without traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(autouse=True)
def _reset_replay() -> Any:
    yield
    set_replay_data(None)


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("cli_errors") / "router"
    result = run("train", "--router", "single", "--data", "routerbench", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> list[str]:
    """Real RouterBench test prompts (replay has their recorded answers)."""
    return load_dataset("routerbench", split="test").queries[:2100]


def write_queries(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps({"query_id": f"q{i}", "query": text}) + "\n")
    return path


# -- 1. plain text, never markup ---------------------------------------------------------


def test_a_path_with_markup_closing_tag_is_printed_as_given(tmp_path: Path) -> None:
    path = tmp_path / "[/x]" / "a.csv"
    line = one_error_line(run("train", "--data", path, "--out", tmp_path / "r"))
    assert line == f"error: file not found: {path}"


def test_bracketed_path_parts_do_not_vanish(tmp_path: Path) -> None:
    bad = tmp_path / "runs" / "[v2]" / "scores.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text("query_id,query,model,score\nq1,hi,a,2.5\n")
    line = one_error_line(run("train", "--data", bad, "--out", tmp_path / "r"))
    assert "1 rows have a score that is outside [0, 1]: scores.csv row 1" in line
    assert not (tmp_path / "r").exists()
    bad.write_text("id,text\n1,hi\n")
    line = one_error_line(run("train", "--data", bad, "--out", tmp_path / "r"))
    assert f"{bad}: unknown routing-data format" in line


def test_defect_locations_in_brackets_are_kept(data_dir: Path, tmp_path: Path) -> None:
    """``--on-defect error`` on real rows with a twice-listed id: the [file row N] location
    of the first defect is in the one line."""
    import pandas as pd

    src = data_dir / "routerbench" / "arc_challenge_test.csv"
    path = tmp_path / "arc_challenge_test.csv"
    pd.read_csv(src, dtype=str, keep_default_na=False).iloc[360:372].to_csv(path, index=False)
    line = one_error_line(
        run("train", "--data", path, "--on-defect", "error", "--out", tmp_path / "r")
    )
    assert "12 rows read" in line
    assert "arc-challenge.val.172 [arc_challenge_test.csv row 8; arc_challenge_test.csv row 9]" in (
        line
    )
    assert "Use --on-defect drop" in line


def test_route_output_path_with_brackets(router_dir: Path, tmp_path: Path) -> None:
    queries = write_queries(tmp_path / "q.jsonl", ["What is 2+2?", "Name a prime number."])
    out = tmp_path / "[v2]" / "[/x]" / "routes.jsonl"
    result = run("route", "--router-dir", router_dir, "--queries", queries, "--output", out)
    assert result.exit_code == 0, result.output
    assert f"-> {out}" in result.stderr
    assert len(out.read_text().splitlines()) == 2


# -- 2. route: file and line, nothing half-written, sane numbers --------------------------


def test_empty_query_is_reported_with_file_and_line(router_dir: Path, tmp_path: Path) -> None:
    texts = [f"Question number {i}: what is {i} squared?" for i in range(2100)]
    texts[2049] = "  "
    queries = write_queries(tmp_path / "q.jsonl", texts)
    out = tmp_path / "out" / "routes.jsonl"
    args = ["route", "--router-dir", router_dir, "--queries", queries, "--output", out]
    line = one_error_line(run(*args, "--sweep", "3"))
    assert line == f"error: {queries}:2050: empty query (nothing to route on)"
    assert not out.exists() and not out.with_name("routes.jsonl.partial").exists()


def test_non_utf8_queries_name_file_and_line(router_dir: Path, tmp_path: Path) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_bytes(b'{"query_id": 1, "query": "fine"}\n{"query_id": 2, "query": "caf\xe9"}\n')
    out = tmp_path / "routes.jsonl"
    line = one_error_line(
        run("route", "--router-dir", router_dir, "--queries", queries, "--output", out)
    )
    assert line == f"error: {queries}:2: not valid UTF-8"
    assert not out.exists()


def test_a_failure_while_writing_leaves_no_partial_file(
    router_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interruption in the second chunk (after 2,048 rows were written) removes OUT.partial."""
    from llmrouter_core.router import Router

    real = Router.choices
    calls = {"n": 0}

    def choices(self: Router, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Router, "choices", choices)
    texts = [f"Question number {i}: what is {i} squared?" for i in range(2100)]
    queries = write_queries(tmp_path / "q.jsonl", texts)
    out = tmp_path / "routes.jsonl"
    result = run(
        "route", "--router-dir", router_dir, "--queries", queries, "--output", out, "--sweep", "1"
    )
    assert result.exit_code == 130
    assert one_error_line(result) == "error: interrupted"
    assert calls["n"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.jsonl"]


@pytest.mark.parametrize(
    ("option", "value"),
    [("--cost-weight", "nan"), ("--cost-weight", "-5"), ("--budget", "-1"), ("--budget", "nan")],
)
def test_route_rejects_nan_and_negative_numbers(
    router_dir: Path, tmp_path: Path, option: str, value: str
) -> None:
    queries = write_queries(tmp_path / "q.jsonl", ["What is 2+2?"])
    out = tmp_path / "routes.jsonl"
    line = one_error_line(
        run(
            "route",
            "--router-dir",
            router_dir,
            "--queries",
            queries,
            "--output",
            out,
            option,
            value,
        )
    )
    assert line.startswith(f"error: {option} must be a number >= 0, got ")
    assert not out.exists()


def test_route_accepts_inf_cost_weight_as_cheapest(router_dir: Path, tmp_path: Path) -> None:
    queries = write_queries(tmp_path / "q.jsonl", ["What is 2+2?"])
    out = tmp_path / "routes.jsonl"
    args = ["route", "--router-dir", router_dir, "--queries", queries, "--output", out]
    assert run(*args, "--cost-weight", "inf", "--details").exit_code == 0
    row = json.loads(out.read_text())
    assert row["cost_weight"] == "inf"


# -- 2-3. infer: same care for --input; cheap arguments before any slow load ---------------


@pytest.fixture
def no_slow_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) loading the router or the replay data."""
    import llmrouter_core.persistence as persistence
    import llmrouter_core.providers.replay as replay

    calls: list[str] = []

    def refuse(what: str) -> Any:
        def f(*args: Any, **kwargs: Any) -> Any:
            calls.append(what)
            raise AssertionError(f"{what} was loaded before the arguments were checked")

        return f

    monkeypatch.setattr(persistence, "load_router", refuse("router"))
    monkeypatch.setattr(replay, "load_replay_data", refuse("replay data"))
    return calls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cost-weight", "nan"], "--cost-weight must be a number >= 0, got nan"),
        (["--cost-weight", "-5"], "--cost-weight must be a number >= 0, got -5.0"),
        (["--max-cost", "-0.1"], "--max-cost must be a number >= 0, got -0.1"),
        (["--budget", "nan"], "--budget must be a number >= 0, got nan"),
        (["--budget", "-2"], "--budget must be a number >= 0, got -2.0"),
        (["--timeout", "0"], "--timeout must be a finite number of seconds > 0, got 0.0"),
        (["--temperature", "nan"], "--temperature must be a finite number >= 0, got nan"),
        (["--max-retries", "-1"], "--max-retries must be at least 0"),
        (["--max-tokens", "0"], "--max-tokens must be at least 1"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_infer_checks_cheap_arguments_before_loading_anything(
    no_slow_loads: list[str], router_dir: Path, args: list[str], message: str
) -> None:
    result = run("infer", "-r", router_dir, "--replay", "routerbench", *args, "What is 2+2?")
    assert one_error_line(result) == f"error: {message}"
    assert no_slow_loads == []


@pytest.mark.parametrize(
    ("name", "content", "where", "message"),
    [
        ("in.jsonl", b'{"query": "ok"}\n{"query": "caf\xe9"}\n', ":2", "not valid UTF-8"),
        ("in.txt", b"first\nsecond\n\xff\xfe\n", ":3", "not valid UTF-8"),
        ("in.json", b'["ok",\n "caf\xe9"]', ":2", "not valid UTF-8"),
        ("in.jsonl", b'{"query": "ok"}\n\n{"query": " "}\n', ":3", "empty query"),
        ("in.json", b'["ok", ""]', " item 2", "empty query"),
        ("in.jsonl", b'{"query": "ok"}\n{"query": \n', ":2", "not valid JSON"),
        ("in.jsonl", b"[" * 100_000 + b"\n", ":1", "not valid JSON (nested too deeply)"),
    ],
)
def test_infer_input_errors_name_file_and_line_before_loading_anything(
    no_slow_loads: list[str],
    router_dir: Path,
    tmp_path: Path,
    name: str,
    content: bytes,
    where: str,
    message: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    line = one_error_line(run("infer", "-r", router_dir, "--replay", "routerbench", "-i", path))
    assert line.startswith(f"error: {path}{where}: {message}")
    assert no_slow_loads == []


# -- 6. quiet defect reports ---------------------------------------------------------------


def test_train_prints_a_one_line_defect_summary(data_dir: Path, tmp_path: Path) -> None:
    result = run("train", "--router", "single", "--data", "routerbench", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    defects = [x for x in lines if "defect" in x]
    assert defects == [
        "data defects: 16 defects (duplicate_id 14, train_test_overlap 2); dropped 30 rows, "
        "16 queries (use -v for details)"
    ]
    assert "arc_challenge_train.csv row" not in result.stderr
    assert len(lines) <= 3  # the summary, the split used, the result
    verbose = run(
        "train", "-v", "--router", "single", "--data", "routerbench", "--out", tmp_path / "r2"
    )
    assert verbose.exit_code == 0, verbose.output
    assert "duplicate_id: 14 (arc-challenge.val.208 [arc_challenge_train.csv row 76;" in (
        verbose.stderr
    )
    assert "use -v for details" not in verbose.stderr


def test_evaluate_prints_a_one_line_defect_summary(router_dir: Path) -> None:
    result = run("evaluate", "--router-dir", router_dir, "--data", "routerbench")
    assert result.exit_code == 0, result.output
    assert [x for x in result.stderr.splitlines() if x.strip()] == [
        "data defects: 16 defects (duplicate_id 14, train_test_overlap 2); dropped 30 rows, "
        "16 queries (use -v for details)"
    ]


def test_infer_with_replay_prints_no_defect_report(router_dir: Path, recorded: list[str]) -> None:
    result = run("infer", "-r", router_dir, "--replay", "routerbench", "--json", recorded[5])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answer"]
    # stderr has only the knob's default operating point, no defect report
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("knob: cost_weight="), lines


# -- bugs are one line too ---------------------------------------------------------------


def test_an_unexpected_exception_is_one_internal_error_line(
    router_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmrouter_core.persistence as persistence

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom [/x]")

    monkeypatch.setattr(persistence, "load_router", broken)
    line = one_error_line(run("infer", "-r", router_dir, "--route-only", "What is 2+2?"))
    assert line == (
        "error: internal error: RuntimeError: boom [/x] (please report this; -vv shows the "
        "traceback)"
    )


def test_a_huge_cost_weight_routes_to_the_cheapest_model(
    router_dir: Path, recorded: list[str]
) -> None:
    result = run(
        "infer", "-r", router_dir, "--route-only", "--cost-weight", "1e308", "--json", recorded[0]
    )
    assert result.exit_code == 0, result.output


def test_evaluate_outputs_are_checked_first_and_written_whole(
    router_dir: Path, tmp_path: Path, no_slow_loads: list[str]
) -> None:
    line = one_error_line(
        run("evaluate", "--router-dir", router_dir, "--data", "routerbench", "--json", tmp_path)
    )
    assert line == f"error: --json is a directory: {tmp_path}"
    assert no_slow_loads == []


def test_evaluate_json_goes_to_a_new_folder(router_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "[v2]" / "eval.json"
    result = run("evaluate", "--router-dir", router_dir, "--data", "routerbench", "--json", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["n_queries"] == 945
    assert sorted(p.name for p in out.parent.iterdir()) == ["eval.json"]


@pytest.mark.parametrize("param", ["n_neighbors=-3", "cv=1"])
def test_train_checks_hyperparameters_before_reading_the_data(
    data_dir: Path, tmp_path: Path, param: str
) -> None:
    """A bad ``--param`` is one error line, printed before the data is read (no split note)."""
    line = one_error_line(
        run(
            "train",
            "--router",
            "knn",
            "--param",
            param,
            "--data",
            "routerbench",
            "--out",
            tmp_path / "r",
        )
    )
    assert param.split("=")[0] in line
    assert not (tmp_path / "r").exists()
