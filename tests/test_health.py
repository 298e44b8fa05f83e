"""/readyz with real peers: 200 while this process can serve the API (its database answers),
with every dependency's state; 503 only when the database does not answer. `?deep=1` (for
monitoring) is 503 when anything is down."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from app import create_app
from app.services import health
from tests.conftest import make_config
from tests.fakes.clamav import ClamdServer
from tests.fakes.processes import free_port


@pytest.fixture
def own_clamd() -> Iterator[ClamdServer]:
    server = ClamdServer().start()
    yield server
    server.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never says a word (a hung daemon, a stuck proxy): the
    kernel completes each handshake for the listening socket, nobody reads or writes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def ready(app, deep: bool = False):
    response = app.test_client().get("/readyz?deep=1" if deep else "/readyz")
    return response.status_code, response.get_json()


def test_every_dependency_answering_is_ok(app, sink):
    app.config["SMTP_PORT"] = sink.port
    assert ready(app) == (200, {"status": "ok", "checks": dict.fromkeys(("clamd", "database", "redis", "smtp"), "ok")})


def test_clamd_stopped_leaves_the_process_ready_and_degraded(app, own_clamd, sink):
    """The web process does not need clamd (uploads wait in the ledger): a load balancer must
    keep sending it requests."""
    app.config.update(CLAMD_URL=own_clamd.url, SMTP_PORT=sink.port)
    assert ready(app)[1]["checks"]["clamd"] == "ok"
    own_clamd.stop()
    status, body = ready(app)
    assert status == 200, body
    assert body["status"] == "degraded" and body["down"] == ["clamd"]
    assert body["checks"] == {"database": "ok", "redis": "ok", "clamd": "down: unavailable", "smtp": "ok"}


def test_unreachable_clamd_and_smtp_addresses_are_degraded(app):
    app.config.update(CLAMD_URL=f"tcp://127.0.0.1:{free_port()}", SMTP_PORT=free_port())  # nobody listens
    status, body = ready(app)
    assert status == 200 and body["status"] == "degraded" and body["down"] == ["clamd", "smtp"], body
    assert body["checks"]["clamd"] == "down: unavailable"
    assert body["checks"]["smtp"] == "down: ConnectionRefusedError"


def test_peers_that_never_answer_are_down_within_the_probe_timeout(app, silent_port, monkeypatch):
    """A hung clamd and a relay that never greets are asked at the same time, and the answer
    comes when the probe's timeout has passed, not one timeout per peer."""
    monkeypatch.setattr(health, "PEER_TIMEOUT", 0.5)
    app.config.update(CLAMD_URL=f"tcp://127.0.0.1:{silent_port}", SMTP_PORT=silent_port)
    started = time.monotonic()
    status, body = ready(app)
    elapsed = time.monotonic() - started
    assert status == 200 and body["down"] == ["clamd", "smtp"], body
    assert 0.5 <= elapsed < 0.95, elapsed


def test_switched_off_families_peers_are_not_checked(app):
    app.config["OPSDECK_DISABLED_FAMILIES"] = ["email", "scans"]
    app.config["CLAMD_URL"] = f"tcp://127.0.0.1:{free_port()}"
    assert ready(app) == (200, {"status": "ok", "checks": {"database": "ok", "redis": "ok"}})


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_a_database_that_does_not_answer_is_unavailable(redis_server, tmp_path, kind):
    """The one 503 of the plain probe. PostgreSQL: a server address nobody listens on (what a
    stopped server looks like); SQLite: a file that cannot be opened."""
    url = (
        f"postgresql://postgres@127.0.0.1:{free_port()}/test"
        if kind == "postgresql"
        else f"sqlite:///{tmp_path / 'missing-dir' / 'opsdeck.db'}"
    )
    app = create_app(make_config(url, redis_server.url, OPSDECK_DISABLED_FAMILIES=["email", "scans"]))
    with app.app_context():
        status, body = ready(app)
        assert status == 503 and body["status"] == "unavailable" and body["down"] == ["database"], body
        assert body["checks"]["redis"] == "ok"
        status, body = ready(app, deep=True)
        assert status == 503 and body["checks"]["workers"] == "unknown: the database or Redis is down", body


@pytest.mark.slow
def test_deep_is_unavailable_while_any_dependency_is_down(app, own_clamd, sink, workers):
    """The canary job runs (database, Redis and a worker are there), and the deep probe still
    fails on the stopped clamd: it is for monitoring."""
    from app.jobtypes import all_queue_names

    app.config.update(CLAMD_URL=own_clamd.url, SMTP_PORT=sink.port)
    worker = workers.start([name for name in all_queue_names() if name.endswith("_high")], name="high")
    worker.wait_for_log("Worker process is ready for action")
    own_clamd.stop()
    status, body = ready(app, deep=True)
    assert status == 503 and body["down"] == ["clamd"], body
    assert body["status"] == "degraded" and body["checks"]["workers"] == "ok"
