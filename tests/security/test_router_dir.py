"""A router directory is untrusted input: loading one imports nothing it names and sends
nothing to an endpoint it names; saving one writes no secret.

Each test crafts a directory the way an attacker (or a careless teammate) would, from a real
router trained on RouterBench, and checks what reaches a loopback server standing in for the
attacker's endpoint.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmrouter_core import get_router, load_router
from llmrouter_core.cli.main import app
from llmrouter_core.errors import PersistenceError

SECRET = "aws-secret-value-0123456789"
PAYLOAD = """
import pathlib
pathlib.Path({marker!r}).write_text("the payload ran")
from llmrouter_core.router import Router as _Base

class LinearRouter(_Base):
    pass
"""


@pytest.fixture()
def payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package whose module writes a marker file when it is imported."""
    pkg = tmp_path / "evilpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    marker = tmp_path / "marker.txt"
    (pkg / "payload.py").write_text(PAYLOAD.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    return marker


@pytest.fixture(scope="module")
def saved(rb_small: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    train, _ = rb_small
    path = tmp_path_factory.mktemp("routers") / "single"
    get_router("single").fit(train.select_models(train.models[:2])).save(path)
    return path


def _edited(src: Path, dst: Path, **changes: Any) -> Path:
    dst.mkdir()
    doc = json.loads((src / "router.json").read_text())
    doc.update(changes)
    (dst / "router.json").write_text(json.dumps(doc))
    (dst / "arrays.npz").write_bytes((src / "arrays.npz").read_bytes())
    return dst


def test_a_file_naming_an_unregistered_class_is_refused_before_any_import(
    saved: Path, tmp_path: Path, payload: Path
) -> None:
    crafted = _edited(saved, tmp_path / "crafted", router="evilpkg.payload:LinearRouter")
    with pytest.raises(PersistenceError, match="is not a registered router"):
        load_router(crafted)
    assert not payload.exists()
    assert "evilpkg.payload" not in sys.modules


def test_route_does_not_import_a_module_named_by_the_file(saved: Path, tmp_path: Path) -> None:
    sys.modules.pop("this", None)  # `import this` prints the Zen of Python
    crafted = _edited(saved, tmp_path / "zen", router="this:x")
    out = tmp_path / "out.jsonl"
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query_id": 1, "query": "2+2?"}) + "\n")
    result = CliRunner().invoke(
        app,
        ["route", "--router-dir", str(crafted), "--queries", str(queries), "--output", str(out)],
    )
    assert result.exit_code == 1
    assert "is not a registered router" in result.output
    assert "Beautiful is better than ugly" not in result.output
    assert "this" not in sys.modules


def test_stack_members_are_registered_names_only(rb_small: Any, payload: Path) -> None:
    train, _ = rb_small
    router = get_router("auto", members=["evilpkg.payload:LinearRouter"])
    with pytest.raises(ValueError, match=r"unknown scorer 'evilpkg\.payload:LinearRouter'"):
        router.fit(train)
    assert not payload.exists()


def _exfiltrating_router(rb_small: Any, url: str, path: Path) -> Path:
    """A router whose saved pool sends every call, with the AWS secret as its key, to url."""
    train, _ = rb_small
    train = train.select_models(train.models[:2])
    router = get_router("single").fit(train)
    pool = router.pool_
    for name in pool.names:
        pool = pool.replace(
            name, litellm_model=f"openai/{name}", api_base=url, api_key_env="AWS_SECRET_ACCESS_KEY"
        )
    router.fit(train, pool)
    router.save(path)
    return path


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_a_saved_pool_cannot_send_queries_and_secrets_to_its_endpoint(
    rb_small: Any, endpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("API_KEYS", raising=False)
    path = _exfiltrating_router(rb_small, endpoint.url, tmp_path / "exfil")
    args = ["infer", "--router-dir", str(path), "--max-retries", "0", "--timeout", "5"]
    result = CliRunner().invoke(app, [*args, "What is the capital of France?"])
    assert endpoint.requests == []
    assert SECRET not in result.output
    assert "ignoring endpoints and secrets saved in" in result.output
    assert "api_base" in result.output and "api_key_env" in result.output

    # The same directory, trusted by the caller, does reach its endpoint: the test can see it.
    result = CliRunner().invoke(app, [*args, "--trust-endpoints", "What is the capital?"])
    assert result.exit_code == 0, result.output
    assert endpoint.seen(f"Bearer {SECRET}") and endpoint.seen("What is the capital?")


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_an_edited_judge_cannot_call_out_while_routing(
    rb_small: Any, endpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _ = rb_small
    train = train.select_models(train.models[:2])
    endpoint.reply = ", ".join(f"{m}: 7" for m in train.models)
    monkeypatch.setenv("JUDGE_KEY", "judge-key-0123456789")
    router = get_router(
        "llm",
        judge_model="openai/judge",
        judge_kwargs={"api_base": endpoint.url},
        judge_api_key_env="JUDGE_KEY",
        n_calibration=3,
        max_retries=0,
    ).fit(train)
    router.save(tmp_path / "judge")
    assert len(endpoint.requests) == 3  # the calibration calls, made by the trusting caller
    doc = json.loads((tmp_path / "judge" / "router.json").read_text())
    doc["scorer"]["params"]["judge_api_key_env"] = "AWS_SECRET_ACCESS_KEY"
    (tmp_path / "judge" / "router.json").write_text(json.dumps(doc))
    endpoint.requests.clear()

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    loaded = load_router(tmp_path / "judge")
    judge = loaded.scorer_
    assert judge.judge_api_key_env is None and "api_base" not in (judge.judge_kwargs or {})
    assert any("judge_kwargs.api_base" in item for item in loaded.ignored_endpoints_)
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query_id": 1, "query": "Which planet is red?"}) + "\n")
    judge_dir, out = tmp_path / "judge", tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app,
        ["route", "--router-dir", str(judge_dir), "--queries", str(queries), "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert endpoint.requests == [] and SECRET not in result.output

    trusted = load_router(tmp_path / "judge", trust_endpoints=True)
    trusted.route("Which planet is red?")
    assert endpoint.seen(f"Bearer {SECRET}")


def test_saving_writes_no_secret_from_any_pool_field(
    rb_small: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, _ = rb_small
    train = train.select_models(train.models[:2])
    a, b = train.models
    router = get_router("single").fit(train)
    pool = router.pool_.replace(
        a,
        api_base="https://bob:hunter2-password@llm.example.com/v1",
        extra={
            "api_key": "plain-key-in-extra-001",
            "litellm_kwargs": {"api_key": "plain-key-in-kwargs-002", "temperature": 0.1},
            "extra_headers": {"Authorization": "Bearer header-secret-003", "X-Team": "red"},
            "api_token": "token-in-extra-004",
        },
    ).replace(b, description="uses sk-proj-abcdefghijklmnop0005 for billing")
    router.fit(train, pool)
    with caplog.at_level(logging.WARNING, logger="llmrouter_core"):
        router.save(tmp_path / "r")
    saved = tmp_path / "r"
    text = (saved / "router.json").read_text() + (saved / "arrays.npz").read_bytes().decode(
        "latin-1"
    )
    for secret in (
        "hunter2-password",
        "plain-key-in-extra-001",
        "plain-key-in-kwargs-002",
        "header-secret-003",
        "token-in-extra-004",
        "sk-proj-abcdefghijklmnop0005",
    ):
        assert secret not in text
    saved_pool = json.loads((tmp_path / "r" / "router.json").read_text())["pool"]["models"][0]
    assert saved_pool["api_base"] == "https://bob@llm.example.com/v1"
    assert saved_pool["extra"]["litellm_kwargs"] == {"temperature": 0.1}
    assert saved_pool["extra"]["extra_headers"] == {"X-Team": "red"}
    warnings = [r.getMessage() for r in caplog.records if "not saving secrets" in r.getMessage()]
    assert len(warnings) == 1
    for field in ("extra.api_key", "litellm_kwargs.api_key", "Authorization", "api_token"):
        assert field in warnings[0]
    assert not any(s in warnings[0] for s in ("hunter2", "plain-key", "header-secret"))
