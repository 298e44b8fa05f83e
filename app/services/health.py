"""Readiness checks: each returns None when healthy or a short reason."""

from __future__ import annotations

import time

from sqlalchemy import select, text

from app.extensions import db, queue


def check_database() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return None
    except Exception as err:
        db.session.rollback()
        return type(err).__name__


def check_redis() -> str | None:
    try:
        queue.redis.ping()
        return None
    except Exception as err:
        return type(err).__name__


def check_clamd() -> str | None:
    """clamd answers PING (skipped when the scans family is switched off)."""
    from flask import current_app

    from app.services.scans import clamav

    config = current_app.config
    if "scans" in config.get("OPSDECK_DISABLED_FAMILIES", []):
        return None
    try:
        reply = clamav.client(config["CLAMD_URL"], min(config["CLAMD_TIMEOUT"], 2.0)).ping()
    except clamav.ClamdError as err:
        return err.kind
    return None if reply == "PONG" else "unexpected PING reply"


CHECKS = {"database": check_database, "redis": check_redis, "clamd": check_clamd}

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


def readiness(deep: bool = False) -> dict[str, str]:
    """{"database": "ok", "redis": "down: ConnectionError", …}; with deep, "workers" too."""
    report = {}
    for name, check in CHECKS.items():
        problem = check()
        report[name] = "ok" if problem is None else f"down: {problem}"
    if deep:
        if any(state != "ok" for state in report.values()):
            report["workers"] = "unknown: database or redis down"
        else:
            problem = check_workers()
            report["workers"] = "ok" if problem is None else f"down: {problem}"
    return report
