"""Shared machinery of the loaders: value parsing, long -> wide pivot, defect resolution.

Every format is first read into a :class:`Table` (one row per query as found in the source,
duplicates included, one column per model), then :func:`finalize` applies the same defect
rules to all formats and builds the :class:`~llmrouter_core.data.core.RoutingData`.
"""

from __future__ import annotations

import ast
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.data.defects import (
    DUPLICATE_ID,
    INCOMPLETE_QUERY,
    INVALID_COST,
    MISSING_SCORE,
    TRAIN_TEST_OVERLAP,
    UNKNOWN_MODEL,
    DefectError,
    DefectReport,
    OnDefect,
)
from llmrouter_core.errors import DataError

logger = logging.getLogger("llmrouter_core.data")

BoolArray = npt.NDArray[np.bool_]

#: Cell values read as "no value" in numeric columns.
MISSING_TOKENS = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "n/a", "null", "None", "none"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})

_SPLIT_RE = re.compile(r"(?:^|[_\-.])(train|test|val|validation|dev)(?:[_\-.]|$)", re.IGNORECASE)

_MAX_LITERAL_CHARS = 5_000_000  # larger "python list" strings are kept as raw text
# A one-item list holding one plain (non-raw, non-bytes) string literal: the common case,
# decoded without building a syntax tree.
_ONE_ITEM = (
    re.compile(r"\[\s*'([^'\\\n]*(?:\\.[^'\\\n]*)*)'\s*,?\s*\]", re.DOTALL),
    re.compile(r'\[\s*"([^"\\\n]*(?:\\.[^"\\\n]*)*)"\s*,?\s*\]', re.DOTALL),
)


_ESCAPED_WIDE = re.compile(r"\\[^\x00-\xff]")


def _unescape(body: str) -> str | None:
    """Decode the escapes of a Python string literal body (``None`` if malformed)."""
    if "\\" not in body:
        return body
    if _ESCAPED_WIDE.search(body):  # "\\" before a non-Latin-1 character: leave it to ast
        return None
    try:
        with warnings.catch_warnings():  # an unknown escape ("\\E") is kept, as Python does
            warnings.simplefilter("ignore", DeprecationWarning)
            return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeError:
        return None


def not_utf8(path: Path) -> DataError:
    """The error for a file that is not UTF-8 text: ``FILE:LINE: not valid UTF-8``."""
    try:
        data = path.read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return DataError(f"{path}:{line}: not valid UTF-8")
    except OSError as exc:
        return DataError(f"cannot read {path}: {exc}")
    return DataError(f"{path}: not valid UTF-8")


def split_from_name(path: str | Path) -> str | None:
    """The split named in a file name (``mbpp_test.csv`` -> ``"test"``), else ``None``."""
    m = _SPLIT_RE.search(Path(path).stem)
    if m is None:
        return None
    split = m.group(1).lower()
    return "val" if split in {"validation", "dev"} else split


def parse_text_list(text: Any) -> str | None:
    """Read a stringified Python list of strings (``"['a', 'b']"``) as text.

    The list items are joined with a blank line. Parsing uses :func:`ast.literal_eval`, which
    evaluates literals only (never code); anything that is not a list/tuple of strings is
    returned unchanged as text. ``None``/``nan`` give ``None``.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    if isinstance(text, (list, tuple)):
        return "\n\n".join(str(t) for t in text)
    s = str(text)
    stripped = s.strip()
    if (
        len(stripped) >= 2
        and stripped[0] == "["
        and stripped[-1] == "]"
        and len(stripped) <= _MAX_LITERAL_CHARS
    ):
        for pattern in _ONE_ITEM:
            m = pattern.fullmatch(stripped)
            if m is not None:
                decoded = _unescape(m.group(1))
                if decoded is not None:
                    return decoded
        try:
            with warnings.catch_warnings():  # unknown escapes warn; they are kept
                warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
                value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return s
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return "\n\n".join(value)
    return s


def to_float(values: Any) -> tuple[FloatArray, BoolArray]:
    """Convert a column to floats.

    Returns ``(array, bad)`` where missing cells (empty, ``nan``, ``null``, ``None``, ...) are
    ``nan`` and ``bad`` marks cells that hold something that is not a number (``True`` /
    ``False`` read as 1 / 0).
    """
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if s.dtype.kind in "fiub":
        arr = np.array(s.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        return arr, np.zeros(len(s), dtype=bool)
    obj = s.astype(object)
    is_bool = obj.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    text = obj.map(lambda v: v if isinstance(v, str) else ("" if v is None else str(v)))
    text = text.str.strip()
    missing = text.isin(MISSING_TOKENS).to_numpy(dtype=bool) | obj.isna().to_numpy(dtype=bool)
    true = text.isin(_TRUE).to_numpy(dtype=bool)
    false = text.isin(_FALSE).to_numpy(dtype=bool)
    num = np.array(
        pd.to_numeric(text.where(~(missing | true | false)), errors="coerce"),
        dtype=np.float64,
    )
    num[true] = 1.0
    num[false] = 0.0
    bool_vals = obj[is_bool].map(float).to_numpy(dtype=np.float64) if is_bool.any() else None
    if bool_vals is not None:
        num[is_bool] = bool_vals
    num[missing & ~is_bool] = np.nan
    bad = np.isnan(num) & ~missing & ~true & ~false & ~is_bool
    return num, bad


def check_range(
    values: FloatArray,
    bad: BoolArray,
    *,
    what: str,
    where: Sequence[str],
    low: float | None = 0.0,
    high: float | None = 1.0,
    source: str = "",
) -> None:
    """Raise one :class:`DataError` naming the rows whose ``what`` is non-numeric or out of range.

    A value must be finite and within ``[low, high]`` (``high=None``: no upper bound;
    ``low=None``: any number, only non-numeric text is an error). ``nan`` (missing) is never
    an error here. ``values``/``bad`` may be 1-d (one per row) or 2-d (rows x columns).
    """
    out = np.zeros(values.shape, dtype=bool)
    if low is not None:
        with np.errstate(invalid="ignore"):
            out = np.isinf(values) | (values < low)
            if high is not None:
                out |= values > high
    wrong = bad | out
    if not wrong.any():
        return
    rows = np.flatnonzero(wrong.any(axis=1) if wrong.ndim == 2 else wrong)
    shown = ", ".join(where[i] for i in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    kinds = []
    if bad.any():
        kinds.append("not numeric")
    if out.any():
        rng = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        kinds.append(
            f"outside {rng}" if np.isfinite(values[out]).all() else f"not finite or outside {rng}"
        )
    prefix = f"{source}: " if source else ""
    raise DataError(
        f"{prefix}{len(rows)} rows have a {what} that is {' or '.join(kinds)}: {shown}{more}"
    )


@dataclass
class Table:
    """Per-query rows as found in a source (duplicates included), one column per model."""

    ids: list[str]
    queries: list[str]
    where: list[str]
    models: list[str]
    scores: FloatArray
    absent: BoolArray | None = None
    costs: FloatArray | None = None
    input_tokens: FloatArray | None = None
    output_tokens: FloatArray | None = None
    latency_s: FloatArray | None = None
    responses: npt.NDArray[np.object_] | None = None
    tasks: list[str] | None = None
    splits: list[str] | None = None
    #: Input records behind each row (long formats: one per (query, model)); None = 1 each.
    n_records: npt.NDArray[np.intp] | None = None
    #: Location of each (query, model) record (long formats), for precise defect reports.
    cell_where: npt.NDArray[np.object_] | None = None

    @property
    def n(self) -> int:
        return len(self.ids)

    def take(self, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp] | None = None) -> Table:
        def pick(arr: Any) -> Any:
            if arr is None:
                return None
            out = arr[rows]
            return out if cols is None else out[:, cols]

        def pick_list(values: list[str] | None) -> list[str] | None:
            return None if values is None else [values[i] for i in rows]

        models = self.models if cols is None else [self.models[j] for j in cols]
        return Table(
            ids=[self.ids[i] for i in rows],
            queries=[self.queries[i] for i in rows],
            where=[self.where[i] for i in rows],
            models=list(models),
            scores=pick(self.scores),
            absent=pick(self.absent),
            costs=pick(self.costs),
            input_tokens=pick(self.input_tokens),
            output_tokens=pick(self.output_tokens),
            latency_s=pick(self.latency_s),
            responses=pick(self.responses),
            tasks=pick_list(self.tasks),
            splits=pick_list(self.splits),
            n_records=None if self.n_records is None else self.n_records[rows],
            cell_where=pick(self.cell_where),
        )

    @staticmethod
    def stack(parts: Sequence[Table]) -> Table:
        """Stack tables row-wise; models are the union (first-seen order), missing cells nan."""
        if len(parts) == 1:
            return parts[0]
        models: list[str] = []
        for p in parts:
            models.extend(m for m in p.models if m not in models)
        m = len(models)

        def widen(p: Table, attr: str, fill: Any, dtype: Any) -> Any:
            arr = getattr(p, attr)
            out = np.full((p.n, m), fill, dtype=dtype)
            if arr is None:
                return out
            cols = [models.index(x) for x in p.models]
            out[:, cols] = arr
            return out

        def stack_attr(attr: str, fill: Any, dtype: Any) -> Any:
            if all(getattr(p, attr) is None for p in parts):
                return None
            return np.concatenate([widen(p, attr, fill, dtype) for p in parts], axis=0)

        absent_parts = []
        for p in parts:
            a = np.ones((p.n, m), dtype=bool)
            cols = [models.index(x) for x in p.models]
            a[:, cols] = p.absent if p.absent is not None else False
            absent_parts.append(a)

        def join(attr: str) -> list[str] | None:
            if all(getattr(p, attr) is None for p in parts):
                return None
            out: list[str] = []
            for p in parts:
                values = getattr(p, attr)
                out.extend(values if values is not None else [""] * p.n)
            return out

        return Table(
            ids=[i for p in parts for i in p.ids],
            queries=[q for p in parts for q in p.queries],
            where=[w for p in parts for w in p.where],
            models=models,
            scores=np.concatenate([widen(p, "scores", np.nan, np.float64) for p in parts]),
            absent=np.concatenate(absent_parts, axis=0),
            costs=stack_attr("costs", np.nan, np.float64),
            input_tokens=stack_attr("input_tokens", np.nan, np.float64),
            output_tokens=stack_attr("output_tokens", np.nan, np.float64),
            latency_s=stack_attr("latency_s", np.nan, np.float64),
            responses=stack_attr("responses", None, object),
            tasks=join("tasks"),
            splits=join("splits"),
            n_records=np.concatenate(
                [p.n_records if p.n_records is not None else np.ones(p.n, np.intp) for p in parts]
            ),
            cell_where=stack_attr("cell_where", None, object),
        )


def _same(a: FloatArray | None, i: int, j: int) -> bool:
    if a is None:
        return True
    return bool(np.array_equal(a[i], a[j], equal_nan=True))


def _identical(t: Table, i: int, j: int) -> bool:
    return t.queries[i] == t.queries[j] and _same(t.scores, i, j) and _same(t.costs, i, j)


def _resolve_duplicates(
    t: Table, report: DefectReport, complete: BoolArray, *, keep_first: bool = False
) -> tuple[set[int], int]:
    """Pick at most one copy per duplicated id; return (rows to drop, ids straddling splits).

    Copies that conflict (different scores, or none complete) are all dropped, unless
    ``keep_first`` (``on_defect="keep"``): then the first copy is kept.
    """
    groups: dict[str, list[int]] = {}
    for i, qid in enumerate(t.ids):
        groups.setdefault(qid, []).append(i)
    drop: set[int] = set()
    straddle = 0
    for qid, rows in groups.items():
        if len(rows) < 2:
            continue
        full = [i for i in rows if complete[i]]
        if all(_identical(t, rows[0], i) for i in rows[1:]):
            keep: int | None = rows[0]
            how = "identical copies, kept the first"
        elif full and all(_identical(t, full[0], i) for i in full[1:]):
            keep = full[0]
            how = f"kept the complete copy at {t.where[keep]}"
        elif keep_first:
            keep = rows[0]
            how = "copies differ, kept the first"
        elif full:
            keep = None
            how = "copies with different scores, dropped all"
        else:
            keep = None
            how = "no copy has all scores, dropped all"
        drop.update(i for i in rows if i != keep)
        detail = f"{len(rows)} copies; {how}"
        if t.splits is not None:
            splits = sorted({t.splits[i] for i in rows})
            if len(splits) > 1:
                straddle += 1
                detail += f"; copies in splits {', '.join(splits)}"
        report.add(DUPLICATE_ID, qid, where="; ".join(t.where[i] for i in rows), detail=detail)
    return drop, straddle


def finalize(
    table: Table,
    *,
    report: DefectReport,
    on_defect: OnDefect,
    pool: Any = None,
    name: str = "",
    meta: dict[str, Any] | None = None,
) -> RoutingData:
    """Apply the defect rules to ``table`` and build the :class:`RoutingData`.

    Rules, in order: models outside ``pool`` are removed; duplicate ids are resolved (identical
    copies keep the first, a complete copy beats copies with missing scores, conflicting or
    all-incomplete copies are all dropped); queries with missing scores are dropped (``drop``)
    or kept with ``nan`` (``keep``); training queries whose text is also a test query are
    dropped (``drop``) or kept (``keep``). With ``on_defect="error"`` every defect is collected
    first, then one :class:`DefectError` is raised.
    """
    t = table
    report.on_defect = on_defect
    overlap_removed = 0
    if t.n == 0:
        raise DataError(f"{report.source or 'data'}: no usable rows" + _defect_hint(report))
    # 1. models outside the pool
    cols = np.arange(len(t.models), dtype=np.intp)
    if pool is not None:
        unknown = [m for m in t.models if m not in pool]
        for mname in unknown:
            j = t.models.index(mname)
            present = int(np.sum(~np.isnan(t.scores[:, j])))
            report.add(
                UNKNOWN_MODEL,
                mname,
                where=f"{present} rows",
                detail=f"not in the pool ({', '.join(pool.names)})",
            )
        if len(unknown) == len(t.models):
            raise DataError(
                f"{report.source}: none of the data's models is in the pool; data: "
                f"{', '.join(t.models)}; pool: {', '.join(pool.names)}"
            )
        if unknown:
            report.dropped_models = list(unknown)
            if t.absent is not None and t.n_records is not None:
                bad_cols = [t.models.index(u) for u in unknown]
                report.dropped_rows += int((~t.absent[:, bad_cols]).sum())
                t.n_records = t.n_records - (~t.absent[:, bad_cols]).sum(axis=1)
            cols = np.array([j for j, m in enumerate(t.models) if m not in unknown], dtype=np.intp)
            t = t.take(np.arange(t.n, dtype=np.intp), cols)
    # 2. duplicate ids
    complete: BoolArray = np.asarray(~np.isnan(t.scores).any(axis=1), dtype=bool)
    dup_drop, straddle = _resolve_duplicates(t, report, complete, keep_first=on_defect == "keep")
    if straddle:
        report.note(f"{straddle} duplicate ids have copies in different splits")
    alive = np.ones(t.n, dtype=bool)
    alive[list(dup_drop)] = False
    # 3. missing scores / incomplete queries
    missing_rows = np.flatnonzero(alive & ~complete)
    for i in missing_rows:
        nan_cols = np.flatnonzero(np.isnan(t.scores[i]))
        absent_cols = [j for j in nan_cols if t.absent[i, j]] if t.absent is not None else []
        if absent_cols:
            report.add(
                INCOMPLETE_QUERY,
                t.ids[i],
                where=t.where[i],
                detail="no record for: " + ", ".join(t.models[j] for j in absent_cols),
            )
        else:
            cells = (
                [str(t.cell_where[i, j]) for j in nan_cols if t.cell_where[i, j]]
                if t.cell_where is not None
                else []
            )
            report.add(
                MISSING_SCORE,
                t.ids[i],
                where="; ".join(dict.fromkeys(cells)) or t.where[i],
                detail="no score for: " + ", ".join(t.models[j] for j in nan_cols),
            )
    if on_defect != "keep":
        alive[missing_rows] = False
    # 4. costs that are not a finite number >= 0, or missing where they are required
    bad_cost_rows = _check_costs(t, alive, report, required=pool is None)
    if on_defect == "keep":
        if t.costs is not None:  # kept as unknown
            with np.errstate(invalid="ignore"):
                t.costs[np.isinf(t.costs) | (t.costs < 0)] = np.nan
    else:
        alive[bad_cost_rows] = False
    # 5. train/test overlap (by query text)
    if t.splits is not None:
        test_text: dict[str, str] = {}
        for i in np.flatnonzero(alive):
            if t.splits[i] == "test":
                test_text.setdefault(t.queries[i], t.ids[i])
        overlap = [
            i for i in np.flatnonzero(alive) if t.splits[i] == "train" and t.queries[i] in test_text
        ]
        for i in overlap:
            report.add(
                TRAIN_TEST_OVERLAP,
                t.ids[i],
                where=t.where[i],
                detail=f"same text as test query {test_text[t.queries[i]]}",
            )
        if on_defect == "drop" and overlap:
            alive[overlap] = False
            overlap_removed = len(overlap)
    per_row = t.n_records if t.n_records is not None else np.ones(t.n, dtype=np.intp)
    report.dropped_rows += int(per_row[~alive].sum())
    kept_ids = {t.ids[i] for i in np.flatnonzero(alive)}
    seen: set[str] = set()
    for i in np.flatnonzero(~alive):
        qid = t.ids[i]
        if qid not in kept_ids and qid not in seen:
            seen.add(qid)
            report.dropped_queries.append(qid)
    rows = np.flatnonzero(alive).astype(np.intp)
    report.n_queries = len(rows)
    report.n_models = len(t.models)
    if on_defect == "error" and report.has_defects:
        report.dropped_rows = 0
        report.dropped_queries = []
        report.dropped_models = []
        raise DefectError(report)
    if len(rows) == 0:
        raise DataError(
            f"{report.source}: every query was dropped as defective\n{report.summary()}"
        )
    t = t.take(rows)
    data = RoutingData(
        query_ids=t.ids,
        queries=t.queries,
        models=t.models,
        scores=t.scores,
        costs=t.costs,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        latency_s=t.latency_s,
        tasks=t.tasks,
        splits=t.splits,
        responses=t.responses,
        name=name,
        meta=dict(meta or {}),
    )
    data.meta["source"] = report.source
    data.meta["defects"] = report.to_dict()
    if overlap_removed:
        data.meta["train_test_overlap_removed"] = overlap_removed
    report.log()
    return data


def _check_costs(
    t: Table, alive: BoolArray, report: DefectReport, *, required: bool
) -> npt.NDArray[np.intp]:
    """Record an ``invalid_cost`` defect per live row with a cost that is ``inf`` or negative,
    or (``required``: no pool to price it) missing for a scored model while the data records
    other costs. Returns those rows."""
    if t.costs is None:
        return np.zeros(0, dtype=np.intp)
    costs = t.costs
    with np.errstate(invalid="ignore"):
        bad = np.isinf(costs) | (costs < 0)
    if required and np.isfinite(costs).any():
        bad |= np.isnan(costs) & ~np.isnan(t.scores)
    bad &= alive[:, None]
    rows = np.flatnonzero(bad.any(axis=1)).astype(np.intp)
    for i in rows:
        cols = np.flatnonzero(bad[i])
        what = [
            f"{t.models[j]} has none (no pool to price it)"
            if np.isnan(costs[i, j])
            else f"{t.models[j]} has {costs[i, j]:g}"
            for j in cols
        ]
        cells = (
            [str(t.cell_where[i, j]) for j in cols if t.cell_where[i, j]]
            if t.cell_where is not None
            else []
        )
        report.add(
            INVALID_COST,
            t.ids[i],
            where="; ".join(dict.fromkeys(cells)) or t.where[i],
            detail="a cost must be a finite number >= 0: " + ", ".join(what),
        )
    return rows


def _defect_hint(report: DefectReport) -> str:
    return f"\n{report.summary()}" if report.has_defects else ""


def fill_costs(data: RoutingData, pool: Any) -> RoutingData:
    """Derive missing costs from ``pool`` prices (measured costs are kept) and record how."""
    had = data.costs is not None and not np.isnan(data.costs).any()
    if had:
        data.meta.setdefault("cost_source", "measured")
        return data
    partial = data.costs is not None
    out = data.with_costs_from_pool(pool)
    out.meta = dict(data.meta)
    out.meta["cost_source"] = "measured+pool" if partial else "pool"
    return out


def from_long(
    df: Any,
    *,
    report: DefectReport,
    optional: Sequence[str] = (),
) -> Table:
    """Pivot a long frame (one row per (query, model)) into a :class:`Table`.

    ``df`` has columns ``query_id, query, model, score, where`` (score float, ``nan`` =
    missing) and any of ``cost, input_tokens, output_tokens, latency_s`` (float), ``task,
    split, response`` (text or ``None``). Duplicate (query, model) records are resolved here
    (identical copies keep the first; a scored copy beats unscored ones; conflicting scored
    copies are all dropped, leaving the query incomplete) and ids used for different query
    texts (or different tasks / splits) are dropped whole.
    """
    import pandas as pd

    df = df.reset_index(drop=True)
    numeric = [c for c in ("cost", "input_tokens", "output_tokens", "latency_s") if c in optional]
    text_cols = [c for c in ("task", "split", "response") if c in optional]
    # (query, model) duplicates
    dup = df.duplicated(["query_id", "model"], keep=False).to_numpy()
    drop_idx: set[int] = set()
    if dup.any():
        sub = df[dup]
        for (qid, model), g in sub.groupby(["query_id", "model"], sort=False):
            idx = list(g.index)
            s = g["score"].to_numpy(dtype=np.float64)
            scored = [i for i, v in zip(idx, s, strict=True) if not np.isnan(v)]

            def same(i: int, j: int) -> bool:
                a, b = df.loc[i], df.loc[j]
                if a["query"] != b["query"]:
                    return False
                for c in ["score", *numeric]:
                    x, y = float(a[c]), float(b[c])
                    if not (x == y or (np.isnan(x) and np.isnan(y))):
                        return False
                return True

            if all(same(idx[0], i) for i in idx[1:]):
                keep: int | None = idx[0]
                how = "identical copies, kept the first"
            elif scored and all(same(scored[0], i) for i in scored[1:]):
                keep = scored[0]
                how = f"kept the scored copy at {df.at[keep, 'where']}"
            elif scored:
                keep = None
                how = "copies with different scores, dropped all"
            else:
                keep = idx[0]
                how = "no copy has a score, kept the first"
            drop_idx.update(i for i in idx if i != keep)
            report.add(
                DUPLICATE_ID,
                f"{qid} | {model}",
                where="; ".join(str(df.at[i, "where"]) for i in idx),
                detail=f"(query_id, model) pair occurs {len(idx)} times; {how}",
            )
    if drop_idx:
        report.dropped_rows += len(drop_idx)
        df = df.drop(index=sorted(drop_idx)).reset_index(drop=True)
    # one id must mean one query (same text, task and split)
    keys = ["query", *[c for c in ("task", "split") if c in text_cols]]
    nunique = df.groupby("query_id", sort=False)[keys].nunique(dropna=False)
    bad_ids = nunique.index[(nunique > 1).any(axis=1)]
    if len(bad_ids):
        bad_set = set(bad_ids)
        mask = df["query_id"].isin(bad_set).to_numpy()
        for qid in bad_ids:
            rows = df.index[df["query_id"] == qid]
            which = [k for k in keys if nunique.at[qid, k] > 1]
            report.add(
                DUPLICATE_ID,
                str(qid),
                where="; ".join(str(df.at[i, "where"]) for i in rows[:10]),
                detail=f"one id used for different {'/'.join(which)}; dropped all its rows",
            )
        report.dropped_rows += int(mask.sum())
        report.dropped_queries.extend(str(q) for q in bad_ids)
        df = df[~mask].reset_index(drop=True)
    if len(df) == 0:
        raise DataError(f"{report.source}: no usable rows" + _defect_hint(report))
    qcodes, qids = pd.factorize(df["query_id"], sort=False)
    mcodes, models = pd.factorize(df["model"], sort=False)
    n, m = len(qids), len(models)
    # first row of each query (the smallest row index per query code)
    first = pd.Series(np.arange(len(df))).groupby(qcodes).min().to_numpy().astype(np.intp)

    def matrix(col: str) -> FloatArray:
        out = np.full((n, m), np.nan)
        out[qcodes, mcodes] = df[col].to_numpy(dtype=np.float64)
        return out

    absent = np.ones((n, m), dtype=bool)
    absent[qcodes, mcodes] = False
    cell_where = np.full((n, m), None, dtype=object)
    cell_where[qcodes, mcodes] = df["where"].to_numpy(dtype=object)
    responses = None
    if "response" in text_cols:
        responses = np.full((n, m), None, dtype=object)
        responses[qcodes, mcodes] = df["response"].to_numpy(dtype=object)

    def per_query(col: str) -> list[str] | None:
        if col not in text_cols:
            return None
        vals = df[col].to_numpy(dtype=object)[first]
        return ["" if v is None else str(v) for v in vals]

    return Table(
        ids=[str(q) for q in qids],
        queries=[str(q) for q in df["query"].to_numpy(dtype=object)[first]],
        where=[str(w) for w in df["where"].to_numpy(dtype=object)[first]],
        models=[str(x) for x in models],
        scores=matrix("score"),
        absent=absent,
        costs=matrix("cost") if "cost" in numeric else None,
        input_tokens=matrix("input_tokens") if "input_tokens" in numeric else None,
        output_tokens=matrix("output_tokens") if "output_tokens" in numeric else None,
        latency_s=matrix("latency_s") if "latency_s" in numeric else None,
        responses=responses,
        tasks=per_query("task"),
        splits=per_query("split"),
        n_records=np.bincount(qcodes, minlength=n).astype(np.intp),
        cell_where=cell_where,
    )


def dedupe_train_test(
    data: RoutingData, *, train: str = "train", test: str = "test"
) -> RoutingData:
    """Remove training queries whose text also occurs in the test split.

    Evaluating on test queries the router saw in training overstates it; this removes those
    training rows (never test rows), logs the count and records it in
    ``meta["train_test_overlap_removed"]`` (with the removed ids in
    ``meta["train_test_overlap_ids"]``).

    Example:
        >>> import numpy as np
        >>> d = RoutingData(["a", "b", "c"], ["same", "other", "same"], ["m"],
        ...                 np.ones((3, 1)), splits=["train", "train", "test"])
        >>> dedupe_train_test(d).query_ids
        ['b', 'c']
    """
    if data.splits is None:
        raise DataError(f"{data!r} has no split column")
    test_text = {q for q, s in zip(data.queries, data.splits, strict=True) if s == test}
    drop = np.array(
        [s == train and q in test_text for q, s in zip(data.queries, data.splits, strict=True)],
        dtype=bool,
    )
    out = data.subset(~drop)
    out.meta = dict(data.meta)
    removed = [data.query_ids[i] for i in np.flatnonzero(drop)]
    out.meta["train_test_overlap_removed"] = int(
        data.meta.get("train_test_overlap_removed", 0)
    ) + len(removed)
    out.meta["train_test_overlap_ids"] = [
        *data.meta.get("train_test_overlap_ids", []),
        *removed,
    ]
    logger.info("removed %d %s queries whose text also occurs in %s", len(removed), train, test)
    return out
