"""Periodic schedules and their ticks (the table of schedules is the scheduler process's:
workers/scheduler.py).

Every firing first claims its tick in the database, so a restart or a second scheduler never
runs a tick twice. Most schedules submit a job through the ledger; the outbox relay runs
inline in the scheduler process, because it is what moves ledger rows into Redis.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import SchedulerTick
from app.models.base import utcnow

log = logging.getLogger("opsdeck.scheduler")

#: How long tick rows are kept (the latest per schedule is always kept).
TICK_RETENTION = timedelta(days=2)


@dataclass(frozen=True)
class Schedule:
    """A periodic trigger. `run` is called inline; or `job_type` is submitted as a job."""

    name: str
    every_seconds: float
    run: Callable[[], Any] | None = None
    job_type: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def tick_time(every_seconds: float, now: float) -> datetime:
    """The tick a firing belongs to: time floored to the schedule's period."""
    return datetime.fromtimestamp(math.floor(now / every_seconds) * every_seconds, UTC)


def fire(app: Flask, schedule: Schedule, who: str, now: float | None = None) -> bool:
    """Claim this tick and run it. True when this process claimed it."""
    from app.services import jobs

    at = tick_time(schedule.every_seconds, time.time() if now is None else now)
    with app.app_context():
        try:
            if not claim_tick(schedule.name, at, who):
                return False
            if schedule.run is not None:
                outcome = schedule.run()
            else:
                job = jobs.submit(schedule.job_type or "", schedule.payload)
                db.session.commit()
                outcome = {"job": job.id}
            if outcome:
                log.debug("tick %s %s: %s", schedule.name, at.isoformat(), outcome)
        except Exception:
            db.session.rollback()
            log.exception("schedule %s failed at tick %s", schedule.name, at.isoformat())
        return True


def claim_tick(name: str, tick_at: datetime, claimed_by: str) -> bool:
    """True for exactly one caller per (name, tick_at)."""
    db.session.add(SchedulerTick(name=name, tick_at=tick_at, claimed_by=claimed_by))
    try:
        db.session.commit()
        return True
    except IntegrityError:
        db.session.rollback()
        return False


def last_tick(name: str) -> datetime | None:
    return db.session.scalar(select(func.max(SchedulerTick.tick_at)).where(SchedulerTick.name == name))


def prune_ticks() -> int:
    cutoff = utcnow() - TICK_RETENTION
    latest = (
        select(SchedulerTick.name, func.max(SchedulerTick.tick_at).label("latest"))
        .group_by(SchedulerTick.name)
        .subquery()
    )
    keep = select(latest.c.latest).where(latest.c.name == SchedulerTick.name).scalar_subquery()
    result = db.session.execute(
        delete(SchedulerTick).where(SchedulerTick.tick_at < cutoff, SchedulerTick.tick_at != keep)
    )
    db.session.commit()
    return result.rowcount  # type: ignore[attr-defined]  # a DML statement's Result is a CursorResult
