"""The router shipped for the offline default of ``llmrouter chat`` / ``infer``: trained on
the local models' measured outcomes, loaded from the package, used when no router
directory is given."""

from __future__ import annotations

import json

import pytest

from llmrouter_core.datagen.default_router import LOCAL_ROUTER_DIR, default_local_router
from llmrouter_core.execution import PoolOrderRouter
from llmrouter_core.providers.local import LOCAL_MODELS, default_local_pool

LOCAL = list(LOCAL_MODELS)


def test_the_shipped_router_is_plain_json_and_arrays() -> None:
    files = sorted(p.name for p in LOCAL_ROUTER_DIR.iterdir())
    assert files == ["arrays.npz", "router.json"]
    meta = json.loads((LOCAL_ROUTER_DIR / "router.json").read_text())
    assert sorted(m["name"] for m in meta["pool"]["models"]) == sorted(LOCAL)
    assert sum(p.stat().st_size for p in LOCAL_ROUTER_DIR.iterdir()) < 2_000_000


def test_it_routes_between_the_local_models() -> None:
    router = default_local_router(LOCAL)
    assert not isinstance(router, PoolOrderRouter)
    assert sorted(router.models_) == sorted(LOCAL)
    for spec in router.pool_:
        assert spec.litellm_model == default_local_pool()[spec.name].litellm_model
    decisions = router.route_batch(
        ["What is 17 * 23?", "Who wrote Hamlet?", "Write a Python function to reverse a list."]
    )
    assert {d.model for d in decisions} <= set(LOCAL)


def test_with_a_local_model_missing_it_routes_in_pool_order() -> None:
    router = default_local_router(LOCAL[:1])
    assert isinstance(router, PoolOrderRouter)
    assert list(router.models_) == LOCAL[:1]


def test_chat_and_infer_use_it_when_no_router_dir_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmrouter_core.cli import run_commands
    from llmrouter_core.providers import local
    from llmrouter_core.providers.local import KEY_ENVS

    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(local, "local_models_available", lambda: list(LOCAL))
    executor = run_commands._build_executor(
        None, None, None, budget=None, cost_weight=None, timeout=30.0, max_retries=0
    )
    assert sorted(executor.router.models_) == sorted(LOCAL)
    assert not isinstance(executor.router, PoolOrderRouter)
    assert executor.route("What is the capital of France?").model in LOCAL
