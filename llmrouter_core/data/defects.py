"""Defects found while loading routing data, and what was done about them.

Every loader validates its input and records each problem in a :class:`DefectReport`: which
kind of defect, which query id, where in which file, and how it was resolved. The report is
attached to the loaded data as ``data.meta["defects"]`` (a JSON-safe dict) and logged.

Loaders take ``on_defect``:

- ``"error"`` (default for files): any defect raises :class:`DefectError` (a
  :class:`~llmrouter_core.errors.DataError`) whose message lists the counts and the first ids;
  the full report is on ``exc.report``.
- ``"drop"``: the defective rows / queries are dropped, exactly those, and the report says
  which.
- ``"keep"``: queries with missing scores (and train/test overlaps) are kept, with ``nan``
  where a score is missing; an invalid cost becomes ``nan`` (unknown); of duplicate copies
  that conflict, the first is kept; what cannot be represented (malformed rows, models
  outside the pool) is still dropped and reported.

Example:
    >>> r = DefectReport(source="scores.csv", on_defect="drop")
    >>> r.add(MISSING_SCORE, "q7", where="scores.csv row 8", detail="no score for: gpt-4o")
    >>> r.counts
    {'missing_score': 1}
    >>> print(r.summary().splitlines()[1])
      missing_score: 1 (q7 [scores.csv row 8]: no score for: gpt-4o)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from llmrouter_core.errors import DataError

__all__ = [
    "DEFECT_KINDS",
    "DUPLICATE_ID",
    "INCOMPLETE_QUERY",
    "INVALID_COST",
    "MALFORMED_ROW",
    "MISSING_SCORE",
    "TRAIN_TEST_OVERLAP",
    "UNKNOWN_MODEL",
    "Defect",
    "DefectError",
    "DefectReport",
    "OnDefect",
    "defect_log_level",
]

logger = logging.getLogger(__name__)

OnDefect = Literal["error", "drop", "keep"]

#: The same query id occurs more than once (in one file or across files).
DUPLICATE_ID = "duplicate_id"
#: A (query, model) record exists but its score is empty.
MISSING_SCORE = "missing_score"
#: A query has no record at all for some models of the data.
INCOMPLETE_QUERY = "incomplete_query"
#: A model of the data is not in the pool given to the loader.
UNKNOWN_MODEL = "unknown_model"
#: A row that cannot be read (bad JSON, not an object, no id / model / query text, ...).
MALFORMED_ROW = "malformed_row"
#: A training query whose text also occurs in the test split (leaks the test set).
TRAIN_TEST_OVERLAP = "train_test_overlap"
#: A cost that is not a finite number >= 0 (``inf``, negative), or a missing cost of a scored
#: (query, model) while the data records the other costs and no pool can price it.
INVALID_COST = "invalid_cost"

DEFECT_KINDS = (
    DUPLICATE_ID,
    MISSING_SCORE,
    INCOMPLETE_QUERY,
    UNKNOWN_MODEL,
    MALFORMED_ROW,
    TRAIN_TEST_OVERLAP,
    INVALID_COST,
)

_SHOWN = 5  # items shown per kind in summaries and error messages

_log_cap: ContextVar[int | None] = ContextVar("llmrouter_defect_log_level", default=None)


@contextmanager
def defect_log_level(level: int) -> Iterator[None]:
    """Log the defect reports of the loads inside the block at ``level`` at most.

    By default a report with defects is logged as a warning. Callers that show the report
    their own way (the CLI's one-line summary) or that expect known defects (a named
    dataset, a dataset loaded for replay) lower it. Blocks nest: the lowest level wins.

    Example:
        >>> import logging
        >>> with defect_log_level(logging.DEBUG):
        ...     pass  # loads here log their reports at DEBUG
    """
    current = _log_cap.get()
    token = _log_cap.set(level if current is None else min(current, level))
    try:
        yield
    finally:
        _log_cap.reset(token)


@dataclass(frozen=True)
class Defect:
    """One defect: the query id (or model name) concerned, where it is, and what was done."""

    id: str
    where: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "where": self.where, "detail": self.detail}

    def __str__(self) -> str:
        text = self.id
        if self.where:
            text += f" [{self.where}]"
        if self.detail:
            text += f": {self.detail}"
        return text


@dataclass
class DefectReport:
    """Defects found in one load, per kind, with what was dropped.

    Attributes:
        source: What was loaded (file names or dataset name).
        on_defect: The policy applied (``"error"``, ``"drop"`` or ``"keep"``).
        n_input_rows: Rows (records) read from the source.
        items: Defects per kind, in the order found.
        dropped_queries: Ids of the queries removed from the result.
        dropped_rows: Number of input rows (records) removed from the result.
        dropped_models: Models removed from the result (not in the pool).
        notes: Facts worth knowing that are not defects (e.g. documented filters applied).
        n_queries: Queries in the result.
        n_models: Models in the result.

    Example:
        >>> r = DefectReport(source="s.csv")
        >>> r.add(DUPLICATE_ID, "q1", where="s.csv row 2; s.csv row 9", detail="2 copies")
        >>> r.has_defects, r.ids(DUPLICATE_ID), r.to_dict()["counts"]
        (True, ['q1'], {'duplicate_id': 1})
    """

    source: str = ""
    on_defect: str = "error"
    n_input_rows: int = 0
    items: dict[str, list[Defect]] = field(default_factory=dict)
    dropped_queries: list[str] = field(default_factory=list)
    dropped_rows: int = 0
    dropped_models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_queries: int = 0
    n_models: int = 0

    def add(self, kind: str, id: str, *, where: str = "", detail: str = "") -> None:
        """Record one defect of ``kind``."""
        if kind not in DEFECT_KINDS:
            raise ValueError(f"unknown defect kind {kind!r}")
        self.items.setdefault(kind, []).append(Defect(str(id), where, detail))

    def note(self, text: str) -> None:
        """Record a fact that is not a defect."""
        self.notes.append(text)

    @property
    def counts(self) -> dict[str, int]:
        """Number of defects per kind (kinds with none are omitted)."""
        return {k: len(v) for k, v in self.items.items() if v}

    @property
    def has_defects(self) -> bool:
        return any(self.items.values())

    def __bool__(self) -> bool:
        return self.has_defects

    def ids(self, kind: str) -> list[str]:
        """The ids recorded under ``kind``."""
        return [d.id for d in self.items.get(kind, [])]

    def summary(self, max_items: int = _SHOWN) -> str:
        """A readable multi-line summary: counts, the first items per kind, what was dropped."""
        counts = self.counts
        head = f"{self.source or 'data'}: {self.n_input_rows} rows read, "
        head += (
            f"{sum(counts.values())} defects ({', '.join(f'{k} {n}' for k, n in counts.items())})"
            if counts
            else "no defects"
        )
        lines = [head]
        for kind, defects in self.items.items():
            if not defects:
                continue
            shown = "; ".join(str(d) for d in defects[:max_items])
            more = f"; ... {len(defects) - max_items} more" if len(defects) > max_items else ""
            lines.append(f"  {kind}: {len(defects)} ({shown}{more})")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.on_defect != "error" and (
            self.dropped_rows or self.dropped_queries or self.dropped_models
        ):
            dropped = f"  dropped ({self.on_defect}): {self.dropped_rows} rows"
            if self.dropped_queries:
                dropped += f", {len(self.dropped_queries)} queries"
            if self.dropped_models:
                dropped += f", models {', '.join(self.dropped_models)}"
            lines.append(dropped)
        if self.on_defect != "error" or not counts:
            lines.append(f"  result: {self.n_queries} queries x {self.n_models} models")
        return "\n".join(lines)

    def brief(self) -> str:
        """One line: the counts per kind and what was dropped (no item list).

        Example:
            >>> r = DefectReport(on_defect="drop", dropped_rows=2, dropped_queries=["q1"])
            >>> r.add(DUPLICATE_ID, "q1")
            >>> r.brief()
            '1 defect (duplicate_id 1); dropped 2 rows, 1 query'
        """
        counts = self.counts
        if not counts:
            return "no defects"
        kinds = ", ".join(f"{k} {n}" for k, n in counts.items())
        text = f"{_count(sum(counts.values()), 'defect')} ({kinds})"
        if self.on_defect != "error" and (
            self.dropped_rows or self.dropped_queries or self.dropped_models
        ):
            text += f"; dropped {_count(self.dropped_rows, 'row')}"
            if self.dropped_queries:
                text += f", {_count(len(self.dropped_queries), 'query', 'queries')}"
            if self.dropped_models:
                text += f", models {', '.join(self.dropped_models)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the whole report."""
        return {
            "source": self.source,
            "on_defect": self.on_defect,
            "n_input_rows": self.n_input_rows,
            "counts": self.counts,
            "items": {k: [d.to_dict() for d in v] for k, v in self.items.items() if v},
            "dropped_queries": list(self.dropped_queries),
            "dropped_rows": self.dropped_rows,
            "dropped_models": list(self.dropped_models),
            "notes": list(self.notes),
            "n_queries": self.n_queries,
            "n_models": self.n_models,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DefectReport:
        """Rebuild a report from :meth:`to_dict` output."""
        items = {
            str(k): [
                Defect(str(d["id"]), str(d.get("where", "")), str(d.get("detail", ""))) for d in v
            ]
            for k, v in dict(raw.get("items", {})).items()
        }
        return cls(
            source=str(raw.get("source", "")),
            on_defect=str(raw.get("on_defect", "error")),
            n_input_rows=int(raw.get("n_input_rows", 0)),
            items=items,
            dropped_queries=[str(q) for q in raw.get("dropped_queries", [])],
            dropped_rows=int(raw.get("dropped_rows", 0)),
            dropped_models=[str(m) for m in raw.get("dropped_models", [])],
            notes=[str(n) for n in raw.get("notes", [])],
            n_queries=int(raw.get("n_queries", 0)),
            n_models=int(raw.get("n_models", 0)),
        )

    def log(self) -> None:
        """Log the summary: a warning if there are defects, else at info level; at most at
        the level set by :func:`defect_log_level`. The same defects of the same source
        (loaded again, e.g. for replay) are logged once per process; later loads log them
        at DEBUG."""
        level = logging.WARNING if self.has_defects else logging.INFO
        cap = _log_cap.get()
        level = level if cap is None else min(level, cap)
        key = (self.source, tuple((kind, len(found)) for kind, found in self.items.items()))
        with _logged_lock:
            if level > logging.DEBUG and key in _logged:
                level = logging.DEBUG
            elif level > logging.DEBUG:
                _logged.add(key)
        logger.log(level, "%s", self.summary())


_logged: set[tuple[str, tuple[tuple[str, int], ...]]] = set()
_logged_lock = threading.Lock()


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


class DefectError(DataError):
    """Routing data has defects and ``on_defect="error"``; the report is on :attr:`report`."""

    def __init__(self, report: DefectReport) -> None:
        self.report = report
        super().__init__(
            report.summary()
            + "\n  pass on_defect='drop' to drop exactly these rows/queries, or fix the file"
        )


def check_on_defect(on_defect: str) -> OnDefect:
    """Validate an ``on_defect`` argument."""
    if on_defect not in ("error", "drop", "keep"):
        raise DataError(f"on_defect must be 'error', 'drop' or 'keep', got {on_defect!r}")
    return on_defect  # type: ignore[return-value]
