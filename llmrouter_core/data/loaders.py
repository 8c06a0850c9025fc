"""Read any supported routing-data file, detecting its format.

:func:`load_data` is what ``llmrouter train --data FILE`` calls. It recognises:

- the canonical long table (``.csv`` / ``.jsonl`` / ``.parquet`` with ``query_id, query,
  model, score``),
- RouterBench's wide CSV (``sample_id, prompt`` + per-model columns; trusted ``.pkl``),
- LLMRouter's dcrouter JSON (``[{"question", "scores"}]``; a ``default_llm.json`` pool and
  ``default_query_*.jsonl`` files next to it are used for costs and task names), its routing
  JSONL (``model_name, performance``) and its NQ file (``llm_name_list, perf_list``),
- RouteLLM's pair CSVs (``prompt`` + ``True``/``False`` per model; a file or a folder such as
  ``mmlu/responses``) and its MT-Bench folder (``question.jsonl`` + ``judgements.jsonl``).

Anything else raises one :class:`~llmrouter_core.errors.DataError` that lists these formats.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.jsonl"
    >>> _ = p.write_text('{"query_id": "q1", "query": "hi", "model": "m", "score": 1}\\n')
    >>> load_data(p).meta["format"]
    'canonical'
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
from pathlib import Path
from typing import Any

from llmrouter_core.data._assemble import not_utf8
from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError

__all__ = ["detect_format", "load_data"]

logger = logging.getLogger(__name__)

FORMATS_HELP = (
    "supported: a canonical long table (.csv/.jsonl/.parquet with query_id, query, model, "
    "score), a RouterBench wide CSV (sample_id, prompt, one score column per model), an "
    "LLMRouter dcrouter JSON ([{question, scores}]), routing JSONL (model_name, performance) "
    "or NQ JSON (llm_name_list, perf_list), a RouteLLM pair CSV (prompt, one True/False column "
    "per model) or folder of them, or a RouteLLM MT-Bench folder (question.jsonl, "
    "judgements.jsonl)"
)


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open("rb") as fh:
            first = fh.readline().decode("utf-8-sig")
        return [h.strip() for h in next(csv.reader([first]), [])]
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _csv_kind(path: Path) -> str | None:
    header = set(_csv_header(path))
    if {"query_id", "query", "model", "score"} <= header:
        return "canonical"
    if {"sample_id", "prompt"} <= header:
        return "routerbench"
    if "prompt" in header and len(header) > 1:
        return "routellm"
    return None


def _first_json_object(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise DataError(f"{path}:{lineno}: not valid UTF-8") from None
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except (json.JSONDecodeError, RecursionError):
                        continue
                    return obj if isinstance(obj, dict) else None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    return None


def _json_kind(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            raw = fh.read(65536)
        # incremental: a character cut at the end of the chunk is not an error
        head = codecs.getincrementaldecoder("utf-8-sig")().decode(raw, final=False)
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    text = head.lstrip()
    if text.startswith("["):
        if '"llm_name_list"' in head:
            return "llmrouter-nq"
        if '"question"' in head and '"scores"' in head:
            return "dcrouter"
    elif text.startswith("{") and '"input_price"' in head:
        return "pool"
    return None


def detect_format(path: str | Path) -> str:
    """Name the format of ``path``: ``canonical``, ``routerbench``, ``dcrouter``,
    ``llmrouter-routing``, ``llmrouter-nq``, ``routellm`` or ``routellm-mt-bench``.

    Raises:
        DataError: The path does not exist or is not in a supported format.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path not found: {p}")
    kind: str | None = None
    if p.is_dir():
        if (p / "question.jsonl").is_file() and (p / "judgements.jsonl").is_file():
            return "routellm-mt-bench"
        csvs = sorted(p.glob("*.csv"))
        if not csvs and (p / "responses").is_dir():
            csvs = sorted((p / "responses").glob("*.csv"))
        kinds = {_csv_kind(c) for c in csvs}
        if csvs and kinds == {"routerbench"}:
            return "routerbench"
        if csvs and kinds == {"routellm"}:
            return "routellm"
        if any(f.suffix.lower() in (".pkl", ".pickle") for f in p.iterdir()):
            return "routerbench"
        if any(_json_kind(f) == "dcrouter" for f in sorted(p.glob("*.json"))):
            return "dcrouter"
        raise DataError(f"{p}: a folder with no recognisable data files; {FORMATS_HELP}")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        kind = _csv_kind(p)
    elif suffix in (".jsonl", ".ndjson"):
        obj = _first_json_object(p)
        keys = set(obj or {})
        if {"query_id", "model", "score"} <= keys:
            kind = "canonical"
        elif {"model_name", "performance"} <= keys:
            kind = "llmrouter-routing"
        elif {"question_id", "turns"} <= keys:
            kind = "routellm-mt-bench"
        elif {"task_name", "query"} <= keys:
            raise DataError(
                f"{p.name} is an LLMRouter query file (no scores); give it as "
                "load_dcrouter(..., queries=...) to attach task names"
            )
    elif suffix == ".json":
        kind = _json_kind(p)
        if kind == "pool":
            raise DataError(
                f"{p.name} is a model pool file, not routing data; give it as the pool "
                "(--pool FILE, or pool= in Python)"
            )
    elif suffix in (".parquet", ".pq"):
        kind = "canonical"
    elif suffix in (".pkl", ".pickle"):
        kind = "routerbench"
    if kind is None:
        raise DataError(f"{p}: unknown routing-data format; {FORMATS_HELP}")
    return kind


def load_data(
    path: str | Path,
    *,
    on_defect: str = "error",
    pool: Any = None,
    trust_pickle: bool = False,
    **kwargs: Any,
) -> RoutingData:
    """Load a routing-data file or folder of any supported format (see the module doc).

    Args:
        path: File or folder.
        on_defect: ``"error"`` (default), ``"drop"`` or ``"keep"``.
        pool: A pool or pool file (unknown-model check, costs where the data has none).
        trust_pickle: Allow RouterBench ``.pkl`` files (unpickling runs code; trusted files
            only).
        **kwargs: Passed to the format's loader (e.g. ``queries=`` for dcrouter,
            ``exclude_contaminated=`` for RouteLLM).

    Raises:
        DataError: Unknown format, or as the format's loader does.
    """
    from llmrouter_core.data import canonical, llmrouter, routellm, routerbench

    p = Path(path)
    kind = detect_format(p)
    logger.info("reading %s as %s data", p, kind)
    if kind == "canonical":
        return canonical.load_canonical(p, on_defect=on_defect, pool=pool, **kwargs)
    if kind == "routerbench":
        return routerbench.load_routerbench(
            p, on_defect=on_defect, pool=pool, trust_pickle=trust_pickle, **kwargs
        )
    if kind == "dcrouter":
        folder = p if p.is_dir() else p.parent
        files = (
            [f for f in sorted(p.glob("*.json")) if _json_kind(f) == "dcrouter"]
            if p.is_dir()
            else [p]
        )
        if pool is None and (folder / "default_llm.json").is_file():
            pool = folder / "default_llm.json"
            logger.info("using the pool next to the data: %s", pool)
        if "queries" not in kwargs:
            found = sorted(folder.glob("default_query_*.jsonl"))
            if found:
                kwargs["queries"] = found
                logger.info("task names from %s", ", ".join(f.name for f in found))
        return llmrouter.load_dcrouter(files, on_defect=on_defect, pool=pool, **kwargs)
    if kind == "llmrouter-routing":
        return llmrouter.load_llmrouter_routing(p, on_defect=on_defect, pool=pool, **kwargs)
    if kind == "llmrouter-nq":
        return llmrouter.load_llmrouter_nq(p, on_defect=on_defect, pool=pool, **kwargs)
    if kind == "routellm-mt-bench":
        return routellm.load_routellm_mt_bench(p, on_defect=on_defect, pool=pool, **kwargs)
    target = p / "responses" if p.is_dir() and not list(p.glob("*.csv")) else p
    return routellm.load_routellm_csv(target, on_defect=on_defect, pool=pool, **kwargs)
