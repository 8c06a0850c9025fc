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
