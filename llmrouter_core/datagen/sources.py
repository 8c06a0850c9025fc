"""Where a task's examples come from: the publisher's dataset on the hub, LLMRouter's query
files, or your own JSONL.

* :func:`load_hub` reads the publisher's dataset with ``datasets`` (the ``datagen`` extra;
  needs the network the first time). Each built-in task has a :class:`HubSpec`: the dataset,
  its configuration, the evaluation split it reads (MMLU's ``test``, never
  ``auxiliary_train``) and the adapter that turns a record into an :class:`Example`. The
  routing split of a hub example (``train`` / ``test``) is drawn from a hash of its id, one
  in five to ``test``, so it never changes between runs or machines.
* :func:`load_llmrouter_queries` reads LLMRouter's query files
  (``default_query_{train,test}.jsonl``: ``task_name, query, ground_truth, metric, choices,
  task_id``); their ``choices`` are Python literals (read with ``ast.literal_eval``, never
  evaluated).
* :func:`load_jsonl` reads your file: one example per line, ``{"id", "question", "gold",
  "choices", "tests", "meta", "split", "images"}`` (``choices``: a list of texts, lettered
  A, B, ..., or ``{"label": [...], "text": [...]}``; ``images``: URLs); a file in
  LLMRouter's format is recognised by its ``task_name`` field.

Relative paths resolve against the current directory.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from llmrouter_core.datagen.base import Example, HubSpec
from llmrouter_core.datagen.hub import (
    _choices_of,
    _entry_point,
    _need,
    _text_id,
    load_hub,
    routing_split,
)
from llmrouter_core.datagen.tasks import Task
from llmrouter_core.errors import DataError

__all__ = [
    "HubSpec",
    "llmrouter_query_files",
    "load_examples",
    "load_hub",
    "load_jsonl",
    "load_llmrouter_queries",
    "routing_split",
]

# -- local files -------------------------------------------------------------------------


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise DataError(f"{path}:{lineno}: not valid UTF-8") from None
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: bad JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def _from_llmrouter(obj: Mapping[str, Any], task: Task, where: str) -> Example:
    query = str(_need(obj, "query", task.name))
    truth = obj.get("ground_truth")
    if truth is None:
        raise DataError(f"{where}: no ground_truth")
    raw_id = obj.get("task_id")
    qid = str(raw_id) if raw_id not in (None, "") else _text_id(task.name, query)
    qid = qid.replace("HumanEval/", "")
    name = task.name
    if task.template.__name__ == "mc_template":
        choices = _choices_of(obj.get("choices"), where)
        gold = str(truth).strip().upper()
        if gold not in {label for label, _ in choices}:
            raise DataError(f"{where}: answer {gold!r} is not one of the options")
        return Example(qid, name, query, gold, choices)
    if name == "mbpp":
        tests = tuple(str(t) for t in _choices_of_list(truth, where))
        return Example(qid, name, query, list(tests), tests=tests)
    if name == "human_eval":
        return Example(qid, name, query, str(truth),
                       meta={"entry_point": _entry_point(query, where)})  # fmt: skip
    if name == "commongen":
        return Example(qid, name, query, [c.strip() for c in str(truth).split(",") if c.strip()])
    return Example(qid, name, query, str(truth))


def _choices_of_list(raw: Any, where: str) -> list[Any]:
    if isinstance(raw, list):
        return raw
    try:
        value = ast.literal_eval(str(raw))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise DataError(f"{where}: cannot read the test list") from None
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: expected a non-empty list of tests")
    return value


def llmrouter_query_files(directory: str | Path | None = None) -> dict[str, Path]:
    """``{"train": path, "test": path}`` of LLMRouter's query files in ``directory``
    (default: ``$LLMROUTER_DATA_DIR/llmrouter``)."""
    if directory is None:
        base = os.environ.get("LLMROUTER_DATA_DIR")
        if not base:
            raise DataError("set LLMROUTER_DATA_DIR or give the directory of the query files")
        directory = Path(base) / "llmrouter"
    directory = Path(directory).expanduser().resolve()
    found = {s: directory / f"default_query_{s}.jsonl" for s in ("train", "test")}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise DataError(f"LLMRouter query files not found: {', '.join(missing)}")
    return found


def load_llmrouter_queries(
    task: Task, path: str | Path, *, split: str
) -> Iterator[tuple[str, Example]]:
    """The examples of ``task`` in one LLMRouter query file (rows of other tasks skipped)."""
    name = task.local_name or task.name
    for lineno, obj in _read_jsonl(Path(path)):
        if obj.get("task_name") == name:
            yield split, _from_llmrouter(obj, task, f"{Path(path).name}:{lineno}")


def load_jsonl(task: Task, path: str | Path) -> Iterator[tuple[str, Example]]:
    """Examples of ``task`` from a JSONL file (the generic format, or LLMRouter's)."""
    path = Path(path)
    for lineno, obj in _read_jsonl(path):
        where = f"{path.name}:{lineno}"
        if "task_name" in obj:
            if obj["task_name"] == (task.local_name or task.name):
                yield str(obj.get("split") or "train"), _from_llmrouter(obj, task, where)
            continue
        question = str(_need(obj, "question", task.name))
        qid = str(obj.get("id") or _text_id(task.name, question))
        raw_choices = obj.get("choices")
        choices = _choices_of(raw_choices, where) if raw_choices else ()
        tests = tuple(str(t) for t in obj.get("tests") or ())
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError(f"{where}: 'meta' must be an object")
        if "gold" not in obj:
            raise DataError(f"{where}: no 'gold' answer")
        images = obj.get("images") or []
        if not isinstance(images, list) or not all(isinstance(u, str) for u in images):
            raise DataError(f"{where}: 'images' must be a list of URLs")
        ex = Example(qid, task.name, question, obj["gold"], choices, tests, meta, tuple(images))
        yield str(obj.get("split") or routing_split(ex.query_id)), ex


def load_examples(
    task: Task,
    *,
    source: str | Path = "auto",
    splits: Iterable[str] = ("train",),
    limit: int | None = None,
) -> list[tuple[str, Example]]:
    """The first ``limit`` examples of each of ``splits`` for ``task``, deduplicated by id.

    ``source``: ``"llmrouter"`` (LLMRouter's query files under ``$LLMROUTER_DATA_DIR``),
    ``"hub"``, a JSONL file, or ``"auto"`` (LLMRouter's files when they hold the task,
    else the hub).
    """
    wanted = list(splits)
    rows: Iterable[tuple[str, Example]]
    if source == "auto":
        try:
            files = llmrouter_query_files()
            has = any(True for _ in load_llmrouter_queries(task, files["test"], split="test"))
        except DataError:
            has = False
        source = "llmrouter" if has else "hub"
    if source == "llmrouter":
        files = llmrouter_query_files()
        rows = (
            row
            for s in wanted
            if s in files
            for row in load_llmrouter_queries(task, files[s], split=s)
        )
        unknown = [s for s in wanted if s not in files]
        if unknown:
            raise DataError(f"LLMRouter's query files have splits train and test, not {unknown}")
    elif source == "hub":
        rows = load_hub(task)
    else:
        rows = load_jsonl(task, source)
    out: list[tuple[str, Example]] = []
    seen: set[str] = set()
    per_split: dict[str, int] = {}
    for split, ex in rows:
        if split not in wanted or ex.id in seen:
            continue
        if limit is not None and per_split.get(split, 0) >= limit:
            if all(per_split.get(s, 0) >= limit for s in wanted):
                break
            continue
        seen.add(ex.id)
        per_split[split] = per_split.get(split, 0) + 1
        out.append((split, ex))
    return out
