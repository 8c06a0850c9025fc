"""Secrets are scrubbed by value, whatever their shape: keys from ``API_KEYS``, from a model's
``api_key_env`` and from the provider variables LiteLLM reads itself, echoed back by a provider
in its errors, never reach an error message, an attempt log, a repr or a log record of ours."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execution"))

from scripted import Script, http_error, register_scripted

from llmrouter_core.execution import (
    AllModelsFailedError,
    Executor,
    KeyPool,
    PoolOrderRouter,
    StreamInterruptedError,
)
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.secrets import RedactingFilter, redact, register_secret

DRIVERS = ("complete", "acomplete", "stream", "astream")
#: One key of each shape: a provider-style key, a hex key, and 12 random letters.
SHAPES = ("sk-proj-Zq8WkLm3Np7Rt2Vx9Yb4", "9f86d081884c7d659a2feaa0c55ad015", "qwhfkzmxlpte")


@pytest.fixture()
def script() -> Script:
    from llmrouter_core._lazy import import_litellm

    return register_scripted(import_litellm(), "leaky")


def run(ex: Executor, driver: str) -> None:
    prompt = "What is 2 + 2?"
    if driver == "complete":
        ex.complete(prompt)
    elif driver == "acomplete":
        asyncio.run(ex.acomplete(prompt))
    elif driver == "stream":
        list(ex.stream(prompt))
    else:

        async def collect() -> None:
            async for _ in ex.astream(prompt):
                pass

        asyncio.run(collect())


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("rotation", [0, 1, 2])
def test_keys_of_every_shape_echoed_by_the_provider_never_show(
    script: Script,
    driver: str,
    rotation: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Each source gets each shape once over the three rotations.
    api_keys_key, env_key, litellm_key = (SHAPES[(rotation + i) % 3] for i in range(3))
    monkeypatch.setenv("API_KEYS", json.dumps({"leaky": [api_keys_key]}))
    monkeypatch.setenv("GATEWAY_CREDENTIAL", env_key)
    monkeypatch.setenv("OPENAI_API_KEY", litellm_key)  # read by LiteLLM, never by us

    def echo(api_key: Any) -> Exception:
        # What providers do: quote the key they were sent, or the one they found.
        return http_error(401, f"Incorrect API key provided: {api_key} (env: {litellm_key})")

    for model in ("alpha", "beta"):
        script.set(model, [echo])
    pool = Pool(
        [
            ModelSpec("alpha", litellm_model="leaky/alpha"),
            ModelSpec("beta", litellm_model="leaky/beta", api_key_env="GATEWAY_CREDENTIAL"),
        ]
    )
    ex = Executor(PoolOrderRouter(pool), backoff=0.001, max_backoff=0.002)
    caplog.set_level(logging.DEBUG, logger="llmrouter_core")
    with pytest.raises(AllModelsFailedError) as info:
        run(ex, driver)
    # The keys did reach the provider (so the echo is real) ...
    assert [c["api_key"] for c in script.calls] == [api_keys_key, env_key]
    err = info.value
    texts = [str(err), repr(err), repr(ex), repr(ex.keys)]
    texts += [a.describe() for a in err.attempts]
    texts += [json.dumps(a.to_dict()) for a in err.attempts]
    texts += [r.getMessage() + (r.exc_text or "") for r in caplog.records if _ours(r)]
    assert "Incorrect API key provided: ***" in str(err)
    for text in texts:
        for key in SHAPES:
            assert key not in text


def test_a_stream_interrupted_by_an_echoing_error_is_redacted(
    script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    script.set("alpha", [("break", http_error(502, f"upstream dropped the call for {key}"))])
    pool = Pool([ModelSpec("alpha", litellm_model="leaky/alpha")])
    ex = Executor(PoolOrderRouter(pool), keys="")
    with pytest.raises(StreamInterruptedError) as info:
        list(ex.stream("Hi"))
    assert key not in str(info.value) and key not in repr(info.value.attempts)
    assert "upstream dropped the call for ***" in str(info.value)


def test_a_key_in_the_service_position_shows_in_no_repr() -> None:
    misplaced = "xkcdqwhfkzmlpvte"
    keys = KeyPool.from_string(json.dumps({misplaced: ["Kp4Tz9Lm2Qx7Wv3R"], "openai": ["aB"]}))
    pool = Pool([ModelSpec("alpha", litellm_model="openai/alpha")])
    ex = Executor(PoolOrderRouter(pool), keys=keys)
    for text in (repr(keys), str(keys), repr(ex)):
        assert misplaced not in text and "Kp4Tz9Lm2Qx7Wv3R" not in text
    assert repr(keys) == "KeyPool(services={'<1 other>': 1, 'openai': 1})" or repr(keys) == (
        "KeyPool(services={'openai': 1, '<1 other>': 1})"
    )


def test_our_log_records_are_scrubbed_message_arguments_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "Yb4Zq8WkLm3Np7Rt"  # unshaped: only its registration can find it
    register_secret(key)
    pool = Pool([ModelSpec("alpha", litellm_model="openai/alpha")])
    Executor(PoolOrderRouter(pool), keys="")  # installs the filter on our loggers
    logger = logging.getLogger("llmrouter_core.execution.attempts")
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)
    caplog.set_level(logging.DEBUG, logger="llmrouter_core")
    try:
        raise RuntimeError(f"provider said: bad key {key}")
    except RuntimeError:
        logger.error("call failed with %s", key, exc_info=True)
    record = next(r for r in caplog.records if r.name == logger.name)
    assert key not in record.getMessage() and key not in (record.exc_text or "")
    assert "call failed with ***" in record.getMessage()
    assert "bad key ***" in (record.exc_text or "")
    assert key not in caplog.text


def test_redact_scrubs_registered_values_and_known_shapes() -> None:
    register_secret("Bearer ZZtopSecretTok3n")
    text = "auth Bearer ZZtopSecretTok3n, raw ZZtopSecretTok3n, openai sk-abcdefghijklmnop"
    assert redact(text) == "auth ***, raw ***, openai ***"
    register_secret("short")  # too short to be a key: scrubbing it would mangle messages
    assert redact("a short note") == "a short note"


def _ours(record: logging.LogRecord) -> bool:
    # LiteLLM's own log records are LiteLLM's business; ours must be clean.
    return record.name.startswith("llmrouter_core")
