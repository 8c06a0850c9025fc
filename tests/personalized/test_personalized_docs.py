"""The ```python blocks of docs/personalized.md run as written, in order, in one fresh process
(offline, in an empty working directory)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "personalized.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 3
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first.startswith("12 ")
    mine, theirs = int(second.split()[0]), int(second.split(",")[1].split()[0])
    assert mine > theirs
    assert (tmp_path / "feedback.db").is_file()
