"""LLMRouter's data formats (ulab-uiuc/LLMRouter).

- **dcrouter JSON** (``dcrouter_train.json``): ``[{"question": ..., "scores": {model: score}}]``
  (an optional ``cluster_id`` is ignored). No costs: they are derived from the pool's prices
  (``default_llm.json``, read by :meth:`~llmrouter_core.pool.Pool.from_file`) and token
  estimates, as LLMRouter's own benchmark does. Task names come from LLMRouter's query files
  (``default_query_*.jsonl``: ``task_name, query, ground_truth, metric, choices, task_id``),
  matched on the question text.
- **Routing JSONL** (``default_routing_train_data.jsonl``): one line per (query, model), the
  query-file fields plus ``model_name, response, token_num, input_tokens, output_tokens,
  response_time, performance, embedding_id`` (and ``user_id``, ``fig_id``, ``api_key_used``,
  which are ignored; an ``api_key_used`` value is never stored). ``performance`` is the score;
  costs come from the token counts and the pool's prices, or from a ``cost`` field (USD) if
  one is present.
- **NQ router data** (``router_train_data_nq.json``): ``[{"q_id", "query", "gt", "source",
  "llm_name_list", "response_list", "cost_list", "perf_list", ...}]``, lists aligned per
  model (their order varies per query). ``cost_list`` holds tokens x price-per-million-tokens,
  i.e. millionths of a dollar; it is converted to USD (``cost_unit=1e-6``).

Example:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "dc_test.json").write_text(json.dumps(
    ...     [{"question": "2+2?", "scores": {"small": 1.0, "large": 1.0}}]))
    >>> load_dcrouter(d / "dc_test.json").scores.tolist()
    [[1.0, 1.0]]
"""

from __future__ import annotations

import ast
import json
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrouter_core.data._assemble import (
    Table,
    check_range,
    fill_costs,
    finalize,
    from_long,
    not_utf8,
    split_from_name,
    to_float,
)
from llmrouter_core.data.canonical import _iter_jsonl, as_pool, normalize_long
from llmrouter_core.data.core import RoutingData
from llmrouter_core.data.defects import MALFORMED_ROW, DefectReport, check_on_defect
from llmrouter_core.data.routerbench import resolve_paths
from llmrouter_core.errors import DataError

__all__ = [
    "NQ_COST_UNIT",
    "load_dcrouter",
    "load_llmrouter_nq",
    "load_llmrouter_routing",
    "read_query_tasks",
]

logger = logging.getLogger(__name__)

#: ``cost_list`` in LLMRouter's NQ file is tokens x USD-per-1M-tokens: millionths of a dollar.
NQ_COST_UNIT = 1e-6


def _load_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"cannot parse JSON file {path}: {exc.msg} at line {exc.lineno} column {exc.colno}"
            " (truncated or not JSON?)"
        ) from exc
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except RecursionError:
        raise DataError(f"cannot parse JSON file {path}: nested too deeply") from None


def read_query_tasks(paths: str | Path | Sequence[str | Path]) -> tuple[dict[str, str], int]:
    """Map query text -> task name from LLMRouter query files (``default_query_*.jsonl``).

    A text listed under several task names maps to the sorted names joined by ``|``.

    Returns:
        ``(mapping, number of texts with more than one task name)``.
    """
    names: dict[str, set[str]] = {}
    for f in resolve_paths(paths, (".jsonl",)):
        scratch = DefectReport(source=f.name)
        for _, obj in _iter_jsonl(f, scratch):
            q, task = obj.get("query"), obj.get("task_name")
            if isinstance(q, str) and task is not None:
                names.setdefault(q, set()).add(str(task))
        if scratch.has_defects:
            raise DataError(f"query file {f.name} has unreadable lines\n{scratch.summary()}")
    ambiguous = sum(1 for v in names.values() if len(v) > 1)
    return {q: "|".join(sorted(v)) for q, v in names.items()}, ambiguous


def _finish(
    table: Table,
    report: DefectReport,
    mode: Any,
    pool: Any,
    name: str,
    meta: dict[str, Any],
) -> RoutingData:
    data = finalize(table, report=report, on_defect=mode, pool=pool, name=name, meta=meta)
    if data.costs is not None and not np.isnan(data.costs).any():
        data.meta["cost_source"] = "measured"
    if pool is not None:
        data = fill_costs(data, pool)
    return data


def load_dcrouter(
    paths: str | Path | Sequence[str | Path],
    *,
    queries: str | Path | Sequence[str | Path] | None = None,
    pool: Any = None,
    split: str | None = None,
    on_defect: str = "error",
    name: str = "llmrouter",
) -> RoutingData:
    """Load LLMRouter's dcrouter JSON file(s).

    Args:
        paths: One or more ``[{"question", "scores": {model: score}}]`` files. Query ids are
            ``<file stem>:<position>``; the split comes from the file name (``_train`` /
            ``_test``) unless ``split`` is given.
        queries: LLMRouter query files (``default_query_*.jsonl``) to attach task names,
            matched on the question text (unmatched questions get task ``""``).
        pool: A pool or pool file (``default_llm.json``): models outside it are defects and
            costs are derived from its prices (``input tokens ~ len(question) / 4``, output
            tokens :data:`~llmrouter_core.pool.DEFAULT_OUTPUT_TOKENS`). Without a pool the
            data has no costs.
        split: Split name for every query (overrides the file names).
        on_defect: ``"error"``, ``"drop"`` or ``"keep"``. Questions present in both a train
            and a test file are ``train_test_overlap`` defects (``drop`` removes the train
            copies).
        name: Dataset name.
    """
    mode = check_on_defect(on_defect)
    files = resolve_paths(paths, (".json",))
    pool = as_pool(pool)
    report = DefectReport(source=", ".join(f.name for f in files), on_defect=mode)
    tables = []
    for f in files:
        raw = _load_json(f)
        if not isinstance(raw, list):
            raise DataError(
                f"{f.name}: a dcrouter file is a JSON list of "
                '{"question": ..., "scores": {model: score}}, got ' + type(raw).__name__
            )
        report.n_input_rows += len(raw)
        ids, texts, wheres, score_rows = [], [], [], []
        for i, item in enumerate(raw):
            where = f"{f.name} item {i}"
            qid = f"{f.stem}:{i}"
            q = item.get("question") if isinstance(item, dict) else None
            sc = item.get("scores") if isinstance(item, dict) else None
            if isinstance(q, str) and not q.strip():
                report.add(MALFORMED_ROW, qid, where=where, detail="empty query")
                continue
            if not isinstance(q, str) or not isinstance(sc, dict) or not sc:
                report.add(
                    MALFORMED_ROW,
                    qid,
                    where=where,
                    detail="expected an object with a 'question' text and a 'scores' object",
                )
                continue
            ids.append(qid)
            texts.append(q)
            wheres.append(where)
            score_rows.append(sc)
        models: list[str] = []
        seen: set[str] = set()
        for sc in score_rows:
            for m in sc:
                if m not in seen:
                    seen.add(m)
                    models.append(str(m))
        n, m = len(ids), len(models)
        col = {mm: j for j, mm in enumerate(models)}
        cells = np.full((n, m), None, dtype=object)
        absent = np.ones((n, m), dtype=bool)
        for i, sc in enumerate(score_rows):
            for mm, v in sc.items():
                cells[i, col[str(mm)]] = v
                absent[i, col[str(mm)]] = False
        scores, bad = to_float(cells.reshape(-1))
        scores, bad = scores.reshape(n, m), bad.reshape(n, m)
        check_range(
            scores,
            bad,
            what="score",
            where=[f"{w} ({q})" for w, q in zip(wheres, ids, strict=True)],
            source=f.name,
        )
        file_split = split or split_from_name(f)
        tables.append(
            Table(
                ids=ids,
                queries=texts,
                where=wheres,
                models=models,
                scores=scores,
                absent=absent,
                splits=[file_split] * n if file_split else None,
            )
        )
    table = Table.stack(tables)
    meta: dict[str, Any] = {"format": "dcrouter", "files": [str(f) for f in files]}
    if queries is not None:
        tasks, ambiguous = read_query_tasks(queries)
        table.tasks = [tasks.get(q, "") for q in table.queries]
        unmatched = sum(1 for t in table.tasks if not t)
        if unmatched:
            report.note(f"{unmatched} questions have no entry in the query files (task '')")
        if ambiguous:
            report.note(
                f"{ambiguous} query texts are listed under several tasks (task names joined "
                "with '|')"
            )
    return _finish(table, report, mode, pool, name, meta)


_ROUTING_FIELDS = {
    "model_name": "model",
    "performance": "score",
    "task_name": "task",
    "response_time": "latency_s",
}


def load_llmrouter_routing(
    paths: str | Path | Sequence[str | Path],
    *,
    pool: Any = None,
    on_defect: str = "error",
    name: str = "llmrouter-routing",
) -> RoutingData:
    """Load LLMRouter routing JSONL file(s): one line per (query, model).

    Fields used: ``query``, ``model_name``, ``performance`` (score), ``task_name``,
    ``response``, ``input_tokens``, ``output_tokens``, ``response_time`` (latency),
    ``embedding_id`` (the query id: LLMRouter gives every record of one query the same id)
    and an optional ``cost`` (USD). Without ``embedding_id`` the id is the position of the
    (task, query) pair's first line. The split comes from the file name.

    Args:
        paths: ``.jsonl`` file(s) or a directory of them.
        pool: A pool or pool file (``default_llm.json``): costs are derived from the recorded
            token counts and its prices; models outside it are defects.
        on_defect: ``"error"``, ``"drop"`` or ``"keep"``.
        name: Dataset name.
    """
    import pandas as pd

    mode = check_on_defect(on_defect)
    files = resolve_paths(paths, (".jsonl",))
    pool = as_pool(pool)
    report = DefectReport(source=", ".join(f.name for f in files), on_defect=mode)
    frames = []
    for f in files:
        records, wheres = [], []
        bad_before = len(report.items.get(MALFORMED_ROW, []))
        for lineno, obj in _iter_jsonl(f, report):
            records.append(obj)
            wheres.append(f"{f.name} line {lineno}")
        bad_lines = len(report.items.get(MALFORMED_ROW, [])) - bad_before
        report.n_input_rows += len(records) + bad_lines
        if not records:
            continue
        df = pd.DataFrame.from_records(records).rename(columns=_ROUTING_FIELDS)
        df["where"] = wheres
        if "embedding_id" in df.columns and df["embedding_id"].notna().all():
            df["query_id"] = [_id_text(v) for v in df["embedding_id"]]
        else:
            tasks = df["task"].tolist() if "task" in df.columns else [""] * len(df)
            texts = df["query"].tolist() if "query" in df.columns else [None] * len(df)
            keys = list(zip(tasks, texts, strict=True))
            first: dict[Any, int] = {}
            df["query_id"] = [f"{f.stem}:{first.setdefault(k, len(first))}" for k in keys]
        split = split_from_name(f)
        if split is not None:
            df["split"] = split
        for sensitive in ("api_key_used",):
            if sensitive in df.columns:
                df = df.drop(columns=[sensitive])
        frames.append(df)
    if not frames:
        raise DataError(f"{report.source}: no readable lines" + f"\n{report.summary()}")
    df_all = pd.concat(frames, ignore_index=True)
    if "query" not in df_all.columns or "model" not in df_all.columns or "score" not in df_all:
        need = [
            c
            for c, k in (("query", "query"), ("model_name", "model"), ("performance", "score"))
            if k not in df_all.columns
        ]
        raise DataError(
            f"{report.source}: missing required fields: {', '.join(need)}; LLMRouter routing "
            "data has query, model_name and performance on every line"
        )
    clean, optional = normalize_long(df_all, report, source=report.source)
    table = from_long(clean, report=report, optional=optional)
    errors = (
        sum(1 for r in table.responses.reshape(-1) if isinstance(r, str) and r.startswith("ERROR"))
        if table.responses is not None
        else 0
    )
    if errors:
        report.note(f"{errors} records hold a failed API call (response starting with 'ERROR')")
    meta = {"format": "llmrouter-routing", "files": [str(f) for f in files]}
    return _finish(table, report, mode, pool, name, meta)


def _id_text(value: Any) -> str:
    """An ``embedding_id`` as text: ``3`` and ``3.0`` are ``"3"``; anything else as written."""
    if isinstance(value, (int, float)) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value)


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            with warnings.catch_warnings():  # unknown escapes warn; they are kept
                warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
                parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        return list(parsed) if isinstance(parsed, (list, tuple)) else None
    return None


def load_llmrouter_nq(
    path: str | Path,
    *,
    on_defect: str = "error",
    cost_unit: float = NQ_COST_UNIT,
    pool: Any = None,
    split: str | None = None,
    name: str = "llmrouter-nq",
) -> RoutingData:
    """Load LLMRouter's NQ router data (``router_train_data_nq.json``).

    Args:
        path: The JSON file (a list of per-query objects with aligned per-model lists).
        on_defect: ``"error"``, ``"drop"`` or ``"keep"``.
        cost_unit: USD per unit of ``cost_list`` (default ``1e-6``: the file stores
            tokens x price per 1M tokens).
        pool: Optional pool: models outside it are defects.
        split: Split name for every query (default: from the file name).
        name: Dataset name.
    """
    import pandas as pd

    mode = check_on_defect(on_defect)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file not found: {p}")
    pool = as_pool(pool)
    raw = _load_json(p)
    if not isinstance(raw, list):
        raise DataError(f"{p.name}: expected a JSON list of per-query objects")
    report = DefectReport(source=p.name, on_defect=mode)
    report.n_input_rows = len(raw)
    rows: list[dict[str, Any]] = []
    file_split = split or split_from_name(p)
    for i, item in enumerate(raw):
        where = f"{p.name} item {i}"
        if not isinstance(item, dict):
            report.add(MALFORMED_ROW, f"item {i}", where=where, detail="not an object")
            continue
        qid = str(item.get("q_id", i))
        lists = {k: _as_list(item.get(k)) for k in ("llm_name_list", "perf_list")}
        optional = {k: _as_list(item.get(k)) for k in ("cost_list", "response_list")}
        query = item.get("query")
        names = lists["llm_name_list"]
        sizes = {len(v) for v in [*lists.values(), *optional.values()] if v is not None}
        if isinstance(query, str) and not query.strip():
            report.add(MALFORMED_ROW, qid, where=where, detail="empty query")
            continue
        if not isinstance(query, str) or any(v is None for v in lists.values()) or len(sizes) != 1:
            report.add(
                MALFORMED_ROW,
                qid,
                where=where,
                detail="needs a query and llm_name_list / perf_list (and cost_list / "
                "response_list) lists of one length",
            )
            continue
        assert names is not None
        for j, model in enumerate(names):
            costs = optional["cost_list"]
            responses = optional["response_list"]
            rows.append(
                {
                    "query_id": qid,
                    "query": query,
                    "model": str(model),
                    "score": lists["perf_list"][j],  # type: ignore[index]
                    "cost": None if costs is None else costs[j],
                    "response": None if responses is None else responses[j],
                    "task": str(item.get("source", "") or ""),
                    "split": file_split or "",
                    "where": where,
                }
            )
    if not rows:
        raise DataError(f"{p.name}: no readable items\n{report.summary()}")
    df = pd.DataFrame.from_records(rows)
    if file_split is None:
        df = df.drop(columns=["split"])
    clean, optional_cols = normalize_long(df, report, source=p.name)
    clean["cost"] = clean["cost"] * cost_unit
    table = from_long(clean, report=report, optional=optional_cols)
    table.n_records = None  # one item per query in this format
    meta = {"format": "llmrouter-nq", "files": [str(p)], "cost_unit_usd": cost_unit}
    data = _finish(table, report, mode, pool, name, meta)
    if not math.isclose(cost_unit, NQ_COST_UNIT):
        logger.info("NQ costs scaled by %g USD per cost_list unit", cost_unit)
    return data
