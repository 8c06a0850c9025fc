"""Feedback stores: where a personalized router keeps each user's feedback events.

A store is a small interface (:class:`FeedbackStore`): append events, read one user's events
in time order, a per-user version (to know when a cached profile is stale), export / import
one user's data, and forget a user. Two implementations:

* :class:`MemoryStore` (``store=None`` or ``"memory"``): in the process only; its events are
  saved with the router.
* :class:`SQLiteStore` (``store="sqlite:///path/to/feedback.db"``): a SQLite file in WAL mode,
  shared by threads and processes. Writers wait for each other (a busy timeout, then retries
  with backoff), so a "database is locked" error never reaches the caller unless the file
  stays locked for ``timeout`` seconds; the schema carries a version and is migrated on open.

Another backend (e.g. Redis, for several server replicas) implements the same methods.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from llmrouter_core.errors import DataError, FeedbackStoreError

__all__ = [
    "SCHEMA_VERSION",
    "FeedbackEvent",
    "FeedbackStore",
    "MemoryStore",
    "SQLiteStore",
    "open_store",
]

#: The schema version :class:`SQLiteStore` writes (older files are migrated on open).
SCHEMA_VERSION = 2
EXPORT_FORMAT = "llmrouter-core/user-feedback"

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One piece of feedback from one user.

    Attributes:
        user: Who gave it.
        query: The query that was answered.
        model: The pool model that answered (or the one preferred).
        rating: The user's rating of that answer in [0, 1], or ``None``.
        preferred_over: Another pool model whose answer the user liked less, or ``None``.
        created: When it was given (seconds since the epoch).
        id: The store's sequence number (``None`` before it is stored).
    """

    user: str
    query: str
    model: str
    rating: float | None = None
    preferred_over: str | None = None
    created: float = 0.0
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> FeedbackEvent:
        """An event from a JSON object (checked: bad input raises :class:`DataError`)."""
        if not isinstance(raw, dict):
            raise DataError(f"a feedback event must be a JSON object, got {type(raw).__name__}")
        try:
            rating = raw.get("rating")
            return check_event(
                cls(
                    user=raw["user"],
                    query=raw["query"],
                    model=raw["model"],
                    rating=None if rating is None else float(rating),
                    preferred_over=raw.get("preferred_over"),
                    created=float(raw.get("created", 0.0)),
                )
            )
        except KeyError as exc:
            raise DataError(f"a feedback event lacks the field {exc}") from None
        except (TypeError, ValueError) as exc:
            raise DataError(f"bad feedback event: {exc}") from None


def check_event(event: FeedbackEvent, models: Sequence[str] | None = None) -> FeedbackEvent:
    """``event`` if it is well formed (and names models of ``models``), else
    :class:`DataError` / :class:`~llmrouter_core.errors.UnknownModelError`."""
    from llmrouter_core.errors import UnknownModelError

    if not isinstance(event.user, str) or not event.user.strip():
        raise DataError("user must be a non-empty string")
    if not isinstance(event.query, str) or not event.query.strip():
        raise DataError("query must be a non-empty string")
    if not isinstance(event.model, str) or not event.model:
        raise DataError("model must be a pool model name")
    if event.rating is None and event.preferred_over is None:
        raise DataError("feedback needs a rating in [0, 1], preferred_over, or both")
    if event.rating is not None and not (
        isinstance(event.rating, int | float)
        and not isinstance(event.rating, bool)
        and 0.0 <= float(event.rating) <= 1.0
    ):
        raise DataError(f"rating must be a number in [0, 1], got {event.rating!r}")
    if event.preferred_over is not None and (
        not isinstance(event.preferred_over, str) or event.preferred_over == event.model
    ):
        raise DataError("preferred_over must be another pool model than model")
    if not math.isfinite(event.created):
        raise DataError("created must be a finite timestamp")
    if models is not None:
        for name in (event.model, event.preferred_over):
            if name is not None and name not in models:
                raise UnknownModelError(
                    f"unknown model {name!r}; the router knows {', '.join(models)}"
                )
    return event


@runtime_checkable
class FeedbackStore(Protocol):
    """Where feedback events live (see the module docstring)."""

    #: The URL this store was opened from (``"memory"`` for :class:`MemoryStore`).
    url: str

    def add(self, events: Sequence[FeedbackEvent]) -> list[FeedbackEvent]:
        """Append ``events`` (one transaction); returns them with ids and timestamps."""
        ...

    def events(self, user: str, limit: int | None = None) -> list[FeedbackEvent]:
        """``user``'s events, oldest first (the last ``limit`` only, if given)."""
        ...

    def version(self, user: str) -> tuple[int, int]:
        """``(count, last id)`` of ``user``'s events: changes whenever they change."""
        ...

    def users(self) -> list[str]:
        """Every user with at least one event, sorted."""
        ...

    def count(self, user: str | None = None) -> int:
        """Number of events (of ``user``, or of everyone)."""
        ...

    def delete_user(self, user: str) -> int:
        """Forget ``user``: delete every event; returns how many were deleted."""
        ...

    def close(self) -> None: ...


def export_user(store: FeedbackStore, user: str) -> dict[str, Any]:
    """``user``'s data as one JSON-safe document (what :func:`import_user` reads)."""
    return {
        "format": EXPORT_FORMAT,
        "version": 1,
        "user": user,
        "events": [
            {k: v for k, v in e.to_dict().items() if k not in ("user", "id")}
            for e in store.events(user)
        ],
    }


def import_user(store: FeedbackStore, document: Any, *, user: str | None = None) -> int:
    """Add the events of an :func:`export_user` document to ``store`` (as ``user``, default
    the document's); returns how many were added. Bad documents raise :class:`DataError`
    before anything is written."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise DataError(f"not a {EXPORT_FORMAT} document")
    name = user if user is not None else document.get("user")
    raw = document.get("events")
    if not isinstance(raw, list):
        raise DataError("the document's 'events' is not a list")
    events = [
        FeedbackEvent.from_dict({**e, "user": name} if isinstance(e, dict) else e) for e in raw
    ]
    store.add(events)
    return len(events)


class MemoryStore:
    """Events in a list, for one process (thread-safe)."""

    url = "memory"

    def __init__(self, events: Iterable[FeedbackEvent] = ()) -> None:
        self._lock = threading.Lock()
        self._events: list[FeedbackEvent] = []
        self._next = 1
        self.add(list(events))

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._events)} events)"

    def add(self, events: Sequence[FeedbackEvent]) -> list[FeedbackEvent]:
        events = [check_event(e) for e in events]
        with self._lock:
            out = []
            for e in events:
                stamped = FeedbackEvent(
                    e.user,
                    e.query,
                    e.model,
                    None if e.rating is None else float(e.rating),
                    e.preferred_over,
                    e.created or time.time(),
                    self._next,
                )
                self._next += 1
                out.append(stamped)
            self._events.extend(out)
        return out

    def events(self, user: str, limit: int | None = None) -> list[FeedbackEvent]:
        with self._lock:
            mine = [e for e in self._events if e.user == user]
        return mine if limit is None else mine[-limit:] if limit > 0 else []

    def version(self, user: str) -> tuple[int, int]:
        mine = self.events(user)
        return len(mine), (mine[-1].id or 0) if mine else 0

    def users(self) -> list[str]:
        with self._lock:
            return sorted({e.user for e in self._events})

    def count(self, user: str | None = None) -> int:
        with self._lock:
            return sum(1 for e in self._events if user is None or e.user == user)

    def delete_user(self, user: str) -> int:
        with self._lock:
            before = len(self._events)
            self._events = [e for e in self._events if e.user != user]
            return before - len(self._events)

    def close(self) -> None:
        pass


# Each migration takes the schema from version i to i + 1 (index i). Never edit one that has
# shipped: add the next.
_MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the events table.
    """
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL,
        query TEXT NOT NULL,
        model TEXT NOT NULL,
        rating REAL,
        preferred_over TEXT,
        created REAL NOT NULL
    );
    """,
    # 1 -> 2: reading one user's events in time order is the hot path.
    "CREATE INDEX IF NOT EXISTS events_user_id ON events (user, id);",
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


class SQLiteStore:
    """Events in a SQLite file (WAL mode), safe with concurrent writers.

    Args:
        path: The database file (created, with its directory, if missing).
        timeout: Seconds a call waits for other writers before it raises
            :class:`~llmrouter_core.errors.FeedbackStoreError` (SQLite's busy timeout, then
            retries with backoff).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 60.0, create: bool = True
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        self.url = f"sqlite:///{self.path}"
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        if not create:
            self._check_existing()
        self._retry(self._migrate)

    def _check_existing(self) -> None:
        """Refuse a path that is not already a feedback store (``create=False``: e.g. a path
        read from a saved router, which must not create or alter other files)."""
        if not self.path.is_file():
            raise FeedbackStoreError(f"no feedback store at {self.path}")
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise FeedbackStoreError(f"{self.path} is not a feedback store ({exc})") from exc
        if row is None:
            raise FeedbackStoreError(f"{self.path} is not a feedback store")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- connection ------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross a fork: a child process opens its own.
        if self._conn is None or self._pid != os.getpid():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path,
                    timeout=min(self.timeout, 5.0),
                    isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                    check_same_thread=False,
                )
            except (OSError, sqlite3.Error) as exc:
                raise FeedbackStoreError(
                    f"cannot open the feedback store {self.path}: {exc}"
                ) from exc
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _retry(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` under the lock, retrying while another writer holds the file."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            with self._lock:
                conn = self._connection()
                try:
                    return work(conn)
                except sqlite3.OperationalError as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    busy = "locked" in str(exc) or "busy" in str(exc)
                    if not busy:
                        raise FeedbackStoreError(f"feedback store {self.path}: {exc}") from exc
                    if time.monotonic() >= deadline:
                        raise FeedbackStoreError(
                            f"the feedback store {self.path} stayed locked by other writers "
                            f"for {self.timeout:g} s"
                        ) from exc
                except sqlite3.DatabaseError as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise FeedbackStoreError(f"feedback store {self.path}: {exc}") from exc
            time.sleep(delay * (1.0 + random.random()))
            delay = min(delay * 2, 0.25)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            conn.execute("ROLLBACK")
            raise FeedbackStoreError(
                f"the feedback store {self.path} has schema version {version}, newer than this "
                f"library's {SCHEMA_VERSION}; upgrade llmrouter-core"
            )
        for step in _MIGRATIONS[version:]:
            for statement in step.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        row = self._retry(
            lambda c: c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        )
        return int(row[0])

    # -- the interface ---------------------------------------------------------------------
    def add(self, events: Sequence[FeedbackEvent]) -> list[FeedbackEvent]:
        events = [check_event(e) for e in events]
        if not events:
            return []
        now = time.time()
        rows = [
            (
                e.user,
                e.query,
                e.model,
                None if e.rating is None else float(e.rating),
                e.preferred_over,
                e.created or now,
            )
            for e in events
        ]

        def write(conn: sqlite3.Connection) -> list[FeedbackEvent]:
            conn.execute("BEGIN IMMEDIATE")
            out = []
            for row in rows:
                cur = conn.execute(
                    "INSERT INTO events (user, query, model, rating, preferred_over, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
                out.append(FeedbackEvent(*row, id=cur.lastrowid))
            conn.execute("COMMIT")
            return out

        return self._retry(write)

    def events(self, user: str, limit: int | None = None) -> list[FeedbackEvent]:
        sql = (
            "SELECT user, query, model, rating, preferred_over, created, id FROM events "
            "WHERE user = ? ORDER BY id"
        )
        args: tuple[Any, ...] = (user,)
        if limit is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT ?) ORDER BY id"
            args = (user, max(int(limit), 0))
        rows = self._retry(lambda c: c.execute(sql, args).fetchall())
        return [FeedbackEvent(*r) for r in rows]

    def version(self, user: str) -> tuple[int, int]:
        row = self._retry(
            lambda c: c.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM events WHERE user = ?", (user,)
            ).fetchone()
        )
        return int(row[0]), int(row[1])

    def users(self) -> list[str]:
        rows = self._retry(
            lambda c: c.execute("SELECT DISTINCT user FROM events ORDER BY user").fetchall()
        )
        return [r[0] for r in rows]

    def count(self, user: str | None = None) -> int:
        if user is None:
            row = self._retry(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone())
        else:
            row = self._retry(
                lambda c: c.execute(
                    "SELECT COUNT(*) FROM events WHERE user = ?", (user,)
                ).fetchone()
            )
        return int(row[0])

    def delete_user(self, user: str) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            n = conn.execute("DELETE FROM events WHERE user = ?", (user,)).rowcount
            conn.execute("COMMIT")
            return int(n)

        return self._retry(delete)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def open_store(spec: str | FeedbackStore | None) -> FeedbackStore:
    """A store from its URL: ``None`` / ``"memory"`` (:class:`MemoryStore`) or
    ``"sqlite:///path.db"`` (:class:`SQLiteStore`); a store object is returned as is.

    Raises:
        ValueError: An unknown URL scheme.
    """
    if spec is None or spec == "memory":
        return MemoryStore()
    if isinstance(spec, str):
        if spec.startswith("sqlite:///"):
            return SQLiteStore(spec[len("sqlite:///") :])
        raise ValueError(
            f"unknown feedback store {spec!r}: give 'memory' or 'sqlite:///path/to/file.db'"
        )
    if isinstance(spec, FeedbackStore):
        return spec
    raise TypeError(f"store must be a URL or a FeedbackStore, got {type(spec).__name__}")
