"""The SQLite feedback store: concurrent writers from processes and threads lose nothing and
never surface "database is locked"; a profile learned in one process routes the same in a new
one; schema migrations; export / import / forget."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import llmrouter_core as lr
from llmrouter_core.errors import FeedbackStoreError
from llmrouter_core.personalized import (
    SCHEMA_VERSION,
    FeedbackEvent,
    MemoryStore,
    PersonalizedRouter,
    SQLiteStore,
    open_store,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from feedback_worker import worker_events  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _run(*args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "feedback_worker.py"), *map(str, args)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture()
def saved(router: Any, rb_small: Any, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """The router saved to a directory, a database path, and a query file."""
    router.save(tmp_path / "router")
    queries = list(rb_small[1].queries[:60])
    (tmp_path / "queries.json").write_text(json.dumps(queries), encoding="utf-8")
    return tmp_path / "router", tmp_path / "feedback.db", queries


def test_url_opens_the_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/sub/fb.db")
    assert isinstance(store, SQLiteStore) and store.schema_version == SCHEMA_VERSION
    assert (tmp_path / "sub" / "fb.db").is_file()
    assert isinstance(open_store(None), MemoryStore) and isinstance(
        open_store("memory"), MemoryStore
    )
    with pytest.raises(ValueError, match="unknown feedback store"):
        open_store("postgres://x")
    mode = sqlite3.connect(tmp_path / "sub" / "fb.db").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


def test_profile_learned_in_one_process_routes_the_same_in_a_new_one(
    saved: tuple[Path, Path, list[str]], rb_small: Any, frugal: Any
) -> None:
    router_dir, db, queries = saved
    router = lr.load_router(router_dir, store=f"sqlite:///{db}")
    frugal(router, "carol", rb_small[0].queries, 25)
    mine = [d.model for d in router.route_batch(queries, user="carol")]
    assert mine != [d.model for d in router.route_batch(queries)]  # the profile matters
    proc = _run("route", router_dir, db, router_dir.parent / "queries.json", "carol")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out) == mine


def _give_feedback(router_dir: str, db: str, queries: list[str], worker: int, n: int) -> None:
    """One writer process: the saved router on the shared SQLite file, ``n`` events."""
    router = lr.load_router(router_dir, store=f"sqlite:///{db}")
    for user, q, model, rating, other in worker_events(worker, n, queries, router.models_):
        router.feedback(user, q, model, rating=rating, preferred_over=other)


def test_concurrent_processes_lose_no_feedback(
    saved: tuple[Path, Path, list[str]], rb_small: Any
) -> None:
    router_dir, db, queries = saved
    n_workers, n_events = 8, 500
    # Forked writers start at once (no interpreter start-up), so they do contend.
    context = multiprocessing.get_context("fork")
    procs = [
        context.Process(
            target=_give_feedback, args=(str(router_dir), str(db), queries, w, n_events)
        )
        for w in range(n_workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
        assert proc.exitcode == 0  # an error (e.g. "database is locked") would exit 1
    store = SQLiteStore(db)
    assert store.count() == n_workers * n_events
    assert store.count("shared") == n_workers * n_events // 2
    loaded = lr.load_router(router_dir, store=store)
    for w in range(n_workers):
        expected = worker_events(w, n_events, queries, loaded.models_)
        mine = [e for e in expected if e[0] == f"worker-{w}"]
        stored = store.events(f"worker-{w}")
        assert [(e.user, e.query, e.model, e.rating, e.preferred_over) for e in stored] == mine
        # The profile read from the shared file equals one learned from the same events.
        alone = PersonalizedRouter(base=loaded.base_, store=MemoryStore()).fit(rb_small[0])
        alone.add_feedback([FeedbackEvent(*e) for e in mine])
        np.testing.assert_allclose(
            loaded.profile(f"worker-{w}").theta, alone.profile(f"worker-{w}").theta, atol=1e-10
        )
    assert loaded.profile("shared").n_events == loaded.max_events


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fb.db")
    other = SQLiteStore(tmp_path / "fb.db")  # a second connection, as another process has

    def work(s: SQLiteStore, k: int) -> None:
        for i in range(100):
            s.add([FeedbackEvent(f"t{k}", f"query {i}", "m", rating=0.5)])

    threads = [threading.Thread(target=work, args=(store if k % 2 else other, k)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 600 and other.count("t3") == 100
    assert [e.query for e in store.events("t3", limit=3)] == ["query 97", "query 98", "query 99"]


def test_a_locked_file_waits_then_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "fb.db"
    store = SQLiteStore(path, timeout=0.5)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the file
    released = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    released.start()
    store.add([FeedbackEvent("u", "q", "m", rating=1.0)])  # waits for the other writer
    released.join()
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(FeedbackStoreError, match="stayed locked"):
        store.add([FeedbackEvent("u", "q2", "m", rating=1.0)])
    assert time.monotonic() - started >= 0.5
    holder.execute("ROLLBACK")
    assert [e.query for e in store.events("u")] == ["q"]


def test_an_old_schema_is_migrated_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
            query TEXT NOT NULL, model TEXT NOT NULL, rating REAL, preferred_over TEXT,
            created REAL NOT NULL);
        INSERT INTO events (user, query, model, rating, preferred_over, created)
            VALUES ('old', 'a query', 'm', 0.25, NULL, 1.0);
        """
    )
    conn.close()
    store = SQLiteStore(path)
    assert store.schema_version == SCHEMA_VERSION
    indexes = sqlite3.connect(path).execute("PRAGMA index_list(events)").fetchall()
    assert any(row[1] == "events_user_id" for row in indexes)
    assert store.events("old")[0].rating == 0.25
    store.close()
    sqlite3.connect(path).execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'"
    ).connection.commit()
    with pytest.raises(FeedbackStoreError, match="newer"):
        SQLiteStore(path)


def test_export_import_delete_on_sqlite(tmp_path: Path) -> None:
    from llmrouter_core.personalized import export_user, import_user

    a, b = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    a.add([FeedbackEvent("dan", f"q{i}", "m", rating=i / 10) for i in range(5)])
    a.add([FeedbackEvent("eve", "q", "m", preferred_over="n")])
    doc = json.loads(json.dumps(export_user(a, "dan")))
    assert import_user(b, doc) == 5
    assert [(e.query, e.rating) for e in b.events("dan")] == [
        (e.query, e.rating) for e in a.events("dan")
    ]
    assert a.delete_user("dan") == 5 and a.count("dan") == 0 and a.users() == ["eve"]
    assert a.version("dan") == (0, 0)


def test_a_saved_store_path_is_opened_only_if_it_is_a_feedback_store(
    router: Any, tmp_path: Path
) -> None:
    """A saved router names its SQLite store; loading never creates or alters another file."""
    db = tmp_path / "fb.db"
    live = lr.load_router(_saved(router, tmp_path / "r0"), store=f"sqlite:///{db}")
    live.save(tmp_path / "r")
    reloaded = lr.load_router(tmp_path / "r")
    assert reloaded.feedback_store.url == f"sqlite:///{db}"
    for store in (live.feedback_store, reloaded.feedback_store):
        store.close()
    other = tmp_path / "other.db"  # somebody else's database at the saved path
    for path in tmp_path.glob("fb.db*"):
        path.unlink()
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.commit()
    conn.close()
    other.rename(db)
    with pytest.raises(lr.PersistenceError, match="not a feedback store"):
        lr.load_router(tmp_path / "r")
    tables = sqlite3.connect(db).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("accounts",)]
    db.unlink()
    with pytest.raises(lr.PersistenceError, match="no feedback store"):
        lr.load_router(tmp_path / "r")
    assert not db.exists()
    fresh = lr.load_router(tmp_path / "r", store=f"sqlite:///{db}")  # the caller's choice
    assert fresh.feedback_store.count() == 0 and db.exists()


def _saved(router: Any, path: Path) -> Path:
    router.save(path)
    return path
