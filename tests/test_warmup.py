"""A process pays its first-use costs as it boots (app/db/warmup.py): the mappers are configured
when the app is built, and web and worker processes open their first connections before
they take work."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import uuid
from typing import Any

import psycopg
import pytest
from flask import Flask

from app import create_app
from app.db import warmup
from app.extensions import db
from tests.conftest import ENCRYPTION_KEY, make_config
from tests.fakes.processes import ROOT, free_port, wait_until


@pytest.fixture
def app_config(database_url: str) -> dict[str, Any]:
    return {"DATABASE_WARM_CONNECTIONS": 3}


def test_warm_opens_the_configured_connections_and_keeps_them_in_the_pool(app: Flask) -> None:
    db.session.remove()
    db.engine.dispose()
    assert db.engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    warmup.warm(app)
    assert db.engine.pool.checkedin() == 3  # type: ignore[attr-defined]
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_database_and_redis_that_are_down_do_not_stop_a_process_from_starting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = create_app(
        make_config(f"postgresql://postgres@127.0.0.1:{free_port()}/none", f"redis://127.0.0.1:{free_port()}/0")
    )
    with caplog.at_level(logging.WARNING, logger="opsdeck.warmup"):
        assert warmup.warm(down, deadline=60)
    lines = [r.getMessage() for r in caplog.records if r.name == "opsdeck.warmup"]
    assert len(lines) == 2
    assert lines[0].startswith("warm-up: database connections not opened: ") and "refused" in lines[0]
    assert lines[1].startswith("warm-up: no Redis connection yet: ")


def test_a_database_that_never_answers_holds_the_boot_no_longer_than_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        stuck = create_app(
            make_config(
                f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/none", f"redis://127.0.0.1:{free_port()}/0"
            )
        )
        with caplog.at_level(logging.WARNING, logger="opsdeck.warmup"):
            assert warmup.warm(stuck, deadline=0.5) is False
    assert any("still waiting" in r.getMessage() for r in caplog.records if r.name == "opsdeck.warmup")


def test_the_mappers_are_configured_when_the_app_is_built_not_at_the_first_query(app: Flask) -> None:
    # A fresh interpreter: in this one, earlier tests have configured them long ago.
    script = (
        "from app import create_app; from app.extensions import db; from tests.conftest import make_config\n"
        "before = [m for m in db.Model.registry.mappers if not m.configured]\n"
        f"create_app(make_config({app.config['SQLALCHEMY_DATABASE_URI']!r}, {app.config['REDIS_URL']!r}))\n"
        "after = [m for m in db.Model.registry.mappers if not m.configured]\n"
        "print(len(before), len(after))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    unconfigured_before, unconfigured_after = map(int, out.stdout.split())
    assert unconfigured_before > 0 and unconfigured_after == 0


def _connections(database_url: str, application_name: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_web_and_worker_processes_hold_their_connections_before_their_first_request(
    app: Flask, workers: Any, database_url: str
) -> None:
    web_name, worker_name = f"web-{uuid.uuid4().hex[:8]}", f"worker-{uuid.uuid4().hex[:8]}"
    base = app.config["SQLALCHEMY_DATABASE_URI"]
    workers.start_web(
        DATABASE_URL=f"{base}?application_name={web_name}", DATABASE_WARM_CONNECTIONS=3, WEB_CONCURRENCY=1
    )
    workers.start(["default"], DATABASE_URL=f"{base}?application_name={worker_name}", DATABASE_WARM_CONNECTIONS=2)
    # Only /healthz has been asked of the web process, and it reads nothing from the database.
    wait_until(lambda: _connections(database_url, web_name) == 3, 30, 0.1, what="the web process's 3 connections")
    wait_until(lambda: _connections(database_url, worker_name) == 2, 30, 0.1, what="the worker's 2 connections")


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import Config

    monkeypatch.setenv("DATABASE_WARM_CONNECTIONS", "0")
    monkeypatch.setenv("OPSDECK_ENCRYPTION_KEYS", ENCRYPTION_KEY)
    assert Config().DATABASE_WARM_CONNECTIONS == 0


def test_a_postgresql_connection_attempt_gives_up_unless_the_url_says_otherwise() -> None:
    from app.config import _engine_options

    assert _engine_options("postgresql+psycopg://u@h/db")["connect_args"] == {"connect_timeout": 10}
    assert "connect_args" not in _engine_options("postgresql+psycopg://u@h/db?connect_timeout=3")
