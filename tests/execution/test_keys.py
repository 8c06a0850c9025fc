"""API keys: the ``API_KEYS`` formats, even round robin across threads and tasks, keys sent
to the right models, and keys never showing in errors, reprs or saved files."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from exec_helpers import mocked_pool, probe_pool, register_probe

from llmrouter_core.execution import (
    AllModelsFailedError,
    Executor,
    KeyPool,
    KeysError,
    parse_api_keys,
    redact_secrets,
)
from llmrouter_core.pool import Pool

KEYS = ["nvapi-AAAA1111bbbb2222", "plainkey-0001-xyz", "sk-proj-QQQQ9999zzzz8888"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            json.dumps({"NVIDIA": KEYS[:2], "openai": KEYS[2]}),
            {"nvidia": KEYS[:2], "openai": [KEYS[2]]},
        ),
        (json.dumps(KEYS), {"*": KEYS}),
        (",".join(KEYS), {"*": KEYS}),
        (" , ".join(KEYS) + " ,", {"*": KEYS}),
        (KEYS[1], {"*": [KEYS[1]]}),
        (json.dumps(KEYS[0]), {"*": [KEYS[0]]}),
        ("", {}),
    ],
)
def test_api_keys_formats(raw: str, expected: dict[str, list[str]]) -> None:
    assert parse_api_keys(raw) == expected


@pytest.mark.parametrize("raw", ['{"openai": ', '{"openai": 3}', "[1, 2]", "42.5e"])
def test_malformed_api_keys_never_echo_the_value(raw: str) -> None:
    secret_raw = raw.replace("openai", KEYS[0])
    try:
        parse_api_keys(secret_raw)
    except KeysError as exc:
        assert KEYS[0] not in str(exc)
    else:
        assert raw == "42.5e"  # a bare string is one key


def test_round_robin_per_service_with_shared_fallback() -> None:
    pool = KeyPool({"nvidia": KEYS[:2], "*": [KEYS[2]]})
    assert [pool.next_key("NVIDIA") for _ in range(4)] == [KEYS[0], KEYS[1], KEYS[0], KEYS[1]]
    assert pool.next_key("openai") == KEYS[2]  # no own keys: the shared ones
    assert pool.next_key("nvidia_nim", "nvidia") == KEYS[0]  # first alias with keys
    assert KeyPool().next_key("openai") is None


def test_keys_rotate_evenly_across_threads() -> None:
    pool = KeyPool.from_string(json.dumps({"openai": KEYS}))
    seen: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        local = [pool.next_key("openai") for _ in range(300)]
        with lock:
            seen.extend(k for k in local if k)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(seen) == {k: 800 for k in KEYS}


def test_keys_never_show_in_reprs() -> None:
    pool = KeyPool.from_string(",".join(KEYS))
    for text in (repr(pool), str(pool)):
        assert not any(k in text for k in KEYS)


def test_redaction() -> None:
    text = f"401 for key {KEYS[1]}; header Authorization: Bearer abcdefgh12345678 and {KEYS[2]}"
    clean = redact_secrets(text, [KEYS[1]])
    assert KEYS[1] not in clean and KEYS[2] not in clean and "abcdefgh12345678" not in clean
    assert "401 for key" in clean


def test_executor_sends_rotating_keys_per_service(
    knn_router: Any, arc_test: Any, litellm: Any
) -> None:
    calls = register_probe(litellm, "keyprobe")
    keys = KeyPool({"keyprobe": KEYS})
    ex = Executor(knn_router, pool=probe_pool(knn_router, "keyprobe"), keys=keys)
    queries = [str(q) for q in arc_test.queries[:30]]

    def work(chunk: list[str]) -> None:
        for q in chunk:
            ex.complete(q)

    threads = [threading.Thread(target=work, args=(queries[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(c["api_key"] for c in calls) == {k: 10 for k in KEYS}


async def test_keys_rotate_evenly_across_async_tasks(
    knn_router: Any, arc_test: Any, litellm: Any
) -> None:
    calls = register_probe(litellm, "akeyprobe")
    ex = Executor(
        knn_router, pool=probe_pool(knn_router, "akeyprobe"), keys=json.dumps({"akeyprobe": KEYS})
    )
    await asyncio.gather(*(ex.acomplete(str(q)) for q in arc_test.queries[:60]))
    assert Counter(c["api_key"] for c in calls) == {k: 20 for k in KEYS}


def test_api_keys_env_and_per_model_key_env(
    knn_router: Any, arc_test: Any, litellm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = register_probe(litellm, "envprobe")
    monkeypatch.setenv("API_KEYS", ",".join(KEYS[:2]))
    monkeypatch.setenv("MY_MODEL_KEY", KEYS[2])
    pool = probe_pool(knn_router, "envprobe")
    top = knn_router.route(str(arc_test.queries[0])).model
    pool = pool.replace(top, api_key_env="MY_MODEL_KEY", api_base="http://127.0.0.1:9/v1")
    ex = Executor(knn_router, pool=pool)  # keys from API_KEYS
    ex.complete(str(arc_test.queries[0]))
    ex.complete(str(arc_test.queries[0]), model=next(m for m in pool.names if m != top))
    ex.complete(str(arc_test.queries[0]), model=next(m for m in pool.names if m != top))
    assert [c["api_key"] for c in calls] == [KEYS[2], KEYS[0], KEYS[1]]
    assert KEYS[2] not in repr(ex) and KEYS[0] not in repr(ex)


def test_keys_are_redacted_from_provider_errors(
    knn_router: Any, arc: Any, arc_test: Any, litellm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Providers echo keys back in error messages; none of them may reach the caller.
    monkeypatch.setenv("API_KEYS", json.dumps({"openai": KEYS}))
    faults = {
        m: {
            "mock_response": litellm.AuthenticationError(
                message=f"Incorrect API key provided: {KEYS[i % 3]} for {m}",
                llm_provider="openai",
                model=m,
            )
        }
        for i, m in enumerate(knn_router.models_)
    }
    ex = Executor(knn_router, pool=mocked_pool(knn_router, arc, faults), backoff=0.001)
    with pytest.raises(AllModelsFailedError) as info:
        ex.complete(str(arc_test.queries[0]))
    texts = [str(info.value), repr(info.value)] + [a.error or "" for a in info.value.attempts]
    assert "Incorrect API key provided" in texts[0]
    for text in texts:
        assert not any(k in text for k in KEYS)


def test_pool_files_never_keep_keys(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    path.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "a",
                        "litellm_model": "openai/gpt-4o-mini",
                        "api_key": KEYS[0],
                        "api_key_env": "OPENAI_KEY_A",
                        "input_price": 1,
                        "output_price": 2,
                    },
                ]
            }
        )
    )
    pool = Pool.from_file(path)
    saved = tmp_path / "saved.json"
    pool.save(saved)
    assert KEYS[0] not in saved.read_text() and KEYS[0] not in repr(pool)
    assert pool["a"].api_key_env == "OPENAI_KEY_A"
