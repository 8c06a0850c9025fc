"""API keys of ``llmrouter serve``: stored hashed, created by ``llmrouter serve-key``, and a
malformed keys file is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrouter_core.cli.main import app
from llmrouter_core.serving import KeyFileError, KeyRing, hash_key


def test_serve_key_stores_only_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    runner = CliRunner()
    first = runner.invoke(app, ["serve-key", "team-a", "--keys", str(path), "--budget", "2.5"])
    assert first.exit_code == 0, first.output
    key = first.stdout.strip()
    assert key.startswith("sk-llmr-") and len(key) > 40
    second = runner.invoke(
        app, ["serve-key", "team-b", "--keys", str(path), "--router", "knn", "--rpm", "60"]
    )
    assert second.exit_code == 0, second.output
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    ring = KeyRing.from_file(path)
    found = ring.lookup(key)
    assert found is not None and found.name == "team-a" and found.budget == 2.5
    b = ring.lookup(second.stdout.strip())
    assert b is not None and b.routers == ("knn",) and b.rpm == 60
    assert b.allows("knn") and not b.allows("other") and not b.allows(None)
    assert ring.lookup(key + "x") is None
    dup = runner.invoke(app, ["serve-key", "team-a", "--keys", str(path)])
    assert dup.exit_code == 1 and "two keys are named 'team-a'" in dup.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys:\n  - name: a\n    sha256: sk-plain-key-in-the-file\n", "must be the 64-hex"),
        ("keys:\n  - name: a\n    sha256: " + "a" * 64 + "\n    budget: -1\n", "'budget'"),
        ("keys:\n  - name: a\n    sha256: " + "a" * 64 + "\n    colour: red\n", "unknown field"),
        ("keys: [\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping with a 'keys' list"),
    ],
)
def test_a_malformed_keys_file_is_one_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=message):
        KeyRing.from_file(path)


def test_serve_refuses_a_bad_keys_file_in_one_line(tmp_path: Path, router_dir: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - name: a\n    sha256: sk-plain\n")
    result = CliRunner().invoke(
        app, ["serve", "--router-dir", str(router_dir), "--keys", str(path), "--port", "9"]
    )
    assert result.exit_code == 1
    assert result.output.count("error:") == 1 and "sha256" in result.output
