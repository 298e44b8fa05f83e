"""Readiness: the state of each dependency, and whether this process can serve the API.

The database is the one dependency the web process cannot serve the API without. Redis, clamd
and the SMTP relay being away delays work (the ledger keeps it until they are back); they are
reported, and only the deep check (monitoring) fails on them.

Each check returns None when healthy or a short reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select, text

from app.extensions import db, queue

#: What this process cannot serve the API without: the plain /readyz is 503 only when one is down.
REQUIRED = ("database",)
#: Seconds a probe waits for its peers (asked all at once): a load balancer's probe must not time
#: out because one peer hangs. A peer that has not answered by then is reported down.
PEER_TIMEOUT = 2.0


def check_database() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return None
    except Exception as err:
        db.session.rollback()
        return type(err).__name__


def check_redis() -> str | None:
    queue.redis.ping()
    return None


def check_clamd() -> str | None:
    """clamd answers PING."""
    from app.services.scans import clamav

    config = current_app.config
    try:
        reply = clamav.client(config["CLAMD_URL"], min(config["CLAMD_TIMEOUT"], PEER_TIMEOUT)).ping()
    except clamav.ClamdError as err:
        return err.kind
    return None if reply == "PONG" else "unexpected PING reply"


def check_smtp() -> str | None:
    """The relay greets (220) a new connection."""
    from app.services.email import relay

    relay.greet(min(current_app.config["SMTP_TIMEOUT"], PEER_TIMEOUT))
    return None


def peers(config: Mapping[str, Any]) -> dict[str, Callable[[], str | None]]:
    """The peers this process's families use: clamd unless the scans family is switched off, the
    SMTP relay unless the email family is (or SMTP_HOST is empty)."""
    off = config.get("OPSDECK_DISABLED_FAMILIES", [])
    found: dict[str, Callable[[], str | None]] = {"redis": check_redis}
    if "scans" not in off:
        found["clamd"] = check_clamd
    if "email" not in off and config.get("SMTP_HOST"):
        found["smtp"] = check_smtp
    return found


def ask_all(checks: Mapping[str, Callable[[], str | None]], timeout: float) -> dict[str, str | None]:
    """Run the checks at the same time, each in a thread of its own with the app context. One
    that raises reports its exception's name; one still running after `timeout` seconds is left
    to its own timeout and reported as not answering."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    answers: dict[str, str | None] = {}

    def run(name: str, check: Callable[[], str | None]) -> None:
        with app.app_context():
            try:
                answers[name] = check()
            except Exception as err:
                answers[name] = type(err).__name__

    threads = [
        threading.Thread(target=run, args=item, name=f"readyz-{item[0]}", daemon=True) for item in checks.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: answers.get(name, f"no answer within {timeout:g} s") for name in checks}


#: A deep check runs the canary at most this often; callers in between get its last answer.
DEEP_CACHE_SECONDS = 5
_DEEP_KEY = "opsdeck:readyz:deep"


def check_workers(timeout: float = 5.0) -> str | None:
    """Run a high-priority `system.echo` canary through the whole path (ledger → Redis →
    worker → ledger) and wait for it."""
    from app.models import Job
    from app.services import jobs

    cached = queue.redis.get(_DEEP_KEY)
    if cached is not None:
        text = cached.decode()
        return None if text == "ok" else text
    job = jobs.submit("system.echo", {"message": "readyz"}, priority="high", max_attempts=1)
    db.session.commit()
    deadline = time.monotonic() + timeout
    problem: str | None = f"no worker ran the canary job {job.id} within {timeout:g} s"
    while time.monotonic() < deadline:
        status = db.session.scalar(select(Job.status).where(Job.id == job.id))
        db.session.rollback()
        if status == "succeeded":
            problem = None
            break
        if status in {"dead", "cancelled"}:
            problem = f"canary job {job.id} is {status}"
            break
        time.sleep(0.05)
    queue.redis.set(_DEEP_KEY, problem or "ok", ex=DEEP_CACHE_SECONDS)
    return problem


@dataclass(frozen=True)
class Readiness:
    #: {"database": "ok", "redis": "down: ConnectionError", …}
    checks: dict[str, str]

    @property
    def down(self) -> list[str]:
        return sorted(name for name, state in self.checks.items() if state != "ok")

    @property
    def status(self) -> str:
        """`unavailable` (a REQUIRED dependency is down), `degraded` (another is) or `ok`."""
        down = self.down
        return "unavailable" if any(name in down for name in REQUIRED) else "degraded" if down else "ok"


def readiness(deep: bool = False) -> Readiness:
    """Every dependency's state; with deep, a canary job through the workers too ("workers")."""
    # The database is asked in this thread, bound by its own timeouts only: it decides the answer.
    answers = {"database": check_database(), **ask_all(peers(current_app.config), PEER_TIMEOUT)}
    checks = {name: "ok" if problem is None else f"down: {problem}" for name, problem in answers.items()}
    if deep:
        if checks["database"] != "ok" or checks["redis"] != "ok":  # the canary needs both
            checks["workers"] = "unknown: the database or Redis is down"
        else:
            problem = check_workers()
            checks["workers"] = "ok" if problem is None else f"down: {problem}"
    return Readiness(checks)
