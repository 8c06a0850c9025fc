"""Run every pool model on every query of some tasks, score the answers, keep everything.

:func:`generate` asks each model each example's prompt through the
:class:`~llmrouter_core.execution.Executor` (keys, retries on transient errors, no
fallback: the named model answers or the row records its error), at temperature 0 unless
told otherwise, scores the answer with the task's metric (code only in a
:class:`~llmrouter_core.datagen.sandbox.Sandbox`) and appends the row to a SQLite store in
the output directory at once. A crash or ``kill -9`` loses at most the calls in flight;
``resume=True`` skips every call already answered (and retries the ones that failed).

A cost ceiling (``max_cost``, USD) is the executor's budget: a call whose cost bound would
cross it is not made, and the run stops there. At the end (or when stopped),
:func:`export` writes ``routing.parquet`` (the canonical long table: ``query_id, query,
model, score, cost, input_tokens, output_tokens, latency_s, task, split, response``, plus
``error``) and ``manifest.json`` (tasks, pool and prices, counts, errors, mean scores,
the sandbox's isolation).

``shard=(i, n)`` takes the examples whose id hashes to ``i`` modulo ``n``, so ``n``
machines share the work; :func:`merge` joins their stores.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrouter_core.datagen.sandbox import Sandbox
from llmrouter_core.datagen.sources import load_examples
from llmrouter_core.datagen.tasks import Example, Task, get_task
from llmrouter_core.errors import DataError
from llmrouter_core.pool import Pool

__all__ = [
    "MANIFEST",
    "ROUTING_FILE",
    "STORE",
    "DatagenResult",
    "export",
    "generate",
    "merge",
    "parse_shard",
    "rescore",
]

logger = logging.getLogger(__name__)

STORE = "calls.sqlite"
ROUTING_FILE = "routing.parquet"
MANIFEST = "manifest.json"
#: Settings a resumed run must share with the run it continues.
_SAME_ON_RESUME = (
    "tasks", "pool", "splits", "limit", "source", "shard", "temperature", "describe_with",
)  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    query_id TEXT NOT NULL,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    split TEXT NOT NULL,
    query TEXT NOT NULL,
    response TEXT,
    score REAL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost REAL,
    latency_s REAL,
    error TEXT,
    detail TEXT,
    PRIMARY KEY (query_id, model)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS descriptions (query_id TEXT PRIMARY KEY, text TEXT NOT NULL);
"""
_COLUMNS = (
    "query_id",
    "model",
    "task",
    "split",
    "query",
    "response",
    "score",
    "input_tokens",
    "output_tokens",
    "cost",
    "latency_s",
    "error",
    "detail",
)


@dataclass(frozen=True)
class DatagenResult:
    """What a run did.

    Attributes:
        out: The output directory.
        calls: Calls made by this run (answered or failed).
        skipped: Calls skipped because the store had them already (``resume``).
        errors: Calls of this run that failed (their rows record the error).
        cost: USD spent by this run.
        stopped: Why the run stopped early (``"max_cost"``, ``"interrupted"``), or ``None``.
        routing_file: ``routing.parquet``.
        manifest: The manifest written.
    """

    out: Path
    calls: int
    skipped: int
    errors: int
    cost: float
    stopped: str | None
    routing_file: Path
    manifest: dict[str, Any] = field(repr=False)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``None`` -> ``(0, 1)``."""
    if text is None:
        return (0, 1)
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise DataError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise DataError(f"--shard {text}: need 0 <= i < N")
    return (i, n)


def _in_shard(query_id: str, shard: tuple[int, int]) -> bool:
    i, n = shard
    return n == 1 or int(hashlib.sha256(query_id.encode()).hexdigest(), 16) % n == i


class _Store:
    """The SQLite store: one row per (query, model), written as each call finishes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def meta(self) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def set_meta(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()],
            )

    def done(self) -> set[tuple[str, str]]:
        """(query_id, model) of every answered call (failed calls are not done)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT query_id, model FROM calls WHERE error IS NULL"
            ).fetchall()
        return {(q, m) for q, m in rows}

    def put(self, row: dict[str, Any], *, keep_answered: bool = False) -> None:
        verb = "INSERT OR IGNORE" if keep_answered else "INSERT OR REPLACE"
        values = [row.get(c) for c in _COLUMNS]
        with self._lock:
            self._db.execute(
                f"{verb} INTO calls ({', '.join(_COLUMNS)}) VALUES "
                f"({', '.join('?' for _ in _COLUMNS)})",
                values,
            )

    def description(self, query_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text FROM descriptions WHERE query_id = ?", (query_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_description(self, query_id: str, text: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO descriptions VALUES (?, ?)", (query_id, text))

    def set_score(self, query_id: str, model: str, score: float, detail: str | None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE calls SET score = ?, detail = ? WHERE query_id = ? AND model = ?",
                (score, detail, query_id, model),
            )

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM calls ORDER BY task, split, query_id, model"
            )
            return [dict(zip(_COLUMNS, r)) for r in cur.fetchall()]


@contextlib.contextmanager
def _open_store(path: Path) -> Iterator[_Store]:
    store = _Store(path)
    try:
        yield store
    finally:
        store.close()


class _RateLimiter:
    """At most ``rpm`` calls per minute per model (spaced evenly)."""

    def __init__(self, rpm: float | None) -> None:
        self.interval = 0.0 if not rpm else 60.0 / float(rpm)
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, model: str) -> None:
        if self.interval <= 0:
            return
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next.get(model, now))
            self._next[model] = at + self.interval
        time.sleep(max(0.0, at - now))


def _pool_info(pool: Pool) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "litellm_model": s.litellm_model,
            "input_price": s.input_price,
            "output_price": s.output_price,
        }
        for s in pool
    ]


def _config(
    tasks: Sequence[Task],
    pool: Pool,
    splits: Sequence[str],
    limit: int | None,
    source: str,
    shard: tuple[int, int],
    temperature: float,
    describe_with: str | None = None,
) -> dict[str, Any]:
    return {
        "describe_with": describe_with,
        "tasks": [t.name for t in tasks],
        "pool": _pool_info(pool),
        "splits": list(splits),
        "limit": limit,
        "source": source,
        "shard": list(shard),
        "temperature": temperature,
    }


def _check_resume(old: dict[str, Any], new: dict[str, Any], out: Path) -> None:
    diff = [k for k in _SAME_ON_RESUME if k in old and old[k] != new[k]]
    if diff:
        raise DataError(
            f"{out} holds a run with other settings ({', '.join(diff)}); resume it with the "
            "same settings or write to another --out"
        )


def _work(
    tasks: Sequence[Task],
    pool: Pool,
    splits: Sequence[str],
    limit: int | None,
    source: str,
    shard: tuple[int, int],
) -> list[tuple[Task, str, Example, str, str]]:
    """Every (task, split, example, prompt, model) of the run, prompts rendered up front so
    a bad example fails before any call."""
    items: list[tuple[Task, str, Example, str, str]] = []
    for task in tasks:
        for split, ex in load_examples(task, source=source, splits=splits, limit=limit):
            if not _in_shard(ex.query_id, shard):
                continue
            prompt = task.prompt(ex)
            items.extend((task, split, ex, prompt, m) for m in pool.names)
    return items


def generate(
    tasks: Sequence[str | Task],
    pool: Pool,
    out: str | Path,
    *,
    splits: Sequence[str] = ("train",),
    limit: int | None = None,
    source: str | Path = "auto",
    concurrency: int = 1,
    max_cost: float | None = None,
    resume: bool = False,
    shard: tuple[int, int] = (0, 1),
    temperature: float = 0.0,
    max_tokens: int | None = None,
    rpm: float | None = None,
    timeout: float = 120.0,
    max_retries: int = 2,
    sandbox: Sandbox | None = None,
    describe_with: str | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> DatagenResult:
    """Generate routing data; see the module docstring.

    Args:
        tasks: Task names (or :class:`Task` objects).
        pool: The models to run.
        out: Output directory (created).
        splits: Routing splits to draw (``train``, ``test``).
        limit: Examples per task and split.
        source: ``"auto"``, ``"llmrouter"``, ``"hub"`` or a JSONL file.
        concurrency: Calls in flight at once.
        max_cost: USD this run may spend; the run stops before a call would cross it.
        resume: Continue the run stored in ``out`` (skipping answered calls).
        shard: ``(i, n)``: this machine's share of the examples.
        temperature: Sampling temperature.
        max_tokens: Output tokens per answer (default: each task's).
        rpm: Calls per minute per model (``None``: no limit).
        timeout: Seconds per call.
        max_retries: Retries of a call on transient errors.
        sandbox: Where code answers run (default: the strongest this machine has).
        describe_with: A vision model of the pool that describes each example's images
            first; models without vision then answer the prompt with that description (and
            the table's query carries it, so text-only routers can route it). Without it,
            only vision models answer questions with images (the others' rows record why).
        progress: Show a progress bar (stderr).
        on_row: Called with each stored row (after it is stored).

    Raises:
        DataError: Unknown task, unreadable source, bad example, ``out`` holding a run
            with other settings (or any run, without ``resume``).
    """
    from llmrouter_core.execution import (
        AllModelsFailedError,
        Budget,
        BudgetExceededError,
        ExecutionError,
        Executor,
        PoolOrderRouter,
    )

    task_objs = [get_task(t) for t in tasks]
    if not task_objs:
        raise DataError("name at least one task")
    if len(pool) == 0:
        raise DataError("the pool is empty")
    if concurrency < 1:
        raise DataError("concurrency must be at least 1")
    if max_cost is not None and not (math.isfinite(max_cost) and max_cost >= 0):
        raise DataError(f"max_cost must be a non-negative number of USD, got {max_cost}")
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if describe_with is not None and describe_with not in pool.names:
        raise DataError(f"describe_with names {describe_with!r}, which is not in the pool")
    config = _config(
        task_objs, pool, splits, limit, str(source), shard, temperature, describe_with
    )
    items = _work(task_objs, pool, splits, limit, str(source), shard)
    if any(t.needs_sandbox for t in task_objs) and sandbox is None:
        sandbox = Sandbox()
    with _open_store(out / STORE) as store:
        old = store.meta().get("config")
        if old is not None and not resume:
            raise DataError(f"{out} holds a run already; give --resume or another --out")
        if old is not None:
            _check_resume(old, config, out)
        store.set_meta({"config": config})
        done = store.done() if resume else set()
        todo = [it for it in items if (it[2].query_id, it[4]) not in done]
        skipped = len(items) - len(todo)
        executor = Executor(
            PoolOrderRouter(pool),
            pool=pool,
            fallback=False,
            budget=Budget(max_cost, name="--max-cost") if max_cost is not None else None,
            max_retries=max_retries,
            timeout=timeout,
            admission_timeout=0.0,
        )
        limiter = _RateLimiter(rpm)
        stop = threading.Event()
        stats = {"calls": 0, "errors": 0, "cost": 0.0}
        stats_lock = threading.Lock()
        stopped: str | None = None

        describe_lock = threading.Lock()

        def describe(ex: Example) -> str | None:
            """The example's image description (asked once, stored for resume)."""
            if describe_with is None or not ex.images:
                return None
            with describe_lock:
                known = store.description(ex.query_id)
                if known is None:
                    limiter.wait(describe_with)
                    result = executor.complete(
                        _image_messages(DESCRIBE_PROMPT, ex.images),
                        model=describe_with,
                        temperature=temperature,
                        max_tokens=256,
                    )
                    known = result.answer.strip()
                    store.set_description(ex.query_id, known)
                    with stats_lock:
                        stats["cost"] += result.cost
            return known

        def one(item: tuple[Task, str, Example, str, str]) -> dict[str, Any] | None:
            task, split, ex, prompt, model = item
            if stop.is_set():
                return None
            row: dict[str, Any] = {
                "query_id": ex.query_id,
                "model": model,
                "task": task.name,
                "split": split,
                "query": prompt,
            }
            try:
                messages, row["query"] = _request(
                    prompt, ex, executor.supports(model, "vision"), describe
                )
            except BudgetExceededError:
                stop.set()
                return None
            except ExecutionError as exc:
                messages = None
                row["error"] = f"describing the images failed: {exc}"[:2000]
            if messages is None:
                row.setdefault("error", f"{model} has no vision and the images are not described")
                store.put(row)
                with stats_lock:
                    stats["calls"] += 1
                    stats["errors"] += 1
                return row
            limiter.wait(model)
            try:
                result = executor.complete(
                    messages,
                    model=model,
                    temperature=temperature,
                    max_tokens=max_tokens or task.max_tokens,
                )
            except BudgetExceededError:
                stop.set()
                return None
            except (AllModelsFailedError, ExecutionError) as exc:
                attempts = getattr(exc, "attempts", ()) or ()
                row.update(
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                    cost=sum(a.cost for a in attempts),
                )
            else:
                row.update(
                    response=result.answer,
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    cost=result.cost,
                    latency_s=result.latency_s,
                )
                row["score"], detail = _score(task, result.answer, ex, sandbox)
                row["detail"] = json.dumps(detail) if detail else None
            store.put(row)
            with stats_lock:
                stats["calls"] += 1
                stats["errors"] += row.get("error") is not None
                stats["cost"] += float(row.get("cost") or 0.0)
            if on_row is not None:
                on_row(row)
            return row

        with _progress(progress, len(todo)) as advance:
            try:
                _run_bounded(todo, one, concurrency, stop, advance)
            except KeyboardInterrupt:
                stop.set()
                stopped = "interrupted"
        if stopped is None and stop.is_set():
            stopped = "max_cost"
            logger.warning("stopped: the next call could cross --max-cost %s USD", max_cost)
        manifest = export(out, stopped=stopped, sandbox=sandbox)
    return DatagenResult(
        out=out,
        calls=int(stats["calls"]),
        skipped=skipped,
        errors=int(stats["errors"]),
        cost=float(stats["cost"]),
        stopped=stopped,
        routing_file=out / ROUTING_FILE,
        manifest=manifest,
    )


#: What the describing model is asked about each example's images.
DESCRIBE_PROMPT = (
    "Describe the image(s) in detail: every object, text, number, label and relation a "
    "question about them could need."
)


def _image_messages(text: str, images: Sequence[str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return [{"role": "user", "content": parts}]


def _request(
    prompt: str,
    ex: Example,
    vision: bool,
    describe: Callable[[Example], str | None],
) -> tuple[Any, str]:
    """``(messages or None, the table's query)`` for one model: the prompt; with images, the
    prompt and the images as content parts for a vision model, the prompt and the images'
    description for another (``None`` when there is no description)."""
    if not ex.images:
        return prompt, prompt
    description = describe(ex)
    described = prompt if description is None else f"{prompt}\n\nImage: {description}"
    if vision:
        return _image_messages(prompt, ex.images), described
    if description is None:
        return None, described
    return described, described


def _score(
    task: Task, answer: str, ex: Example, sandbox: Sandbox | None
) -> tuple[float, dict[str, Any] | None]:
    if task.program is not None:
        from llmrouter_core.datagen.metrics import code_pass

        assert sandbox is not None
        score, result = code_pass(task.program(answer, ex), sandbox)
        detail = {"returncode": result.returncode, "timed_out": result.timed_out,
                  "stderr": result.stderr[-500:]}  # fmt: skip
        return score, detail
    return task.score(answer, ex, sandbox), None


def _run_bounded(
    items: Sequence[Any],
    fn: Callable[[Any], Any],
    concurrency: int,
    stop: threading.Event,
    advance: Callable[[], None],
) -> None:
    """Run ``fn`` over ``items`` with at most ``concurrency`` in flight, in order."""
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="datagen") as pool:
        pending: set[Future[Any]] = set()
        it = iter(items)
        try:
            while True:
                while len(pending) < concurrency and not stop.is_set():
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    pending.add(pool.submit(fn, nxt))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    f.result()
                    advance()
        finally:
            if pending:  # interrupted: no new calls; the ones running finish and are stored
                stop.set()
            for f in pending:
                f.cancel()


@contextlib.contextmanager
def _progress(show: bool, total: int) -> Iterator[Callable[[], None]]:
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        job = bar.add_task("datagen", total=total)
        yield lambda: bar.advance(job)


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    columns = [c for c in _COLUMNS if c != "detail"]
    df = pd.DataFrame(rows, columns=list(_COLUMNS))[columns]
    for c in ("score", "cost", "latency_s", "input_tokens", "output_tokens"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    first = ["query_id", "query", "model", "score"]
    return df[first + [c for c in df.columns if c not in first]]


def export(
    out: str | Path, *, stopped: str | None = None, sandbox: Sandbox | None = None
) -> dict[str, Any]:
    """Write ``routing.parquet`` and ``manifest.json`` from the store in ``out``."""
    out = Path(out)
    if not (out / STORE).is_file():
        raise DataError(f"{out} has no {STORE}")
    with _open_store(out / STORE) as store:
        rows = store.rows()
        meta = store.meta()
    df = _frame(rows)
    tmp = out / (ROUTING_FILE + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(out / ROUTING_FILE)
    config = meta.get("config", {})
    ok = df[df["error"].isna()]
    manifest: dict[str, Any] = {
        "format": "llmrouter-datagen/1",
        "config": config,
        "counts": {
            "queries": int(df["query_id"].nunique()),
            "rows": len(df),
            "answered": len(ok),
            "errors": int(df["error"].notna().sum()),
            "per_task": {
                t: {s: int(g["query_id"].nunique()) for s, g in gt.groupby("split")}
                for t, gt in df.groupby("task")
            },
        },
        "cost_usd": float(df["cost"].fillna(0.0).sum()),
        "mean_score": {
            t: {m: round(float(v), 6) for m, v in g.groupby("model")["score"].mean().items()}
            for t, g in ok.groupby("task")
        },
        "errors": sorted({str(e) for e in df["error"].dropna()})[:20],
        "stopped": stopped,
        "sandbox": list(sandbox.isolation) if sandbox is not None else None,
        "tasks": {
            name: {"metric": get_task(name).metric_name, "max_tokens": get_task(name).max_tokens}
            for name in config.get("tasks", [])
            if _known(name)
        },
    }
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    (out / (MANIFEST + ".tmp")).write_text(text + "\n", encoding="utf-8")
    (out / (MANIFEST + ".tmp")).replace(out / MANIFEST)
    return manifest


def _known(name: str) -> bool:
    try:
        get_task(name)
    except DataError:
        return False
    return True


def merge(out: str | Path, inputs: Sequence[str | Path]) -> dict[str, Any]:
    """Join the stores of several output directories (e.g. shards) into ``out`` and export.

    The runs must share tasks, pool, splits, limit, source and temperature (not the
    shard). An answered row wins over a failed one of the same (query, model)."""
    if not inputs:
        raise DataError("name the directories to merge")
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    configs: list[dict[str, Any]] = []
    with _open_store(out / STORE) as target:
        for d in inputs:
            path = Path(d).expanduser().resolve() / STORE
            if not path.is_file():
                raise DataError(f"{d} has no {STORE}")
            with _open_store(path) as src:
                config = dict(src.meta().get("config") or {})
                rows = src.rows()
            config.pop("shard", None)
            if configs and config != configs[0]:
                raise DataError(f"{d} was made with other settings than {inputs[0]}")
            configs.append(config)
            for row in rows:
                target.put(row, keep_answered=row.get("error") is not None)
        target.set_meta({"config": {**configs[0], "shard": [0, 1]}})
    return export(out)


def rescore(
    out: str | Path, *, sandbox: Sandbox | None = None, progress: bool = True
) -> dict[str, Any]:
    """Score the stored answers in ``out`` again with the current metrics (no model is
    called), then export. Use it after a metric is fixed or changed.

    The examples are read again from the run's source; a stored answer whose query no
    longer renders the same prompt is an error (the source changed)."""
    out = Path(out).expanduser().resolve()
    if not (out / STORE).is_file():
        raise DataError(f"{out} has no {STORE}")
    with _open_store(out / STORE) as store:
        config = store.meta().get("config") or {}
        tasks = [get_task(t) for t in config.get("tasks", [])]
        by_id: dict[str, tuple[Task, Example, str]] = {}
        for task in tasks:
            for _, ex in load_examples(
                task,
                source=config.get("source", "auto"),
                splits=config.get("splits", ["train"]),
                limit=config.get("limit"),
            ):
                by_id[ex.query_id] = (task, ex, task.prompt(ex))
        rows = [r for r in store.rows() if r["error"] is None]
        if any(t.needs_sandbox for t in tasks) and sandbox is None:
            sandbox = Sandbox()
        with _progress(progress, len(rows)) as advance:
            for row in rows:
                found = by_id.get(row["query_id"])
                if found is None or found[2] != row["query"]:
                    raise DataError(
                        f"{row['query_id']}: the source no longer has this query as stored; "
                        "generate again instead"
                    )
                task, ex, _ = found
                score, detail = _score(task, row["response"] or "", ex, sandbox)
                store.set_score(row["query_id"], row["model"], score,
                                json.dumps(detail) if detail else None)  # fmt: skip
                advance()
    return export(out, sandbox=sandbox)
