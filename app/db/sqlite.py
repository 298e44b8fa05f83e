"""SQLite, the embedded database: settings that make it safe with several threads and
processes writing (PostgreSQL needs none of this).

- WAL, a busy timeout, foreign keys on every connection.
- Reads run outside transactions; a transaction takes the write lock up front (BEGIN
  IMMEDIATE) at its first write. A deferred transaction that reads and then writes fails at
  once with SQLITE_BUSY when another connection wrote in between (the busy timeout does not
  apply to that case); an IMMEDIATE one waits. Reads before the first write see the latest
  committed data, as under PostgreSQL's READ COMMITTED; every ledger transition is a guarded
  UPDATE, so none relies on more.
- Within a process, writers queue on a lock per database file instead of in SQLite's busy
  handler, which polls with sleeps of up to 100 ms and leaves threads asleep while the lock is
  free. Between processes, the one thread waiting polls every 0.25–1 ms rather than in that
  handler (`_begin_immediate`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_READ_PREFIXES = ("SELECT", "PRAGMA", "EXPLAIN")
_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()
#: DBAPI connection id -> the lock it holds while its write transaction is open.
_held: dict[int, threading.RLock] = {}

#: Waiting for another process's write lock: SQLite's busy handler sleeps 1, 2, 5, 10, … up to
#: 100 ms between tries, so under a steady stream of another process's short transactions (the
#: web inserting events while a worker claims them) it keeps missing the gaps. BEGIN IMMEDIATE
#: is retried here instead, every
#: RETRY_SECONDS doubling up to RETRY_MAX_SECONDS, for as long as the busy timeout.
RETRY_SECONDS, RETRY_MAX_SECONDS = 0.00025, 0.001
BUSY_SECONDS = 30.0


def _lock_for(path: str) -> threading.RLock:
    with _locks_guard:
        return _locks.setdefault(path, threading.RLock())


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
    cursor.close()


@event.listens_for(Engine, "before_cursor_execute")
def _write_transaction(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    if conn.dialect.name != "sqlite":
        return
    dbapi_connection = cursor.connection
    if dbapi_connection.in_transaction or statement.lstrip()[:7].upper().startswith(_READ_PREFIXES):
        return
    lock = _lock_for(conn.engine.url.database or ":memory:")
    lock.acquire()
    try:
        _begin_immediate(dbapi_connection)
    except BaseException:
        lock.release()
        raise
    _held[id(dbapi_connection)] = lock


def _begin_immediate(dbapi_connection: sqlite3.Connection) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    try:
        deadline, pause = time.monotonic() + BUSY_SECONDS, RETRY_SECONDS
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_SECONDS)
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")


def _release(connection: Any) -> None:
    # SQLAlchemy passes its pool wrapper (which has .dbapi_connection) or the raw connection.
    raw = getattr(connection, "dbapi_connection", connection)
    lock = _held.pop(id(raw), None)
    if lock is not None:
        lock.release()


def install(engine: Engine) -> None:
    """Release the process write lock after every commit and rollback of `engine`."""
    dialect = engine.dialect
    if dialect.name != "sqlite" or getattr(dialect, "_opsdeck_locks", False):
        return
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            _release(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _release(dbapi_connection)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback  # type: ignore[method-assign]
    dialect._opsdeck_locks = True  # type: ignore[attr-defined]
