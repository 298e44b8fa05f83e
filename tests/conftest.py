"""Fixtures: a private Redis, SQLite always and PostgreSQL when reachable, the app, signed
API clients, and worker processes."""

from __future__ import annotations

import contextvars
import json as jsonlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from opsdeck_client import signature
from sqlalchemy import text

from app import create_app
from app.config import SETTINGS, TestConfig
from app.extensions import db
from app.services import tenants, users
from tests.fakes.clamav import ClamdServer
from tests.fakes.http_receiver import HttpReceiver
from tests.fakes.processes import Process, RedisServer, worker_command
from tests.fakes.s3 import MotoServer, ScanStorage
from tests.fakes.smtp_sink import SmtpSink
from tests.helpers import PASSWORD, login

ENCRYPTION_KEY = Fernet.generate_key().decode()
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
#: Every variable Opsdeck (or gunicorn, Dramatiq, the dev stack) reads, except the suite's own
#: (TEST_DATABASE_URL): none may reach what the tests run.
APP_SETTINGS = frozenset(s.name for s in SETTINGS if s.read_by != "the tests")
APP_PREFIXES = ("DATABASE_", "REDIS_", "OPSDECK_", "SENTRY_")
#: Where scan files live, handed to every process a test starts.
STORAGE_SETTINGS = (
    "SCAN_STORAGE_URL",
    "SCAN_QUARANTINE_URL",
    "S3_ENDPOINT_URL",
    "S3_REGION",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
)


def app_variable(name: str) -> bool:
    return name in APP_SETTINGS or name.startswith(APP_PREFIXES)


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs as a process under test: no `.env` is read (app/config/) and no setting
    of the shell's environment is seen, here or in the processes the tests start (process_env).
    The suite's own knobs (OPSDECK_SCREENSHOTS, TEST_DATABASE_URL) stay."""
    for name in APP_SETTINGS & set(os.environ):
        del os.environ[name]
    os.environ["OPSDECK_ENV"] = "test"
    config.addinivalue_line("markers", "both_storages: run each test on the file and the S3 scan storage")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `both_storages` (or in a module so marked) runs once per storage backend."""
    chosen = any("scan_storage" in m.args[0] for m in metafunc.definition.iter_markers("parametrize"))
    if (
        "scan_storage" in metafunc.fixturenames
        and metafunc.definition.get_closest_marker("both_storages")
        and not chosen
    ):
        metafunc.parametrize("scan_storage", ["file", "s3"], indirect=True)


# -- real peers ---------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def clamd_server() -> Iterator[ClamdServer]:
    """One real clamd for the session (tests that change or stop clamd start their own)."""
    server = ClamdServer().start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """An S3-compatible store (moto's server) for the session, started by the first S3 test."""
    server = MotoServer().start()
    yield server
    server.close()


@pytest.fixture
def scan_storage(request: pytest.FixtureRequest, tmp_path: Path) -> ScanStorage:
    """The test's scan storage: two directories, or (for `both_storages` tests) a fresh bucket."""
    backend = getattr(request, "param", "file")
    return ScanStorage.make(backend, tmp_path, request.getfixturevalue("s3_server") if backend == "s3" else None)


def _pg_admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this run (dropped at the end), or None when unreachable."""
    import psycopg

    admin = _pg_admin_url()
    try:
        conn = psycopg.connect(admin, connect_timeout=3, autocommit=True)
    except psycopg.Error:
        yield None
        return
    name = f"opsdeck_test_{uuid.uuid4().hex[:10]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, pg_database: str | None) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opsdeck.db'}"
    if pg_database is None:
        pytest.skip(f"PostgreSQL not reachable at {_pg_admin_url()} (set TEST_DATABASE_URL)")
    return pg_database


def make_config(database_url: str, redis_url: str, **overrides: Any) -> TestConfig:
    from app.config import _normalise_db_url

    settings = {"REDIS_URL": redis_url, "OPSDECK_ENCRYPTION_KEYS": [ENCRYPTION_KEY], **overrides}
    return TestConfig(SQLALCHEMY_DATABASE_URI=_normalise_db_url(database_url), **settings)


def _reset(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            with db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} CASCADE"))
        db.engine.dispose()


@pytest.fixture
def app_config(database_url: str, redis_server: RedisServer) -> dict[str, Any]:
    """Overrides a test may edit before `app` is built."""
    return {}


class IsolatedClient(FlaskClient):
    """Each request in its own app context, as in production. (The test keeps an app context
    pushed for its own database work; Flask would otherwise reuse it for requests, sharing
    `g` and the database session between them.)"""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture
def app(
    database_url: str,
    redis_server: RedisServer,
    clamd_server: ClamdServer,
    app_config: dict[str, Any],
    scan_storage: ScanStorage,
) -> Iterator[Flask]:
    files = {"CLAMD_URL": clamd_server.url, **scan_storage.settings}
    app = create_app(make_config(database_url, redis_server.url, **{**files, **app_config}))
    app.test_client_class = IsolatedClient
    with app.app_context():
        db.create_all()
        db.session.commit()
    ctx = app.app_context()
    ctx.push()
    try:
        yield app
    finally:
        ctx.pop()
        _reset(app)
        import redis

        redis.Redis.from_url(redis_server.url).flushall()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and start."""
    server = RedisServer().start()
    yield server
    server.close()


# -- API ------------------------------------------------------------------------
class SignedClient:
    """The Flask test client, signing like the Python client (opsdeck_client) does (or wrongly, when asked)."""

    def __init__(self, app: Flask, key_id: str, secret: str) -> None:
        self.client = app.test_client()
        self.key_id, self.secret = key_id, secret
        self._used: set[tuple[str, ...]] = set()

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        sign_method: str | None = None,
        sign_path: str | None = None,
        sign_body: bytes | None = None,
        secret: str | None = None,
        key_id: str | None = None,
    ) -> Any:
        body = data if data is not None else (b"" if json is None else jsonlib.dumps(json).encode())
        if timestamp is None:
            # An identical request in the same second is the same request sent again (answered
            # from the first); step back a second so that each call is a request of its own.
            timestamp = int(time.time())
            while (method, path, body.hex(), str(timestamp)) in self._used:
                timestamp -= 1
        self._used.add((method, path, body.hex(), str(timestamp)))
        ts = str(timestamp)
        sig = signature(
            secret or self.secret,
            ts,
            sign_method or method,
            sign_path or path,
            body if sign_body is None else sign_body,
        )
        all_headers = {
            "Opsdeck-Key": key_id or self.key_id,
            "Opsdeck-Timestamp": ts,
            "Opsdeck-Signature": f"v1={sig}",
        }
        if body:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        return self.client.open(path, method=method, data=body, headers=all_headers)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json, **kw)

    def upload(self, path: str, filename: str, content: bytes, *, field: str = "file", **kw: Any) -> Any:
        """POST a multipart/form-data body with one file, signed like any other body."""
        from urllib3 import encode_multipart_formdata

        body, content_type = encode_multipart_formdata({field: (filename, content)})
        headers = {"Content-Type": content_type, **kw.pop("headers", {})}
        return self.request("POST", path, data=body, headers=headers, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", path, json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def tenant(app: Flask) -> tenants.IssuedKey:
    return tenants.create_tenant("acme")


@pytest.fixture
def api(app: Flask, tenant: tenants.IssuedKey) -> SignedClient:
    return SignedClient(app, tenant.key_id, tenant.secret)


@pytest.fixture
def other_api(app: Flask) -> SignedClient:
    issued = tenants.create_tenant("globex")
    return SignedClient(app, issued.key_id, issued.secret)


# -- processes --------------------------------------------------------------------
def process_env(app: Flask, **extra: Any) -> dict[str, str]:
    """Environment for a worker/scheduler/web process sharing this test's database and Redis."""
    env = {k: v for k, v in os.environ.items() if not app_variable(k)}
    env.update(
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"],
        CLAMD_URL=app.config["CLAMD_URL"],
        **{name: app.config[name] for name in STORAGE_SETTINGS},
        PROMETHEUS_MULTIPROC_DIR=app.config["PROMETHEUS_MULTIPROC_DIR"],
        SECRET_KEY="test-secret-key",
        OPSDECK_ENCRYPTION_KEYS=ENCRYPTION_KEY,
        OPSDECK_ENV="test",
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Workers:
    """Start worker groups and schedulers for one test; everything is stopped afterwards."""

    def __init__(self, app: Flask, log_dir: Path) -> None:
        self.app, self.log_dir = app, log_dir
        self.started: list[Process] = []

    def start(self, queues: list[str] | None = None, *, name: str = "worker", threads: int = 4, **env: Any) -> Process:
        from app.jobtypes import all_queue_names

        proc = Process(
            worker_command(queues or all_queue_names(), 1, threads), process_env(self.app, **env), name, self.log_dir
        )
        self.started.append(proc.start())
        return proc

    def start_scheduler(self, *, name: str = "scheduler", **env: Any) -> Process:
        from tests.fakes.processes import scheduler_command

        proc = Process(scheduler_command(), process_env(self.app, **env), name, self.log_dir)
        self.started.append(proc.start())
        return proc

    def start_web(self, *, name: str = "web", port: int | None = None, **env: Any) -> str:
        """The production web command on a (free) port; returns its base URL once it answers."""
        from tests.fakes.processes import free_port, wait_for_web, web_command

        port = port or free_port()
        proc = Process(web_command(port), process_env(self.app, **env), name, self.log_dir)
        self.started.append(proc.start())
        return wait_for_web(proc, port)

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-4000:]}" for p in self.started)


@pytest.fixture
def workers(app: Flask, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(app, tmp_path)
    yield group
    group.stop_all()


# -- admin users and their logged-in clients ------------------------------------
@pytest.fixture
def admin_user(app):
    return users.create_user("admin@example.com", PASSWORD, "admin")


@pytest.fixture
def viewer_user(app):
    return users.create_user("viewer@example.com", PASSWORD, "viewer")


@pytest.fixture
def admin(app, admin_user):
    client = app.test_client()
    assert login(client, admin_user.email).status_code == 302
    return client


@pytest.fixture
def viewer(app, viewer_user):
    client = app.test_client()
    assert login(client, viewer_user.email).status_code == 302
    return client


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """The mail relay: a real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    server = SmtpSink().start()
    yield server
    server.close()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A customer's webhook endpoint: a real HTTP server on loopback."""
    server = HttpReceiver().start()
    yield server
    server.close()
