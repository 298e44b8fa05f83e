"""Periodic schedules and their ticks.

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


def schedules(app: Flask) -> list[Schedule]:
    """Every periodic trigger; families add theirs here."""
    from app.services import retention, stats
    from app.services.email import batches
    from app.services.jobs import maintenance
    from app.services.provisioning import payments, routers, subscriptions
    from app.services.scans import signatures
    from app.services.webhooks import delivery

    return [
        Schedule("webhooks.settle", 60, run=delivery.settle_orphans),
        Schedule("retention.check", 60, run=retention.due_daily),
        Schedule("email.kick", app.config["EMAIL_DELAY"], run=batches.kick_if_due),
        Schedule("outbox.relay", app.config["OUTBOX_RELAY_INTERVAL"], run=maintenance.relay_tick),
        Schedule("scheduler.prune_ticks", 3600, run=prune_ticks),
        Schedule("stats.rollup", 60, run=stats.rollup),
        Schedule("scans.signatures", app.config["SCAN_SIGNATURE_CHECK_SECONDS"], run=signatures.check),
        Schedule("provisioning.expiry", app.config["EXPIRY_CHECK_SECONDS"], run=subscriptions.expire_due),
        Schedule("routers.check", app.config["ROUTER_CHECK_SECONDS"], run=routers.queue_checks),
        Schedule("payments.match", 60, run=payments.match_unmatched),
    ]


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
    return result.rowcount
