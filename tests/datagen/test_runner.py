"""The data-generation runner on scripted models: scores, the canonical table, the cost
ceiling, failures, resume after ``kill -9``, shards and merge, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from llmrouter_core.cli.main import app
from llmrouter_core.data.loaders import load_data
from llmrouter_core.datagen.runner import STORE, generate, merge, parse_shard
from llmrouter_core.datagen.sources import load_examples
from llmrouter_core.datagen.tasks import get_task
from llmrouter_core.errors import DataError
from llmrouter_core.testing import ScriptedProvider

TASKS = ["arc_challenge", "gsm8k", "natural_qa"]
#: Columns that depend on the clock.
CLOCK = ["latency_s"]


@pytest.fixture(autouse=True)
def _data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMROUTER_DATA_DIR", str(data_dir))


def _right_answers(limit: int) -> dict[str, str]:
    """prompt -> a right answer, for the first ``limit`` train/test queries of TASKS."""
    from llmrouter_core.datagen.metrics import final_number

    out = {}
    for name in TASKS:
        task = get_task(name)
        for _, ex in load_examples(task, source="llmrouter", splits=["train", "test"], limit=limit):
            if name == "gsm8k":
                answer = f"The answer is {final_number(str(ex.gold)):g}"
            elif name == "natural_qa":
                answer = str(ex.gold)
            else:
                answer = f"The answer is {ex.gold}"
            out[task.prompt(ex)] = answer
    return out


def _provider(limit: int) -> ScriptedProvider:
    right = _right_answers(limit)
    return ScriptedProvider(
        {
            "strong": lambda messages: right[messages[-1]["content"]],
            "weak": "I am not sure.",
        }
    )


def _pool(provider: ScriptedProvider):  # type: ignore[no-untyped-def]
    return provider.pool(prices={"strong": 30.0, "weak": 0.5})


def _table(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "routing.parquet").drop(columns=CLOCK)
    return df.sort_values(["query_id", "model"]).reset_index(drop=True)


def test_generate_scores_every_answer_and_writes_the_canonical_table(tmp_path: Path) -> None:
    provider = _provider(3)
    result = generate(TASKS, _pool(provider), tmp_path / "out", splits=["train", "test"],
                      limit=3, source="llmrouter", progress=False)  # fmt: skip
    assert result.calls == 3 * 2 * 3 * 2 and result.errors == 0 and result.stopped is None
    df = pd.read_parquet(result.routing_file)
    assert set(df.columns) >= {"query_id", "query", "model", "score", "cost", "input_tokens",
                               "output_tokens", "latency_s", "task", "split", "response"}
    assert (df[df.model == "strong"].score == 1.0).all()
    assert (df[df.model == "weak"].score == 0.0).all()
    assert (df.cost > 0).all() and df.groupby(["query_id", "model"]).size().max() == 1
    # every call at temperature 0, with the named model only (no fallback)
    assert all(c.params.get("temperature") == 0.0 for c in provider.calls)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["rows"] == 36 and manifest["counts"]["errors"] == 0
    assert manifest["mean_score"]["gsm8k"] == {"strong": 1.0, "weak": 0.0}
    assert manifest["config"]["pool"][0]["input_price"] == 30.0
    assert manifest["cost_usd"] == pytest.approx(float(df.cost.sum()))
    # loadable as routing data, and trainable with `llmrouter train --data`
    data = load_data(result.routing_file)
    assert data.n_queries == 18 and sorted(data.models) == ["strong", "weak"]
    res = CliRunner().invoke(app, ["train", "--data", str(result.routing_file),
                                   "--out", str(tmp_path / "router"), "--router", "linear"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "router").is_dir()


def test_the_cost_ceiling_stops_before_it_is_crossed(tmp_path: Path) -> None:
    provider = _provider(3)
    full = generate(TASKS, _pool(provider), tmp_path / "full", splits=["train"], limit=3,
                    source="llmrouter", progress=False)  # fmt: skip
    ceiling = full.cost / 2
    part = generate(TASKS, _pool(provider), tmp_path / "part", splits=["train"], limit=3,
                    source="llmrouter", max_cost=ceiling, progress=False)  # fmt: skip
    assert part.stopped == "max_cost"
    assert 0 < part.cost <= ceiling and part.calls < full.calls
    manifest = json.loads((tmp_path / "part" / "manifest.json").read_text())
    assert manifest["stopped"] == "max_cost" and manifest["cost_usd"] <= ceiling
    # resuming with room finishes the run: the same table as the uninterrupted one
    rest = generate(TASKS, _pool(provider), tmp_path / "part", splits=["train"], limit=3,
                    source="llmrouter", resume=True, progress=False)  # fmt: skip
    assert rest.skipped == part.calls and rest.stopped is None
    pd.testing.assert_frame_equal(_table(tmp_path / "part"), _table(tmp_path / "full"))


def test_a_failed_call_is_recorded_and_retried_on_resume(tmp_path: Path) -> None:
    import litellm

    right = _right_answers(2)
    state = {"fail": True}

    def flaky(messages):  # type: ignore[no-untyped-def]
        if state["fail"]:
            raise litellm.BadRequestError("rejected", model="flaky", llm_provider="scripted")
        return right[messages[-1]["content"]]

    provider = ScriptedProvider({"flaky": flaky})
    out = tmp_path / "out"
    first = generate(["gsm8k"], provider.pool(), out, limit=2, source="llmrouter",
                     progress=False, max_retries=0)  # fmt: skip
    assert first.errors == 2
    df = pd.read_parquet(out / "routing.parquet")
    assert df.score.isna().all() and df.error.str.contains("rejected").all()
    state["fail"] = False
    second = generate(["gsm8k"], provider.pool(), out, limit=2, source="llmrouter",
                      progress=False, resume=True)  # fmt: skip
    assert second.skipped == 0 and second.errors == 0
    df = pd.read_parquet(out / "routing.parquet")
    assert (df.score == 1.0).all() and df.error.isna().all() and len(df) == 2


def test_resume_refuses_other_settings_and_a_second_run_needs_resume(tmp_path: Path) -> None:
    provider = _provider(2)
    out = tmp_path / "out"
    generate(["gsm8k"], _pool(provider), out, limit=2, source="llmrouter", progress=False)
    with pytest.raises(DataError, match="--resume"):
        generate(["gsm8k"], _pool(provider), out, limit=2, source="llmrouter", progress=False)
    with pytest.raises(DataError, match=r"other settings.*limit"):
        generate(["gsm8k"], _pool(provider), out, limit=3, source="llmrouter",
                 progress=False, resume=True)  # fmt: skip


def test_shards_merged_equal_one_run(tmp_path: Path) -> None:
    provider = _provider(4)
    kw = {"splits": ["train", "test"], "limit": 4, "source": "llmrouter", "progress": False}
    generate(TASKS, _pool(provider), tmp_path / "all", **kw)
    for i in range(3):
        generate(TASKS, _pool(provider), tmp_path / f"s{i}", shard=(i, 3), **kw)
    sizes = [len(pd.read_parquet(tmp_path / f"s{i}" / "routing.parquet")) for i in range(3)]
    assert all(s > 0 for s in sizes) and sum(sizes) == len(_table(tmp_path / "all"))
    merge(tmp_path / "merged", [tmp_path / f"s{i}" for i in range(3)])
    pd.testing.assert_frame_equal(_table(tmp_path / "merged"), _table(tmp_path / "all"))
    with pytest.raises(DataError, match="i/N"):
        parse_shard("2")
    with pytest.raises(DataError, match="0 <= i < N"):
        parse_shard("3/3")


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    sys.path.insert(0, {tests!r})
    import test_runner as T
    from llmrouter_core.testing import ScriptedProvider
    right = T._right_answers(6)

    def slow(messages):
        time.sleep(0.05)
        return right[messages[-1]["content"]]

    ScriptedProvider({{"strong": slow, "weak": "I am not sure."}})
    from llmrouter_core.cli.main import main
    sys.argv = ["llmrouter", "datagen", "--tasks", ",".join(T.TASKS), "--pool", {pool!r},
                "--out", {out!r}, "--limit", "6", "--split", "train,test", "--source",
                "llmrouter", "--concurrency", "2", "--no-progress"] + sys.argv[1:]
    main()
    """
)


def _pool_file(tmp_path: Path) -> Path:
    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"models": [
        {"name": "strong", "litellm_model": "scripted/strong", "input_price": 30.0,
         "output_price": 30.0},
        {"name": "weak", "litellm_model": "scripted/weak", "input_price": 0.5,
         "output_price": 0.5},
    ]}))  # fmt: skip
    return path


def _child(tmp_path: Path, out: Path, *args: str) -> subprocess.Popen[bytes]:
    code = _CHILD.format(tests=str(Path(__file__).parent), pool=str(_pool_file(tmp_path)),
                         out=str(out))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _stored(out: Path) -> int:
    try:
        with sqlite3.connect(out / STORE) as db:
            return int(db.execute("SELECT count(*) FROM calls").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    _provider(6)  # the uninterrupted run, in this process, with the same scripts
    from llmrouter_core.pool import Pool

    generate(TASKS, Pool.from_file(_pool_file(tmp_path)), tmp_path / "full", limit=6,
             splits=["train", "test"], source="llmrouter", progress=False)  # fmt: skip

    out = tmp_path / "killed"
    victim = _child(tmp_path, out)
    deadline = time.monotonic() + 240
    while _stored(out) < 20:  # some calls are stored, most are not
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    kept = _stored(out)
    assert 20 <= kept < 72
    assert not (out / "routing.parquet").exists()  # it never got to export

    resumed = generate(TASKS, Pool.from_file(_pool_file(tmp_path)), out, limit=6, resume=True,
                       splits=["train", "test"], source="llmrouter", progress=False)  # fmt: skip
    assert resumed.skipped == kept and resumed.calls == 72 - kept
    a, b = _table(out), _table(tmp_path / "full")
    assert len(a) == 72 and not a.duplicated(["query_id", "model"]).any()
    pd.testing.assert_frame_equal(a, b)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["datagen", "--tasks", "gsm8k", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "--pool FILE or --models" in res.output
    res = runner.invoke(app, ["datagen", "--tasks", "nope", "--out", str(tmp_path),
                              "--pool", str(_pool_file(tmp_path))])  # fmt: skip
    assert res.exit_code == 1 and "unknown task 'nope'" in res.output
    res = runner.invoke(app, ["datagen", "--tasks", "gsm8k", "--out", str(tmp_path),
                              "--pool", str(_pool_file(tmp_path)), "--split", "dev"])  # fmt: skip
    assert res.exit_code == 1 and "--split" in res.output
    res = runner.invoke(app, ["datagen", "tasks", "--json"])
    assert res.exit_code == 0 and "gpqa" in {t["name"] for t in json.loads(res.output)}
    res = runner.invoke(app, ["datagen", "merge", "--out", str(tmp_path / "m"),
                              str(tmp_path / "none")])  # fmt: skip
    assert res.exit_code == 1 and "calls.sqlite" in res.output


def test_rescore_applies_the_metrics_again_without_calling(tmp_path: Path) -> None:
    from llmrouter_core.datagen.runner import rescore

    provider = _provider(2)
    out = tmp_path / "out"
    generate(TASKS, _pool(provider), out, limit=2, source="llmrouter", progress=False)
    before = _table(out)
    calls = len(provider.calls)
    with sqlite3.connect(out / STORE) as db:  # a score from an older, wrong metric
        db.execute("UPDATE calls SET score = 0.5")
    assert (pd.read_parquet(out / "routing.parquet").score.notna()).all()
    manifest = rescore(out, progress=False)
    assert len(provider.calls) == calls  # no model was called
    pd.testing.assert_frame_equal(_table(out), before)
    assert manifest["mean_score"]["gsm8k"] == {"strong": 1.0, "weak": 0.0}


def test_models_option_builds_the_pool() -> None:
    from llmrouter_core.cli.datagen_commands import _pool_for

    pool = _pool_for(None, "local/smollm2-135m, gpt-4o-mini")
    assert pool.names == ("smollm2-135m", "gpt-4o-mini")
    assert pool["smollm2-135m"].litellm_model == "local/smollm2-135m"
    assert pool["gpt-4o-mini"].litellm_model == "gpt-4o-mini"
    assert pool["gpt-4o-mini"].has_prices  # from LiteLLM's bundled price table
