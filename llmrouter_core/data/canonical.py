"""The canonical long table: one row per (query, model).

Columns (CSV, JSONL or Parquet):

=================  ========  ==================================================================
column             required  meaning
=================  ========  ==================================================================
``query_id``       yes       id of the query; every row of one query carries the same id
``query``          yes       the prompt text (the same on every row of the query)
``model``          yes       model name (as in the pool)
``score``          yes       measured quality in [0, 1]; empty = not measured
``cost``           no        USD for this call
``input_tokens``   no        prompt tokens
``output_tokens``  no        completion tokens
``latency_s``      no        seconds
``task``           no        task / benchmark name of the query
``split``          no        ``train`` / ``test`` / ...
``response``       no        the model's answer text
=================  ========  ==================================================================

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> _ = p.write_text("query_id,query,model,score,cost\\n"
    ...                  "q1,2+2?,small,1,0.0001\\nq1,2+2?,large,1,0.002\\n")
    >>> d = load_canonical(p)
    >>> d.models, d.scores.tolist()
    (['small', 'large'], [[1.0, 1.0]])
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from llmrouter_core.data._assemble import (
    check_range,
    fill_costs,
    finalize,
    from_long,
    not_utf8,
    to_float,
)
from llmrouter_core.data.core import RoutingData
from llmrouter_core.data.defects import MALFORMED_ROW, DefectReport, check_on_defect
from llmrouter_core.errors import DataError

__all__ = [
    "CANONICAL_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "as_pool",
    "load_canonical",
    "save_canonical",
]

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("query_id", "query", "model", "score")
OPTIONAL_COLUMNS = (
    "cost",
    "input_tokens",
    "output_tokens",
    "latency_s",
    "task",
    "split",
    "response",
)
CANONICAL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
_NUMERIC = ("cost", "input_tokens", "output_tokens", "latency_s")
_TEXT = ("task", "split", "response")

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")


def as_pool(pool: Any) -> Any:
    """Accept a :class:`~llmrouter_core.pool.Pool`, a pool file path, or ``None``."""
    if pool is None or hasattr(pool, "names"):
        return pool
    if isinstance(pool, (str, Path)):
        from llmrouter_core.pool import Pool

        return Pool.from_file(pool)
    raise DataError(f"pool must be a Pool or a pool file path, got {type(pool).__name__}")


def _iter_jsonl(path: Path, report: DefectReport) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) per line; unreadable lines (not UTF-8, not JSON, not an
    object) become malformed-row defects. Lines end at ``\\n`` only."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{path.name} line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.add(MALFORMED_ROW, f"line {lineno}", where=where, detail="not valid UTF-8")
                continue
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                report.add(MALFORMED_ROW, f"line {lineno}", where=where, detail=f"bad JSON: {exc}")
                continue
            except RecursionError:
                report.add(MALFORMED_ROW, f"line {lineno}", where=where, detail="nested too deeply")
                continue
            if not isinstance(obj, dict):
                report.add(
                    MALFORMED_ROW,
                    f"line {lineno}",
                    where=where,
                    detail=f"expected a JSON object, got {type(obj).__name__}",
                )
                continue
            yield lineno, obj


def read_frame(path: Path, report: DefectReport) -> Any:
    """Read a CSV / JSONL / Parquet file into a frame of raw values plus a ``where`` column."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"cannot parse CSV file {path}: {exc}") from exc
        df["where"] = [f"{path.name} row {i}" for i in range(1, len(df) + 1)]
    elif suffix in JSONL_SUFFIXES:
        records, wheres = [], []
        for lineno, obj in _iter_jsonl(path, report):
            records.append(obj)
            wheres.append(f"{path.name} line {lineno}")
        df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        df["where"] = wheres
    elif suffix in PARQUET_SUFFIXES:
        try:
            df = pd.read_parquet(path)
            # text columns may be decoded lazily (Arrow strings): decode them here, where a
            # corrupt file is one clear error
            df = df.astype({c: object for c in df.columns if df[c].dtype.kind not in "fiub"})
        except Exception as exc:  # pyarrow raises many types on bad files
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise DataError(f"cannot read Parquet file {path}: {reason}") from exc
        df["where"] = [f"{path.name} row {i}" for i in range(1, len(df) + 1)]
    else:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; the canonical table is read from "
            ".csv, .jsonl or .parquet"
        )
    report.n_input_rows += len(df)
    return df


def _text(values: Any, *, blank_is_missing: bool = False) -> list[str | None]:
    """Text cells: ``None`` for missing (``None``, ``nan``, empty string; with
    ``blank_is_missing`` also whitespace only)."""
    out: list[str | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            s = v if isinstance(v, str) else str(v)
            empty = not s.strip() if blank_is_missing else s == ""
            out.append(None if empty else s)
    return out


def normalize_long(df: Any, report: DefectReport, *, source: str) -> tuple[Any, list[str]]:
    """Validate a long frame with canonical column names; return (clean frame, optional cols).

    Rows without id / model / query text are recorded as malformed and removed; scores and
    numeric columns that are not numbers or out of range raise one :class:`DataError`.
    """
    import pandas as pd

    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        found = [c for c in df.columns if c != "where"]
        raise DataError(
            f"{source}: missing required columns: {', '.join(missing)} (found: "
            f"{', '.join(map(str, found)) or 'none'}); the canonical table needs "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    optional = [c for c in OPTIONAL_COLUMNS if c in df.columns]
    cells = {c: _text(df[c], blank_is_missing=True) for c in ("query_id", "query", "model")}
    out = pd.DataFrame({**cells, "where": df["where"].to_numpy(dtype=object)})
    reasons = {"query_id": "no query_id", "model": "no model", "query": "empty query"}
    bad_row = out["query_id"].isna() | out["model"].isna() | out["query"].isna()
    for i in np.flatnonzero(bad_row.to_numpy()):
        lacking = [reasons[c] for c in ("query_id", "model", "query") if cells[c][i] is None]
        report.add(
            MALFORMED_ROW,
            str(cells["query_id"][i] or out.at[i, "where"]),
            where=str(out.at[i, "where"]),
            detail=", ".join(lacking),
        )
    labels = [
        f"{w} (query_id {q}, model {m})"
        for w, q, m in zip(out["where"], out["query_id"], out["model"], strict=True)
    ]
    score, bad = to_float(df["score"].reset_index(drop=True))
    check_range(score, bad & ~bad_row.to_numpy(), what="score", where=labels, source=source)
    out["score"] = score
    for col in _NUMERIC:
        if col in optional:
            vals, bad = to_float(df[col].reset_index(drop=True))
            # a cost that is inf or negative is a defect of its row (see finalize)
            low = None if col == "cost" else 0.0
            check_range(
                vals,
                bad & ~bad_row.to_numpy(),
                what=col,
                where=labels,
                low=low,
                high=None,
                source=source,
            )
            out[col] = vals
    for col in _TEXT:
        if col in optional:
            vals_t = _text(df[col])
            out[col] = vals_t if col == "response" else [v or "" for v in vals_t]
    out = out[~bad_row.to_numpy()].reset_index(drop=True)
    return out, optional


def load_canonical(
    path: str | Path,
    *,
    on_defect: str = "error",
    pool: Any = None,
    name: str | None = None,
) -> RoutingData:
    """Load a canonical long table (CSV, JSONL or Parquet).

    Args:
        path: ``.csv``, ``.jsonl`` / ``.ndjson`` or ``.parquet`` / ``.pq`` file.
        on_defect: ``"error"``, ``"drop"`` or ``"keep"`` (see :mod:`llmrouter_core.data.defects`).
        pool: A :class:`~llmrouter_core.pool.Pool` (or pool file): models outside it are
            defects, and costs missing from the file are derived from its prices.
        name: Dataset name (default: the file stem).

    Returns:
        The data; ``data.meta["defects"]`` holds the defect report.

    Raises:
        DataError: Missing required columns, a score outside [0, 1] or not numeric, a
            non-numeric cost or a negative or non-numeric token count / latency, or (with
            ``on_defect="error"``) any defect, such as an empty query or a cost that is
            ``inf`` or negative (then a :class:`~llmrouter_core.data.defects.DefectError`
            carrying ``.report``).
    """
    mode = check_on_defect(on_defect)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file not found: {p}")
    pool = as_pool(pool)
    report = DefectReport(source=p.name, on_defect=mode)
    raw = read_frame(p, report)
    df, optional = normalize_long(raw, report, source=p.name)
    table = from_long(df, report=report, optional=optional)
    data = finalize(
        table,
        report=report,
        on_defect=mode,
        pool=pool,
        name=name or p.stem,
        meta={"format": "canonical"},
    )
    if data.costs is not None and not np.isnan(data.costs).any():
        data.meta["cost_source"] = "measured"
    if pool is not None:
        data = fill_costs(data, pool)
    return data


def to_long_frame(data: RoutingData) -> Any:
    """The canonical long frame of ``data``.

    A (query, model) cell becomes a row when it has a score or any other recorded value;
    cells with nothing recorded are left out (they load back as missing).
    """
    import pandas as pd

    n, m = data.n_queries, data.n_models
    qi = np.repeat(np.arange(n), m)
    mj = np.tile(np.arange(m), n)
    has = ~np.isnan(data.scores)
    for arr in (data.costs, data.input_tokens, data.output_tokens, data.latency_s):
        if arr is not None:
            has |= ~np.isnan(arr)
    if data.responses is not None:
        has |= np.vectorize(lambda r: r is not None, otypes=[bool])(data.responses)
    keep = has.reshape(-1)
    qi, mj = qi[keep], mj[keep]
    cols: dict[str, Any] = {
        "query_id": np.asarray(data.query_ids, dtype=object)[qi],
        "query": np.asarray(data.queries, dtype=object)[qi],
        "model": np.asarray(data.models, dtype=object)[mj],
        "score": data.scores[qi, mj],
    }
    for attr, col in (
        ("costs", "cost"),
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("latency_s", "latency_s"),
    ):
        arr = getattr(data, attr)
        if arr is not None:
            cols[col] = arr[qi, mj]
    if data.tasks is not None:
        cols["task"] = np.asarray(data.tasks, dtype=object)[qi]
    if data.splits is not None:
        cols["split"] = np.asarray(data.splits, dtype=object)[qi]
    if data.responses is not None:
        cols["response"] = data.responses[qi, mj]
    return pd.DataFrame(cols)


def save_canonical(data: RoutingData, path: str | Path) -> Path:
    """Write ``data`` as a canonical long table; the format follows the suffix.

    ``.csv``, ``.jsonl`` / ``.ndjson`` and ``.parquet`` / ``.pq`` are supported; numbers are
    written at full precision, so :func:`load_canonical` reads back the same values.

    Returns:
        The path written.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES:
        raise DataError(f"{p}: unsupported file type {p.suffix!r}; write .csv, .jsonl or .parquet")
    df = to_long_frame(data)
    p.parent.mkdir(parents=True, exist_ok=True)
    if suffix in CSV_SUFFIXES:
        df.to_csv(p, index=False)
    elif suffix in PARQUET_SUFFIXES:
        df.to_parquet(p, index=False)
    else:
        columns = list(df.columns)
        with p.open("w", encoding="utf-8") as fh:
            for row in df.itertuples(index=False, name=None):
                rec = {}
                for c, v in zip(columns, row, strict=True):
                    if isinstance(v, float) and math.isnan(v):
                        v = None
                    elif isinstance(v, np.generic):
                        v = v.item()
                    rec[c] = v
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    logger.info("wrote %s (%d rows)", p, len(df))
    return p
