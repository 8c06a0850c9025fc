"""Every ```python block of the README runs as written: each in a fresh Python process, in an
empty working directory, offline (a ``sitecustomize`` refuses every network connection that
is not to this machine), with ``LLMROUTER_DATA_DIR`` set as ``scripts/test.sh`` sets it.

A block that imports an optional package which is not installed (an adapter's framework) is
skipped with that reason, so a core-only install runs this file green.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Packages of the extras; a block needing one that is missing is skipped, not failed.
OPTIONAL = ("langchain", "langchain_core", "langgraph", "llama_index", "dspy", "torch")

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")

# Loaded by the snippet's interpreter before anything else (site imports ``sitecustomize``).
_OFFLINE = """
import socket

_LOCAL = {"localhost", "127.0.0.1", "::1", ""}
_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

def _check(host):
    if str(host) not in _LOCAL:
        raise OSError(f"README snippets run offline: connection to {host!r} refused")

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])
    return _connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    _check(host.decode() if isinstance(host, bytes) else host)
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = (
    connect, connect_ex, getaddrinfo)
"""


def readme_blocks() -> list[str]:
    """The README's ```python blocks, in order."""
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


BLOCKS = readme_blocks()


def test_the_readme_has_python_snippets() -> None:
    assert len(BLOCKS) >= 4, "the README's quickstart and adapter snippets are missing"


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i + 1}")
def test_readme_snippet_runs(index: int, tmp_path: Path) -> None:
    code = BLOCKS[index]
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_OFFLINE, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
        LLMROUTER_DATA_DIR=env.get("LLMROUTER_DATA_DIR") or str(ROOT.parent / "shared" / "data"),
        LLMROUTER_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        DSPY_CACHEDIR=str(tmp_path / "dspy-cache"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        missing = _MISSING.search(proc.stderr)
        if missing and missing.group(1).split(".")[0] in OPTIONAL:
            pytest.skip(f"needs {missing.group(1)} (an optional extra), not installed")
    assert proc.returncode == 0, (
        f"README block {index + 1} failed:\n{code}\n--- stdout\n{proc.stdout}\n"
        f"--- stderr\n{proc.stderr[-4000:]}"
    )
