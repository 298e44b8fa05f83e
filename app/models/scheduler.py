"""Scheduler ticks and schedule states.

A (schedule, tick time) row exists once, so a tick runs once; the row is also the run's record
(start, finish, outcome). A schedule's state row (paused, a run asked for) is read by every
scheduler process at each firing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Model, UTCDateTime, utcnow


class SchedulerTick(Model):
    __tablename__ = "scheduler_ticks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    tick_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_by: Mapped[str] = mapped_column(String(120))
    #: running, succeeded or failed.
    status: Mapped[str] = mapped_column(String(20), default="running", server_default=text("'succeeded'"))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(String(500))
    #: Asked for from the schedules page ("run now"), not fired by the interval.
    manual: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    @property
    def duration_seconds(self) -> float | None:
        return (self.finished_at - self.claimed_at).total_seconds() if self.finished_at else None


class ScheduleState(Model):
    """What operators decided about a schedule. No row: running, nothing asked."""

    __tablename__ = "schedule_states"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    changed_by: Mapped[str | None] = mapped_column(String(200))
    run_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_requested_by: Mapped[str | None] = mapped_column(String(200))
