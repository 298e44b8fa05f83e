"""Scheduler ticks: each (schedule, tick time) is claimed once in the database, so two
scheduler processes started by mistake still run every tick once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import SchedulerTick
from app.models.base import utcnow

#: How long tick rows are kept (the latest per schedule is always kept for catch-up).
TICK_RETENTION = timedelta(days=2)


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
