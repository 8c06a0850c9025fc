"""RouteLLM's evaluation data (lm-sys/RouteLLM, ``routellm/evals``).

Strong / weak pair outcomes of ``gpt-4-1106-preview`` and
``mistralai/Mixtral-8x7B-Instruct-v0.1``:

- **MMLU** ``mmlu/responses/mmlu_<subject>.csv``: ``prompt`` and one ``True``/``False``
  column per model (score 1 / 0). Query ids ``mmlu_<subject>:<row>``, task ``mmlu_<subject>``.
- **GSM8K** ``gsm8k/gsm8k_responses.csv``: the same plus ``<model>_response`` columns.
- **MT-Bench** ``mt_bench/question.jsonl`` (``question_id, category, turns``) and
  ``judgements.jsonl`` (``question_id, model, judge, score, turn, ...``): GPT-4 judge scores
  1-10. A model's score on a question is the mean of its judgement lines for that question
  (one per turn in RouteLLM's file: ``single-v1`` for turn 1 and ``single-v1-multi-turn`` for
  turn 2, the ``-math-`` variants for reference-guided categories) divided by 10, so it lies
  in [0.1, 1]. This is the average RouteLLM itself reports. A judge score of ``-1`` (FastChat's
  mark for an unparsable judgement) is a malformed row. The query text is the first turn,
  which is what RouteLLM routes on.

Next to GSM8K (and MMLU / MT-Bench, when present) RouteLLM ships
``contaminated_prompts.jsonl``: prompts that also occur in its routers' training data.
RouteLLM excludes them from its evaluation; so do these loaders by default
(``exclude_contaminated=True``), logging the count and recording it in
``meta["excluded_contaminated"]``.

The files record no costs: pass a ``pool`` (e.g. :func:`routellm_pool`, prices from LiteLLM's
bundled table) to derive them from token estimates.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "mmlu_toy.csv"
    >>> _ = p.write_text("prompt,weak,strong\\n2+2?,True,True\\n17*23?,False,True\\n")
    >>> load_routellm_csv(p).scores.tolist()
    [[1.0, 1.0], [0.0, 1.0]]
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
    to_float,
)
from llmrouter_core.data.canonical import _iter_jsonl, as_pool
from llmrouter_core.data.core import RoutingData
from llmrouter_core.data.defects import DUPLICATE_ID, MALFORMED_ROW, DefectReport, check_on_defect
from llmrouter_core.data.routerbench import resolve_paths
from llmrouter_core.errors import DataError

__all__ = [
    "ROUTELLM_LITELLM_MODELS",
    "ROUTELLM_STRONG",
    "ROUTELLM_WEAK",
    "load_routellm_csv",
    "load_routellm_mt_bench",
    "routellm_pool",
]

logger = logging.getLogger(__name__)

ROUTELLM_STRONG = "gpt-4-1106-preview"
ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
#: LiteLLM ids used for prices: RouteLLM's own examples serve Mixtral through Anyscale.
ROUTELLM_LITELLM_MODELS = {
    ROUTELLM_STRONG: "gpt-4-1106-preview",
    ROUTELLM_WEAK: "anyscale/mistralai/Mixtral-8x7B-Instruct-v0.1",
}
CONTAMINATED_FILE = "contaminated_prompts.jsonl"


def routellm_pool() -> Any:
    """The RouteLLM pair as a pool, prices from LiteLLM's bundled (offline) price table."""
    from llmrouter_core.pool import ModelSpec, Pool

    pool = Pool(ModelSpec(name, litellm_model=lid) for name, lid in ROUTELLM_LITELLM_MODELS.items())
    return pool.with_litellm_prices()


def _contaminated(path: Path) -> set[str] | None:
    """Prompts listed in the nearest ``contaminated_prompts.jsonl`` (same or parent folder)."""
    for folder in (path.parent, path.parent.parent):
        f = folder / CONTAMINATED_FILE
        if f.is_file():
            scratch = DefectReport(source=f.name)
            prompts = {
                str(o["eval_prompt"]) for _, o in _iter_jsonl(f, scratch) if "eval_prompt" in o
            }
            return prompts
    return None


def _csv_table(
    path: Path, report: DefectReport, exclude_contaminated: bool, excluded: dict[str, int]
) -> Table:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot parse CSV file {path}: {exc}") from exc
    cols = [str(c) for c in df.columns]
    if "prompt" not in cols:
        raise DataError(
            f"{path.name}: not a RouteLLM outcome file: no 'prompt' column (found: "
            f"{', '.join(cols)}); expected prompt and one True/False column per model"
        )
    candidates = [c for c in cols if c != "prompt" and c and not c.startswith("Unnamed:")]
    models = [
        c for c in candidates if not (c.endswith("_response") and c[: -len("_response")] in cols)
    ]
    if not models:
        raise DataError(f"{path.name}: no model columns next to 'prompt'")
    n = len(df)
    report.n_input_rows += n
    stem = path.stem
    task = stem[: -len("_responses")] if stem.endswith("_responses") else stem
    ids = [f"{task}:{i}" for i in range(n)]
    where = [f"{path.name} row {i}" for i in range(1, n + 1)]
    prompts = df["prompt"].tolist()
    ok = np.array([bool(p.strip()) for p in prompts], dtype=bool)
    for i in np.flatnonzero(~ok):
        report.add(MALFORMED_ROW, ids[i], where=where[i], detail="empty query")
    if exclude_contaminated:
        dirty = _contaminated(path)
        if dirty:
            hit = np.array([p in dirty for p in prompts], dtype=bool) & ok
            if hit.any():
                excluded[path.name] = int(hit.sum())
                ok &= ~hit
    scores = np.full((n, len(models)), np.nan)
    bad = np.zeros((n, len(models)), dtype=bool)
    for j, m in enumerate(models):
        scores[:, j], bad[:, j] = to_float(df[m])
    labels = [f"{w} ({i})" for w, i in zip(where, ids, strict=True)]
    rows = np.flatnonzero(ok).astype(np.intp)
    check_range(
        scores[rows], bad[rows], what="score", where=[labels[i] for i in rows], source=path.name
    )
    responses = None
    if any(f"{m}_response" in cols for m in models):
        responses = np.full((n, len(models)), None, dtype=object)
        for j, m in enumerate(models):
            if f"{m}_response" in cols:
                responses[:, j] = [v if v != "" else None for v in df[f"{m}_response"].tolist()]
    return Table(
        ids=ids,
        queries=[str(p) for p in prompts],
        where=where,
        models=models,
        scores=scores,
        responses=responses,
        tasks=[task] * n,
    ).take(rows)


def _finish(
    table: Table,
    report: DefectReport,
    mode: Any,
    pool: Any,
    name: str,
    meta: dict[str, Any],
    excluded: dict[str, int],
) -> RoutingData:
    if excluded:
        total = sum(excluded.values())
        report.note(
            f"{total} contaminated prompts excluded as RouteLLM does ("
            + ", ".join(f"{k}: {v}" for k, v in excluded.items())
            + ")"
        )
        logger.info("excluded %d contaminated prompts (%s)", total, excluded)
    meta["excluded_contaminated"] = sum(excluded.values())
    data = finalize(table, report=report, on_defect=mode, pool=pool, name=name, meta=meta)
    if pool is not None:
        data = fill_costs(data, pool)
    return data


def load_routellm_csv(
    paths: str | Path | Sequence[str | Path],
    *,
    pool: Any = None,
    on_defect: str = "error",
    exclude_contaminated: bool = True,
    name: str | None = None,
) -> RoutingData:
    """Load RouteLLM outcome CSVs (MMLU subject files, GSM8K responses).

    Args:
        paths: A CSV file, a directory of them (e.g. ``mmlu/responses``), or a list.
        pool: A pool or pool file: derives costs from its prices (e.g. :func:`routellm_pool`);
            models outside it are defects.
        on_defect: ``"error"``, ``"drop"`` or ``"keep"``.
        exclude_contaminated: Drop the prompts of a ``contaminated_prompts.jsonl`` found in the
            file's folder or its parent, as RouteLLM's evaluation does.
        name: Dataset name (default: ``routellm-<task>`` of the first file).
    """
    mode = check_on_defect(on_defect)
    files = resolve_paths(paths, (".csv",))
    pool = as_pool(pool)
    report = DefectReport(
        source=", ".join(f.name for f in files[:3])
        + (f" and {len(files) - 3} more" if len(files) > 3 else ""),
        on_defect=mode,
    )
    excluded: dict[str, int] = {}
    table = Table.stack([_csv_table(f, report, exclude_contaminated, excluded) for f in files])
    if name is None:
        first = files[0].stem
        name = "routellm-mmlu" if first.startswith("mmlu") else f"routellm-{first.split('_')[0]}"
    meta = {"format": "routellm-csv", "files": [str(f) for f in files]}
    return _finish(table, report, mode, pool, name, meta, excluded)


def load_routellm_mt_bench(
    path: str | Path,
    *,
    judgements: str | Path | None = None,
    pool: Any = None,
    on_defect: str = "error",
    exclude_contaminated: bool = True,
    name: str = "routellm-mt-bench",
) -> RoutingData:
    """Load RouteLLM's MT-Bench questions and GPT-4 judgements.

    Score = mean of the question's judgement lines for the model (1-10) / 10; see the module
    docstring.

    Args:
        path: The ``mt_bench`` folder (holding ``question.jsonl`` and ``judgements.jsonl``) or
            the question file.
        judgements: The judgement file (default: ``judgements.jsonl`` next to the questions).
        pool: A pool or pool file to derive costs from; models outside it are defects.
        on_defect: ``"error"``, ``"drop"`` or ``"keep"``.
        exclude_contaminated: Drop questions whose first or second turn is listed in a
            ``contaminated_prompts.jsonl`` next to the questions, as RouteLLM does.
        name: Dataset name.
    """
    mode = check_on_defect(on_defect)
    p = Path(path)
    qfile = p / "question.jsonl" if p.is_dir() else p
    jfile = Path(judgements) if judgements is not None else qfile.parent / "judgements.jsonl"
    for f in (qfile, jfile):
        if not f.is_file():
            raise DataError(f"MT-Bench file not found: {f}")
    pool = as_pool(pool)
    report = DefectReport(source=f"{qfile.name}, {jfile.name}", on_defect=mode)
    dirty = _contaminated(qfile) if exclude_contaminated else None
    excluded: dict[str, int] = {}
    excluded_ids: set[str] = set()
    qids: list[str] = []
    texts: list[str] = []
    tasks: list[str] = []
    wheres: list[str] = []
    index: dict[str, int] = {}
    for lineno, obj in _iter_jsonl(qfile, report):
        report.n_input_rows += 1
        where = f"{qfile.name} line {lineno}"
        turns = obj.get("turns")
        if (
            "question_id" not in obj
            or not isinstance(turns, list)
            or not turns
            or not all(isinstance(t, str) for t in turns)
        ):
            report.add(
                MALFORMED_ROW,
                f"line {lineno}",
                where=where,
                detail="needs question_id and a list of turns",
            )
            continue
        qid = f"mt_bench:{obj['question_id']}"
        if not turns[0].strip():
            report.add(MALFORMED_ROW, qid, where=where, detail="empty query (first turn)")
            excluded_ids.add(qid)  # its judgements are not defects of their own
            continue
        if dirty and any(t in dirty for t in turns[:2]):
            excluded[qfile.name] = excluded.get(qfile.name, 0) + 1
            excluded_ids.add(qid)
            continue
        if qid in index:
            report.add(
                DUPLICATE_ID,
                qid,
                where=f"{wheres[index[qid]]}; {where}",
                detail="question listed twice; kept the first",
            )
            continue
        index[qid] = len(qids)
        qids.append(qid)
        texts.append(turns[0])
        tasks.append(str(obj.get("category", "")))
        wheres.append(where)
    sums: dict[tuple[int, str], list[float]] = {}
    models: list[str] = []
    raw_scores: list[Any] = []
    raw_keys: list[tuple[int, str]] = []
    raw_where: list[str] = []
    for lineno, obj in _iter_jsonl(jfile, report):
        report.n_input_rows += 1
        where = f"{jfile.name} line {lineno}"
        model = obj.get("model")
        qkey = f"mt_bench:{obj.get('question_id')}"
        if not isinstance(model, str) or not model or "score" not in obj:
            report.add(
                MALFORMED_ROW,
                f"line {lineno}",
                where=where,
                detail="needs question_id, model and score",
            )
            continue
        if qkey not in index:
            if qkey not in excluded_ids:
                report.add(
                    MALFORMED_ROW,
                    f"line {lineno}",
                    where=where,
                    detail=f"judgement for unknown question {qkey}",
                )
            continue
        if obj["score"] == -1:
            report.add(
                MALFORMED_ROW, f"line {lineno}", where=where, detail="the judge gave no score (-1)"
            )
            continue
        raw_scores.append(obj["score"])
        raw_keys.append((index[qkey], model))
        raw_where.append(where)
        if model not in models:
            models.append(model)
    values, bad = to_float(raw_scores)
    check_range(
        values, bad, what="judge score", where=raw_where, low=1.0, high=10.0, source=jfile.name
    )
    for (i, model), v in zip(raw_keys, values, strict=True):
        if not np.isnan(v):
            sums.setdefault((i, model), []).append(float(v))
    n, m = len(qids), len(models)
    if n == 0 or m == 0:
        raise DataError(f"{report.source}: no usable questions or judgements\n{report.summary()}")
    scores = np.full((n, m), np.nan)
    absent = np.ones((n, m), dtype=bool)
    for (i, model), vals in sums.items():
        j = models.index(model)
        scores[i, j] = float(np.mean(vals)) / 10.0
        absent[i, j] = False
    table = Table(
        ids=qids,
        queries=texts,
        where=wheres,
        models=models,
        scores=scores,
        absent=absent,
        tasks=tasks,
    )
    meta = {"format": "routellm-mt-bench", "files": [str(qfile), str(jfile)]}
    return _finish(table, report, mode, pool, name, meta, excluded)
