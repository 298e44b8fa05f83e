"""PostgreSQL connections: fewer round trips per unit of work (SQLite needs none of this; see
app/db/sqlite.py for its own settings).

- **A ping only after idleness.** SQLAlchemy's `pool_pre_ping` sends a statement on every
  checkout: with psycopg that is a round trip per request and per job transaction (a quarter
  of a worker's claim transactions' round trips). A connection is pinged here only when it sat
  in the pool longer than `DATABASE_PING_AFTER_SECONDS` (HikariCP's "alive bypass window"
  does the same); a dead one is then replaced before anyone uses it. The pool hands out the
  most recently returned connection first (LIFO), so busy connections stay warm and only the
  idle tail gets pinged. A server restart inside the window fails the first statement of
  each connection that was in use just before it; SQLAlchemy then invalidates the pool, so it
  happens once per process, and that request or job fails and is retried like any other.
- **One statement, one round trip** (`single_statement`): a read or a write that is atomic on
  its own runs in autocommit. In a transaction it costs three round trips (BEGIN, the
  statement, COMMIT or ROLLBACK), and psycopg answers every ROLLBACK by dropping the
  connection's prepared statements (DEALLOCATE ALL), which it then prepares again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

#: connection_record.info key: when the connection went back to the pool (monotonic seconds).
_RETURNED = "opsdeck_returned_at"


def install(engine: Engine, ping_after: float) -> None:
    """Ping `engine`'s PostgreSQL connections that were idle longer than `ping_after` seconds
    (0: at every checkout) before handing them out."""
    if engine.dialect.name != "postgresql" or getattr(engine, "_opsdeck_ping", False):
        return

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned < ping_after:
            return  # new (just connected), or in use a moment ago
        try:
            ping(dbapi_connection)
        except Exception as err:
            # The pool discards this connection and checks out another (a new one if needed).
            raise exc.DisconnectionError(f"database connection failed its ping: {err}") from err

    engine._opsdeck_ping = True  # type: ignore[attr-defined]


def ping(dbapi_connection: Any) -> None:
    """One round trip that leaves the connection as it was: outside a transaction, so no
    BEGIN is sent and nothing needs ending."""
    from psycopg.pq import TransactionStatus

    if dbapi_connection.info.transaction_status != TransactionStatus.IDLE or dbapi_connection.autocommit:
        dbapi_connection.execute(";")
        return
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute(";")
    finally:
        dbapi_connection.autocommit = False


@contextmanager
def single_statement(engine: Engine) -> Iterator[Connection]:
    """A connection for work that is one statement: a read, or a write that is atomic on its
    own (a guarded UPDATE). PostgreSQL runs it in autocommit; other databases in a transaction
    committed at the end (on SQLite a write still takes the write lock, as in app/db/sqlite.py).
    Never for two statements that must commit together."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
    else:
        with engine.begin() as conn:
            yield conn
