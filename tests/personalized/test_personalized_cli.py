"""``llmrouter infer --user``: a saved personalized router with a SQLite store routes (and
answers, from recorded responses) with the user's profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

import llmrouter_core as lr
from llmrouter_core.cli.run_commands import register
from llmrouter_core.providers.replay import set_replay_data

CHEAP = "mistralai/mistral-7b-chat"


def test_infer_routes_and_answers_for_the_user(
    router: Any, rb_small: Any, tmp_path: Path, data_dir: Path, frugal: Any
) -> None:
    train, test = rb_small
    router.save(tmp_path / "router")
    live = lr.load_router(tmp_path / "router", store=f"sqlite:///{tmp_path / 'fb.db'}")
    live.save(tmp_path / "router")  # saved with its SQLite store
    frugal(live, "frugal", train.queries, 25)
    query = next(
        q for q in test.queries if live.route(q, user="frugal").model != live.route(q).model
    )
    app = typer.Typer()
    register(app)
    args = ["infer", "-r", str(tmp_path / "router"), "--json"]
    try:
        mine = CliRunner().invoke(app, [*args, "--route-only", "--user", "frugal", query])
        assert mine.exit_code == 0, mine.output
        decision = json.loads(mine.stdout.strip().splitlines()[-1])
        assert decision["model"] == live.route(query, user="frugal").model
        anyone = CliRunner().invoke(app, [*args, "--route-only", query])
        assert (
            json.loads(anyone.stdout.strip().splitlines()[-1])["model"] == live.route(query).model
        )
        replay = ["--replay", str(data_dir / "routerbench")]
        answered = CliRunner().invoke(app, [*args, *replay, "--user", "frugal", query])
        assert answered.exit_code == 0, answered.output
        out = json.loads(answered.stdout.strip().splitlines()[-1])
        assert out["model"] == decision["model"]
        i, j = list(test.queries).index(query), list(test.models).index(out["model"])
        assert out["answer"] == test.responses[i, j]
    finally:
        set_replay_data(None)
