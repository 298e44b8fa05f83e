"""PostgreSQL connections (app/db/postgres.py) against a real server: a pooled connection is
pinged only after it sat idle, a dead one is replaced before use, and single statements run
in autocommit without touching the connections that need transactions."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from app.config import _engine_options, _normalise_db_url
from app.db import postgres

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def _engine(database_url: str, ping_after: float) -> Engine:
    url = _normalise_db_url(database_url)
    engine = create_engine(url, **_engine_options(url))
    postgres.install(engine, ping_after)
    return engine


@pytest.fixture
def admin(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def _backend(engine: Engine, marker: str) -> int:
    """Run a recognisable statement on a pooled connection and give it back; its server pid."""
    with engine.connect() as conn:
        pid = conn.execute(text(f"SELECT pg_backend_pid() /* {marker} */")).scalar_one()
        conn.commit()
    return int(pid)


def _last_statement(admin: psycopg.Connection, pid: int) -> str:
    row = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return row[0] if row else ""


@pytest.mark.parametrize(("ping_after", "pinged"), [(0.0, True), (3600.0, False)], ids=["idle", "just-used"])
def test_a_connection_is_pinged_at_checkout_only_after_sitting_idle(database_url, admin, ping_after, pinged):
    engine = _engine(database_url, ping_after)
    try:
        pid = _backend(engine, "first use")
        with engine.connect() as conn:  # the same connection back (LIFO), nothing run on it yet
            assert _last_statement(admin, pid) == (";" if pinged else "COMMIT")  # the ping, or its last use
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
    finally:
        engine.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(database_url, admin):
    engine = _engine(database_url, 0.0)
    try:
        pid = _backend(engine, "doomed")
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


def test_inside_the_window_a_dropped_connection_fails_once_then_the_pool_recovers(database_url, admin):
    """The trade-off documented in app/db/postgres.py: no ping for a connection used a moment ago."""
    engine = _engine(database_url, 3600.0)
    try:
        pid = _backend(engine, "doomed")
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


def test_a_single_statement_runs_in_autocommit_and_leaves_the_connection_transactional(database_url, admin):
    engine = _engine(database_url, 3600.0)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE single_probe (n int)"))
        with postgres.single_statement(engine) as conn:
            assert conn.connection.dbapi_connection.autocommit is True
            conn.execute(text("INSERT INTO single_probe VALUES (1)"))
            # committed already: another session sees it before the block ends
            assert admin.execute("SELECT count(*) FROM single_probe").fetchone()[0] == 1
        with engine.connect() as conn:  # the same connection, back in transactional mode
            assert conn.connection.dbapi_connection.autocommit is False
            conn.execute(text("INSERT INTO single_probe VALUES (2)"))
            conn.rollback()
        assert admin.execute("SELECT count(*) FROM single_probe").fetchone()[0] == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS single_probe"))
        engine.dispose()
