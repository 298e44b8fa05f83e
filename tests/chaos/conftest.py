"""Fixtures of the fault suite (`make chaos`): the scenario's process stack, the peers it breaks,
the platform client, and the reconciliation report each scenario prints and writes to
var/chaos/<scenario>.json.

Scenarios run on SQLite (one file shared by every process, as in the dev stack); the
PostgreSQL scenario brings its own private server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.extensions import db
from app.jobtypes import all_queue_names
from app.services import tenants
from tests.chaos import reconcile
from tests.chaos.peers import ClamdProxy, Receiver, Sink, SlowRouter
from tests.chaos.platform_client import Platform
from tests.chaos.stack import Stack
from tests.conftest import Workers
from tests.fakes.processes import ROOT

REPORT_DIR = ROOT / "var" / "chaos"
ROUTER_PASSWORD = "chaos-r0uter"
_reports: list[dict[str, Any]] = []


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (no parametrisation): each scenario is long enough once."""
    return f"sqlite:///{tmp_path / 'opsdeck.db'}"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "OPSDECK_DISABLED_FAMILIES": ["retention"]}


@pytest.fixture
def stack(app: Flask, workers: Workers) -> Stack:
    return Stack(workers)


@pytest.fixture
def tenant_key(app: Flask) -> tenants.IssuedKey:
    return tenants.create_tenant("chaos")


def platform(stack: Stack, key: tenants.IssuedKey, **options: Any) -> Platform:
    assert stack.url, "start the web process first"
    return Platform(stack.url, key.key_id, key.secret, **options)


def settled(report: Report, stack: Stack, timeout: float) -> None:
    """Wait until every row is final (reconcile.settle) and report how long it took; if it never
    is, the report says what was left (the logs go to stdout, shown with the failure) and the
    reconciliation still runs."""
    try:
        report.add("settled_after_s", round(reconcile.settle(timeout, stack.logs), 1))
    except AssertionError as err:
        first, _, logs = str(err).partition("\n")
        report.problems.append(first)
        print(logs)


def start_all(stack: Stack, key: tenants.IssuedKey, sink: Sink, hooks: Receiver) -> Platform:
    """Web, scheduler and one worker group on every queue; a webhook endpoint at `hooks`/a."""
    stack.env.update(SMTP_PORT=sink.port)
    stack.web()
    stack.scheduler()
    stack.group("workers", all_queue_names(), 4)
    shop = platform(stack, key)
    shop.endpoint(hooks.url("/a"))
    return shop


def reconcile_traffic(
    report: Report,
    shop: Platform,
    sink: Sink,
    hooks: Receiver,
    *,
    resend_window: int = 0,
    resend_allowed: int | None = 0,
) -> None:
    """The ledger, echo jobs, mails and webhooks of a `Traffic` run."""
    problems = report.problems
    report.add(
        "submitted",
        {
            "echo": len(shop.accepted.echo),
            "events": len(shop.accepted.events),
            "mails": len(shop.accepted.mails),
            "answers": dict(shop.accepted.answers),
        },
    )
    report.add("ledger", reconcile.ledger(problems))
    report.add("echo", reconcile.echo(shop.accepted.echo, problems))
    report.add("email", reconcile.email(sink, shop.accepted.mails, problems, resend_window=resend_window))
    report.add("webhooks", reconcile.webhooks(hooks, shop.accepted.events, problems, resend_allowed=resend_allowed))


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink().start()
    yield server
    server.close()


@pytest.fixture
def router() -> Iterator[SlowRouter]:
    with SlowRouter("opsdeck", ROUTER_PASSWORD) as server:
        yield server


@pytest.fixture
def clamd_proxy(clamd_server: Any) -> Iterator[ClamdProxy]:
    proxy = ClamdProxy(clamd_server.socket_path).start()
    yield proxy
    proxy.close()


# -- invariants checked while a scenario runs -----------------------------------------
class Watch(threading.Thread):
    """Checks an invariant every `interval` seconds until stopped, in its own app context (its
    own database session). `check` returns what it found wrong, if anything."""

    def __init__(self, app: Flask, name: str, check: Callable[[], list[str]], interval: float = 0.2) -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.app, self.what, self.check, self.interval = app, name, check, interval
        self.checks = 0
        self.violations: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with self.app.app_context():
            while not self._halt.is_set():
                db.session.rollback()
                self.violations.extend(self.check())
                self.checks += 1
                self._halt.wait(self.interval)
            db.session.remove()

    def stop(self, report: Report) -> dict[str, Any]:
        self._halt.set()
        self.join(30)
        report.problems.extend(f"while running: {v}" for v in dict.fromkeys(self.violations))
        return {"invariant": self.what, "checks": self.checks, "violations": len(self.violations)}


# -- the report -----------------------------------------------------------------------
class Report:
    """What a scenario submitted, what became of it, and the side effects counted."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.began = time.monotonic()
        self.sections: dict[str, Any] = {}
        self.problems: list[str] = []

    def add(self, section: str, data: Any) -> Any:
        self.sections[section] = data
        return data

    def check(self) -> None:
        """Fail with every disagreement found (the report is written either way)."""
        assert not self.problems, f"{len(self.problems)} problem(s):\n" + "\n".join(self.problems[:60])

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "seconds": round(time.monotonic() - self.began, 1),
            "problems": self.problems,
            **self.sections,
        }


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    current = Report(request.node.name)
    yield current
    data = current.as_dict()
    _reports.append(data)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"{request.node.name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _reports:
        return
    terminalreporter.section("chaos: reconciliation")
    for data in _reports:
        terminalreporter.write_line(f"{data['scenario']} ({data['seconds']} s)")
        for key, value in data.items():
            if key == "problems" and len(value) > 10:
                value = [*value[:10], f"… and {len(value) - 10} more"]
            if key not in ("scenario", "seconds"):
                terminalreporter.write_line(f"  {key}: {json.dumps(value, default=str)}")
    terminalreporter.write_line(f"(also in {REPORT_DIR.relative_to(ROOT)}/)")
