"""Readiness checks: each returns None when healthy or a short reason."""

from __future__ import annotations

from sqlalchemy import text

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


CHECKS = {"database": check_database, "redis": check_redis}


def readiness() -> dict[str, str]:
    """{"database": "ok", "redis": "down: ConnectionError", …}"""
    report = {}
    for name, check in CHECKS.items():
        problem = check()
        report[name] = "ok" if problem is None else f"down: {problem}"
    return report
