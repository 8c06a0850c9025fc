"""Model pools: project format, YAML, LLMRouter's default_llm.json, LiteLLM prices offline."""

from __future__ import annotations

import json
import logging

import pytest

from llmrouter_core import DataError, ModelSpec, Pool, UnknownModelError


def test_llmrouter_default_llm_json(data_dir) -> None:  # type: ignore[no-untyped-def]
    pool = Pool.from_file(data_dir / "llmrouter" / "default_llm.json", fill_prices=False)
    raw = json.loads((data_dir / "llmrouter" / "default_llm.json").read_text())
    assert pool.names == tuple(raw)
    for name, spec in raw.items():
        assert pool[name].input_price == pytest.approx(spec["input_price"])
        assert pool[name].output_price == pytest.approx(spec["output_price"])
        assert pool[name].description == spec["feature"]
        assert pool[name].litellm_model.endswith(spec["model"])
        assert pool[name].extra["size"] == spec["size"]


def test_yaml_pool_and_litellm_price_fill(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pool.yaml").write_text(
        "models:\n"
        "  - name: small\n    litellm_model: gpt-4o-mini\n    supports_tools: true\n"
        "  - name: mine\n    input_price: 1.5\n    output_price: 2\n"
    )
    pool = Pool.from_file(tmp_path / "pool.yaml")
    import litellm  # the bundled, offline price table

    info = litellm.model_cost["gpt-4o-mini"]
    assert pool["small"].input_price == pytest.approx(info["input_cost_per_token"] * 1e6)
    assert pool["small"].output_price == pytest.approx(info["output_cost_per_token"] * 1e6)
    assert pool["small"].supports_tools
    assert pool["mine"].estimate_cost(1_000_000, 500_000) == pytest.approx(2.5)


def test_roundtrip_and_inline_keys_are_dropped(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    secret = "sk-test-should-never-be-stored"
    raw = {"models": [{"name": "a", "input_price": 1, "output_price": 2, "api_key": secret}]}
    (tmp_path / "p.json").write_text(json.dumps(raw))
    with caplog.at_level(logging.WARNING):
        pool = Pool.from_file(tmp_path / "p.json")
    assert "inline API key" in caplog.text and secret not in caplog.text
    pool.save(tmp_path / "out.json")
    assert secret not in (tmp_path / "out.json").read_text()
    assert Pool.from_file(tmp_path / "out.json") == pool
    assert secret not in repr(pool) and secret not in repr(pool["a"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot parse"),
        ('{"models": []}', "at least one model"),
        ('{"models": [{"input_price": 1}]}', "name"),
        ('{"models": [{"name": "a"}, {"name": "a"}]}', "twice"),
        ('{"models": [{"name": "a", "input_price": -1}]}', "non-negative"),
        ('"just a string"', "a pool must be"),
    ],
)
def test_bad_pool_files(tmp_path, content: str, message: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(DataError, match=message):
        Pool.from_file(tmp_path / "p.json", fill_prices=False)


def test_lookup_errors() -> None:
    pool = Pool([ModelSpec("a"), ModelSpec("b")])
    with pytest.raises(UnknownModelError, match="unknown model 'c'; the pool has: a, b"):
        pool["c"]
    with pytest.raises(DataError):
        Pool.from_file("/no/such/pool.json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meta/llama-2-70b-chat", 70.0),
        ("mistralai/mixtral-8x7b-chat", 56.0),  # experts x size: an upper bound
        ("WizardLM/WizardLM-13B-V1.2", 13.0),
        ("zero-one-ai/Yi-34B-Chat", 34.0),
        ("llama-3.1-8b-instruct", 8.0),  # "3.1" is a version, not a size
        ("Qwen1.5-0.5B", 0.5),
        ("smollm2-135m", 0.135),
        ("49B", 49.0),
        ("gpt-4-1106-preview", None),
        ("claude-v2", None),
        ("phi-3-medium-128k", None),
        ("", None),
    ],
)
def test_parse_params_b(text: str, expected: float | None) -> None:
    from llmrouter_core.pool import parse_params_b

    assert parse_params_b(text) == expected


def test_sizes_from_llmrouter_pool_and_names(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pool = Pool.from_file(data_dir / "llmrouter" / "default_llm.json", fill_prices=False)
    raw = json.loads((data_dir / "llmrouter" / "default_llm.json").read_text())
    for name, spec in raw.items():
        assert pool[name].params_b == float(spec["size"].rstrip("B"))
        assert pool[name].size_b == pool[name].params_b
    pool.save(tmp_path / "p.json")
    assert Pool.from_file(tmp_path / "p.json", fill_prices=False) == pool
    # the spec's own size wins over the name; without one, the name (or LiteLLM id) is read
    assert ModelSpec("llama-70b", params_b=69).size_b == 69.0
    assert ModelSpec("llama-70b").size_b == 70.0
    assert ModelSpec("big", litellm_model="together_ai/meta-llama-3-8b").size_b == 8.0
    assert ModelSpec("gpt-4o").size_b is None


@pytest.mark.parametrize("bad", [0, -7, float("nan"), "7B", True])
def test_bad_params_b(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="params_b"):
        ModelSpec("m", params_b=bad)
