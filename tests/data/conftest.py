"""Fixtures for the data-loader tests: slices of the real files in ../shared/data.

Slices are written to ``tmp_path`` at test time (the real files are read-only and never
copied into the repository). ``LLMROUTER_DATA_DIR`` points at the real data; it defaults to
the repository's ``../shared/data``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_defect_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees its loads' defect reports logged as a first load would (a report is
    logged once per process; later loads of the same defects log at DEBUG)."""
    from llmrouter_core.data import defects

    monkeypatch.setattr(defects, "_logged", set())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("LLMROUTER_DATA_DIR") or REPO / ".." / "shared" / "data")
    if not (root / "routerbench").is_dir():
        pytest.skip(f"real routing data not found at {root} (set LLMROUTER_DATA_DIR)")
    return root.resolve()


@pytest.fixture
def csv_slice() -> Callable[..., Path]:
    """Write the chosen data rows of a real CSV (cell text unchanged) to ``dst``."""

    def make(
        src: Path,
        dst: Path,
        rows: Sequence[int] | None = None,
        where: Callable[[Any], Any] | None = None,
    ) -> Path:
        import pandas as pd

        df = pd.read_csv(src, dtype=str, keep_default_na=False)
        if where is not None:
            df = df[where(df)]
        if rows is not None:
            df = df.iloc[list(rows)]
        dst.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(dst, index=False)
        return dst

    return make


@pytest.fixture
def json_slice() -> Callable[..., Path]:
    """Write chosen items of a real JSON list (or lines of a JSONL file) to ``dst``."""

    def make(src: Path, dst: Path, pick: Callable[[int, Any], bool]) -> Path:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".jsonl":
            lines = src.read_text(encoding="utf-8").split("\n")  # not splitlines(): U+2028 in texts
            kept = [ln for i, ln in enumerate(lines) if ln.strip() and pick(i, json.loads(ln))]
            dst.write_text("\n".join(kept) + "\n", encoding="utf-8")
        else:
            items = json.loads(src.read_text(encoding="utf-8"))
            kept_items = [it for i, it in enumerate(items) if pick(i, it)]
            dst.write_text(json.dumps(kept_items, ensure_ascii=False), encoding="utf-8")
        return dst

    return make
