"""RouterBench's wide schema: one row per query, one score column per model.

Columns: ``sample_id``, ``prompt`` (a stringified Python list of turns, e.g.
``"['What is 2+2?']"``), ``eval_name`` (the task), one 0/1 score column per model,
``<model>|model_response``, ``<model>|total_cost`` (USD) and ``oracle_model_to_route_to``
(ignored: it is derived from the scores). The official release ships pickled DataFrames with
the same columns; a pickle can run arbitrary code when loaded, so ``.pkl`` files are read only
with ``trust_pickle=True``.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "mini_test.csv"
    >>> _ = p.write_text("sample_id,prompt,eval_name,a,b,a|total_cost,b|total_cost\\n"
    ...                  "s1,['2+2?'],math,1.0,0.0,0.001,0.0001\\n")
    >>> d = load_routerbench(p)
    >>> d.queries, d.models, d.splits
    (['2+2?'], ['a', 'b'], ['test'])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrouter_core.data._assemble import (
    Table,
    check_range,
    fill_costs,
    finalize,
    not_utf8,
    parse_text_list,
    split_from_name,
    to_float,
)
from llmrouter_core.data.canonical import as_pool
from llmrouter_core.data.core import RoutingData
from llmrouter_core.data.defects import MALFORMED_ROW, DefectReport, check_on_defect
from llmrouter_core.errors import DataError

__all__ = ["PICKLE_SUFFIXES", "ROUTERBENCH_META_COLUMNS", "load_routerbench", "resolve_paths"]

logger = logging.getLogger(__name__)

ROUTERBENCH_META_COLUMNS = frozenset(
    {"sample_id", "prompt", "eval_name", "oracle_model_to_route_to"}
)
PICKLE_SUFFIXES = (".pkl", ".pickle")
_RESPONSE = "|model_response"
_COST = "|total_cost"


def resolve_paths(paths: str | Path | Sequence[str | Path], suffixes: Sequence[str]) -> list[Path]:
    """Expand a file, a directory (its files with ``suffixes``) or a list of both."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                raise DataError(f"no {'/'.join(suffixes)} files in directory {p}")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"data file not found: {p}")
    if not out:
        raise DataError("no data files given")
    return out


def _refuse_pickle(path: Path) -> DataError:
    return DataError(
        f"{path} is a pickle file: loading a pickle can run arbitrary code, so it is refused "
        "by default. Pass trust_pickle=True only for a file from a source you trust (such as "
        "the official RouterBench release), or convert it to CSV / Parquet first."
    )


def _read(path: Path, trust_pickle: bool) -> Any:
    import pandas as pd

    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise _refuse_pickle(path)
        logger.warning("unpickling %s (trust_pickle=True)", path)
        obj = pd.read_pickle(path)  # explicitly trusted by the caller
        if not isinstance(obj, pd.DataFrame):
            raise DataError(f"{path}: expected a pickled DataFrame, got {type(obj).__name__}")
        return obj.reset_index(drop=True)
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: RouterBench data is read from .csv (or trusted .pkl) files")
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot parse CSV file {path}: {exc}") from exc


def routerbench_models(columns: Sequence[Any]) -> list[str]:
    """Model columns of a RouterBench frame (plain columns with a response or cost partner)."""
    cols = [str(c) for c in columns]
    colset = set(cols)
    plain = [
        c
        for c in cols
        if "|" not in c
        and c not in ROUTERBENCH_META_COLUMNS
        and c != ""
        and not c.startswith("Unnamed:")
    ]
    partnered = [c for c in plain if c + _RESPONSE in colset or c + _COST in colset]
    return partnered or plain


def _table(path: Path, df: Any, report: DefectReport) -> Table:
    cols = [str(c) for c in df.columns]
    df.columns = cols
    missing = [c for c in ("sample_id", "prompt") if c not in cols]
    models = routerbench_models(cols)
    if missing or not models:
        need = ", ".join(missing) if missing else "score columns (one per model)"
        raise DataError(
            f"{path.name}: not a RouterBench file: missing {need}; expected sample_id, prompt, "
            "eval_name, one score column per model, <model>|model_response, <model>|total_cost"
        )
    n = len(df)
    report.n_input_rows += n
    where = [f"{path.name} row {i}" for i in range(1, n + 1)]
    ids = [
        None if v is None or (isinstance(v, float) and np.isnan(v)) or str(v) == "" else str(v)
        for v in df["sample_id"].tolist()
    ]
    prompts = [parse_text_list(v) for v in df["prompt"].tolist()]
    ok = np.array(
        [i is not None and bool(p and p.strip()) for i, p in zip(ids, prompts, strict=True)],
        dtype=bool,
    )
    for i in np.flatnonzero(~ok):
        report.add(
            MALFORMED_ROW,
            ids[i] or where[i],
            where=where[i],
            detail="no sample_id" if ids[i] is None else "empty query",
        )
    labels = [f"{w} (sample_id {i})" for w, i in zip(where, ids, strict=True)]
    scores = np.full((n, len(models)), np.nan)
    bad = np.zeros((n, len(models)), dtype=bool)
    for j, m in enumerate(models):
        scores[:, j], bad[:, j] = to_float(df[m])
    check_range(
        scores[ok],
        bad[ok],
        what="score",
        where=[labels[i] for i in np.flatnonzero(ok)],
        source=path.name,
    )
    costs = None
    if any(m + _COST in cols for m in models):
        costs = np.full((n, len(models)), np.nan)
        bad = np.zeros((n, len(models)), dtype=bool)
        for j, m in enumerate(models):
            if m + _COST in cols:
                costs[:, j], bad[:, j] = to_float(df[m + _COST])
        check_range(  # non-numeric only: inf / negative costs are row defects (finalize)
            costs[ok],
            bad[ok],
            what="total_cost",
            low=None,
            high=None,
            where=[labels[i] for i in np.flatnonzero(ok)],
            source=path.name,
        )
    responses = None
    if any(m + _RESPONSE in cols for m in models):
        responses = np.full((n, len(models)), None, dtype=object)
        for j, m in enumerate(models):
            if m + _RESPONSE in cols:
                responses[:, j] = [parse_text_list(v) for v in df[m + _RESPONSE].tolist()]
    tasks = None
    if "eval_name" in cols:
        tasks = [
            "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            for v in df["eval_name"].tolist()
        ]
    split = split_from_name(path)
    rows = np.flatnonzero(ok).astype(np.intp)
    table = Table(
        ids=[str(i) for i in ids],
        queries=[str(p) for p in prompts],
        where=where,
        models=models,
        scores=scores,
        costs=costs,
        responses=responses,
        tasks=tasks,
        splits=[split] * n if split is not None else None,
    )
    return table.take(rows)


def load_routerbench(
    paths: str | Path | Sequence[str | Path],
    *,
    on_defect: str = "error",
    trust_pickle: bool = False,
    pool: Any = None,
    name: str = "routerbench",
) -> RoutingData:
    """Load RouterBench files (wide schema) into one dataset.

    Args:
        paths: A ``.csv`` file, a directory of them, or a list; trusted ``.pkl`` files too.
            The split comes from the file name (``mbpp_train.csv`` -> ``"train"``); the task
            from ``eval_name``. Prompts and responses stored as stringified Python lists are
            read with :func:`ast.literal_eval` (literals only, never code) and their items
            joined with a blank line.
        on_defect: ``"error"``, ``"drop"`` or ``"keep"``. Duplicate ``sample_id`` across all
            given files are detected together (RouterBench has some that straddle its train
            and test files).
        trust_pickle: Allow ``.pkl`` files. Unpickling runs code chosen by the file's author:
            only for files from a source you trust.
        pool: Optional pool: models outside it are defects; it also fills missing costs.
        name: Dataset name.

    Raises:
        DataError: Unreadable or non-RouterBench files, a pickle without ``trust_pickle``,
            scores outside [0, 1], non-numeric costs, or (``on_defect="error"``) any defect
            (an empty prompt, a cost that is ``inf`` or negative, ...).
    """
    mode = check_on_defect(on_defect)
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for item in items:
        # in a folder, CSV files take precedence over pickles of the same data
        if Path(item).is_dir() and any(Path(item).glob("*.csv")):
            files.extend(resolve_paths(item, (".csv",)))
        else:
            files.extend(resolve_paths(item, (".csv", *PICKLE_SUFFIXES)))
    if not trust_pickle:
        for f in files:
            if f.suffix.lower() in PICKLE_SUFFIXES:
                raise _refuse_pickle(f)
    pool = as_pool(pool)
    report = DefectReport(source=", ".join(f.name for f in files), on_defect=mode)
    tables = [_table(f, _read(f, trust_pickle), report) for f in files]
    table = Table.stack(tables)
    data = finalize(
        table,
        report=report,
        on_defect=mode,
        pool=pool,
        name=name,
        meta={"format": "routerbench", "files": [str(f) for f in files]},
    )
    if data.costs is not None and not np.isnan(data.costs).any():
        data.meta["cost_source"] = "measured"
    if pool is not None:
        data = fill_costs(data, pool)
    return data
