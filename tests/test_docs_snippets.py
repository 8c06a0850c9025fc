"""Every code block of the README and of the documentation (``docs/**/*.md``) runs as written.

A page's blocks run in order, in one fresh Python process per page, in an empty working
directory, offline (a ``sitecustomize`` refuses every network connection that is not to this
machine), with ``LLMROUTER_DATA_DIR`` set as ``scripts/test.sh`` sets it:

* ``python`` blocks share one namespace (a page reads like a notebook: a later block uses
  what an earlier one built);
* ``bash`` / ``sh`` / ``shell`` / ``console`` blocks run with ``bash -euo pipefail`` in the
  same working directory (``$`` prompts are dropped), the ``llmrouter`` command included;
* blocks of any other language (``csv``, ``json``, ``yaml``, ``text``, none) are data or
  synopses, not run.

A block that cannot run offline says so in the page, on the line right before its fence::

    <!-- snippet: skip -- needs OPENAI_API_KEY (calls the hosted model) -->

(an HTML comment: invisible on GitHub and in the built site). The test reports the reason as
the skip reason of that block. A page whose blocks import an optional package that is not
installed (an adapter's framework) is skipped with that reason, so a core-only install runs
this file green.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Packages of the extras; a page needing one that is missing is skipped, not failed.
OPTIONAL = ("langchain", "langchain_core", "langgraph", "llama_index", "dspy", "torch")
RUN = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash", "console": "bash"}

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SKIP = re.compile(r"<!--[ \t]*snippet:[ \t]*skip[ \t]*(?:--[ \t]*([^\n]*?))?[ \t]*-->\s*\Z")
_MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    index: int  # 1-based, among the page's blocks
    line: int
    language: str
    code: str
    skip: str | None  # the reason, if the page marks it skipped


def page_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order, with their skip markers."""
    return parse_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def parse_blocks(text: str, page: str) -> list[Block]:
    """The fenced code blocks of Markdown ``text``."""
    out = []
    for k, match in enumerate(_FENCE.finditer(text)):
        before = text[max(0, match.start() - 300) : match.start()]
        marker = _SKIP.search(before)
        out.append(
            Block(
                page=page,
                index=k + 1,
                line=text.count("\n", 0, match.start()) + 1,
                language=match.group(1).lower(),
                code=match.group(2),
                skip=(marker.group(1) or "marked skip") if marker else None,
            )
        )
    return out


def pages() -> list[Path]:
    """README.md and every page under docs/ (new pages are picked up as they are added)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


PAGES = {str(p.relative_to(ROOT)): page_blocks(p) for p in pages()}
RUNNABLE = {page: [b for b in blocks if b.language in RUN] for page, blocks in PAGES.items()}

# Loaded by the page's interpreter before anything else (site imports ``sitecustomize``).
_OFFLINE = """
import socket

_LOCAL = {"localhost", "127.0.0.1", "::1", ""}
_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

def _check(host):
    if str(host) not in _LOCAL:
        raise OSError(f"documentation snippets run offline: connection to {host!r} refused")

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

# Runs a page's blocks in order: python blocks in one namespace, shell blocks with bash.
_DRIVER = """
import json, subprocess, sys, traceback
with open(sys.argv[1], encoding="utf-8") as fh:
    blocks = json.load(fh)
namespace = sys.modules["__main__"].__dict__  # classes defined in a block are importable
for block in blocks:
    where = f"{block['page']} block {block['index']} (line {block['line']})"
    print(f"--- {where}", flush=True)
    if block["skip"] is not None:
        print(f"skipped: {block['skip']}", flush=True)
        continue
    if block["language"] == "python":
        try:
            exec(compile(block["code"], where, "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: {where}", file=sys.stderr, flush=True)
            sys.exit(1)
    else:
        code = "\\n".join(line[2:] if line.startswith("$ ") else line
                          for line in block["code"].splitlines())
        sys.stdout.flush()
        if subprocess.run(["bash", "-euo", "pipefail", "-c", code]).returncode != 0:
            print(f"FAILED: {where}", file=sys.stderr, flush=True)
            sys.exit(1)
"""


def test_the_readme_and_docs_have_runnable_snippets() -> None:
    assert len(RUNNABLE["README.md"]) >= 4, "the README's quickstart and adapter snippets"
    assert sum(len(b) for b in RUNNABLE.values()) >= 30


def test_the_skip_marker_is_read() -> None:
    text = (
        "x\n\n<!-- snippet: skip -- needs OPENAI_API_KEY -->\n```python\nraise SystemExit(1)\n```"
        "\n\n```python\nprint(1)\n```\n\n<!-- snippet: skip -->\n```bash\nexit 1\n```\n"
    )
    first, second, third = parse_blocks(text, "probe.md")
    assert first.skip == "needs OPENAI_API_KEY" and second.skip is None
    assert third.skip == "marked skip" and third.language == "bash"


@pytest.mark.parametrize("page", sorted(p for p, b in RUNNABLE.items() if b))
def test_page_snippets_run(page: str, tmp_path: Path) -> None:
    blocks = RUNNABLE[page]
    skipped = [b for b in blocks if b.skip is not None]
    if len(skipped) == len(blocks):
        pytest.skip("; ".join(f"block {b.index}: {b.skip}" for b in skipped))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_OFFLINE, encoding="utf-8")
    (tmp_path / "driver.py").write_text(_DRIVER, encoding="utf-8")
    (tmp_path / "blocks.json").write_text(
        json.dumps([b.__dict__ for b in blocks]), encoding="utf-8"
    )
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        LLMROUTER_DATA_DIR=env.get("LLMROUTER_DATA_DIR") or str(ROOT.parent / "shared" / "data"),
        LLMROUTER_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        DSPY_CACHEDIR=str(tmp_path / "dspy-cache"),
        MPLBACKEND="Agg",
    )
    env.pop("LLMROUTER_REPLAY_DATA", None)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "blocks.json")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        missing = _MISSING.search(proc.stderr)
        if missing and missing.group(1).split(".")[0] in OPTIONAL:
            pytest.skip(f"needs {missing.group(1)} (an optional extra), not installed")
    assert proc.returncode == 0, (
        f"{page}: a snippet failed\n--- stdout\n{proc.stdout[-3000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}"
    )
    for block in skipped:
        assert f"skipped: {block.skip}" in proc.stdout
