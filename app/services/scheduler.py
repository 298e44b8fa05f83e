"""Periodic schedules: the table, their ticks and runs, pause/resume and run now.

Every firing first claims its tick in the database, so a restart or a second scheduler never
runs a tick twice; the tick row then records the run (start, finish, outcome). Pausing and
"run now" are rows of their own (schedule_states), read by every scheduler process, so they hold
however many schedulers run on however many machines. Most schedules submit a job through the
ledger; the outbox relay runs inline in the scheduler process, because it is what moves ledger
rows into Redis.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from app.db.statements import conflict_insert, core_execute
from app.extensions import db
from app.models import SchedulerTick, ScheduleState
from app.models.base import utcnow
from app.services import audit

log = logging.getLogger("opsdeck.scheduler")

#: How long tick rows are kept (the latest per schedule is always kept).
TICK_RETENTION = timedelta(days=2)
#: How often each scheduler process looks for a "run now" asked from the schedules page.
REQUEST_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Schedule:
    """A periodic trigger. `run` is called inline; or `job_type` is submitted as a job."""

    name: str
    every_seconds: float
    run: Callable[[], Any] | None = None
    job_type: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    #: What it does, in a few words, for the schedules page.
    description: str = ""


def table(app: Flask) -> list[Schedule]:
    """Every periodic trigger the scheduler process fires; families add theirs here."""
    from app.services import alerts, retention, stats
    from app.services.email import batches
    from app.services.jobs import maintenance
    from app.services.provisioning import payments, routers, subscriptions
    from app.services.scans import signatures
    from app.services.webhooks import delivery

    config = app.config
    return [
        Schedule(
            "outbox.relay",
            config["OUTBOX_RELAY_INTERVAL"],
            maintenance.relay_tick,
            description="publish ledger jobs still pending to Redis; recover expired leases",
        ),
        Schedule(
            "email.kick", config["EMAIL_DELAY"], batches.kick_if_due, description="queue a batch flush when mail is due"
        ),
        Schedule(
            "retention.check",
            60,
            retention.due_daily,
            description=f"queue the daily retention run at {config['RETENTION_AT']} UTC",
        ),
        Schedule(
            "webhooks.settle",
            60,
            delivery.settle_orphans,
            description="settle deliveries whose job ended without recording them",
        ),
        Schedule(
            "routers.check",
            config["ROUTER_CHECK_SECONDS"],
            routers.queue_checks,
            description="queue a reachability check of every router",
        ),
        Schedule(
            "provisioning.expiry",
            config["EXPIRY_CHECK_SECONDS"],
            subscriptions.expire_due,
            description="expire subscriptions past their end",
        ),
        Schedule(
            "payments.match",
            60,
            payments.match_unmatched,
            description="match kept M-Pesa callbacks to payments registered since",
        ),
        Schedule(
            "scans.signatures",
            config["SCAN_SIGNATURE_CHECK_SECONDS"],
            signatures.check,
            description="record clamd's signature version; rescan when it changes",
        ),
        Schedule(
            "queues.long_wait",
            config["QUEUE_LONG_WAIT_CHECK_SECONDS"],
            alerts.check,
            description="alert when a queue's oldest waiting job waits too long",
        ),
        Schedule("stats.rollup", 60, stats.rollup, description="copy throughput counters into the database"),
        Schedule("scheduler.prune_ticks", 3600, prune_ticks, description="forget runs older than two days"),
    ]


def tick_time(every_seconds: float, now: float) -> datetime:
    """The tick a firing belongs to: time floored to the schedule's period."""
    return datetime.fromtimestamp(math.floor(now / every_seconds) * every_seconds, UTC)


def fire(app: Flask, schedule: Schedule, who: str, now: float | None = None) -> bool:
    """Claim this tick and run it, unless the schedule is paused. True when this process ran it."""
    at = tick_time(schedule.every_seconds, time.time() if now is None else now)
    with app.app_context():
        try:
            paused = db.session.scalar(select(ScheduleState.paused).where(ScheduleState.name == schedule.name))
            db.session.rollback()
            if paused or not claim_tick(schedule.name, at, who):
                return False
        except Exception:
            db.session.rollback()
            log.exception("schedule %s: could not read its state or claim its tick; not fired", schedule.name)
            return False
        _run(schedule, at)
        return True


def _run(schedule: Schedule, at: datetime) -> None:
    """Run a claimed tick and record its outcome on the tick row."""
    from app.services import jobs

    status, error = "succeeded", None
    try:
        if schedule.run is not None:
            outcome = schedule.run()
        else:
            job = jobs.submit(schedule.job_type or "", schedule.payload)
            db.session.commit()
            outcome = {"job": job.id}
        if outcome:
            log.debug("tick %s %s: %s", schedule.name, at.isoformat(), outcome)
    except Exception as err:
        db.session.rollback()
        status, error = "failed", f"{type(err).__name__}: {err}"[:500]
        log.exception("schedule %s failed at tick %s", schedule.name, at.isoformat())
    try:
        db.session.execute(
            update(SchedulerTick)
            .where(SchedulerTick.name == schedule.name, SchedulerTick.tick_at == at)
            .values(status=status, error=error, finished_at=utcnow())
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("schedule %s: outcome of tick %s not recorded", schedule.name, at.isoformat())


def claim_tick(name: str, tick_at: datetime, claimed_by: str, *, manual: bool = False) -> bool:
    """True for exactly one caller per (name, tick_at)."""
    db.session.add(SchedulerTick(name=name, tick_at=tick_at, claimed_by=claimed_by, manual=manual))
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


# -- operators' decisions ------------------------------------------------------------------
class UnknownSchedule(LookupError):
    pass


def _state(name: str, known: Iterable[str]) -> ScheduleState:
    if name not in set(known):
        raise UnknownSchedule(name)
    # Inserted if missing without a race: two admins' first clicks both find the row.
    core_execute(conflict_insert(ScheduleState).values(name=name, paused=False).on_conflict_do_nothing())
    state = db.session.get(ScheduleState, name, populate_existing=True)
    assert state is not None
    return state


def set_paused(name: str, paused: bool, *, actor: str, known: Iterable[str]) -> bool:
    """Pause or resume a schedule (audited; commits). False when it already was so."""
    state = _state(name, known)
    if bool(state.paused) == paused:
        db.session.rollback()
        return False
    state.paused, state.changed_at, state.changed_by = paused, utcnow(), actor
    audit.record(actor, "schedule.paused" if paused else "schedule.resumed", target=name)
    db.session.commit()
    return True


def request_run(name: str, *, actor: str, known: Iterable[str]) -> None:
    """Ask the schedulers to run a schedule once now, paused or not (audited; commits). The
    first scheduler process to see the request runs it, within REQUEST_POLL_SECONDS."""
    state = _state(name, known)
    state.run_requested_at, state.run_requested_by = utcnow(), actor
    audit.record(actor, "schedule.run_now", target=name)
    db.session.commit()


def run_requested(app: Flask, schedules: list[Schedule], who: str) -> list[str]:
    """In each scheduler process, every REQUEST_POLL_SECONDS: run the schedules asked for. A
    request is taken by the one process whose UPDATE clears it. Returns the names run here."""
    by_name = {s.name: s for s in schedules}
    ran = []
    with app.app_context():
        asked = db.session.scalars(select(ScheduleState.name).where(ScheduleState.run_requested_at.is_not(None))).all()
        db.session.rollback()
        for name in asked:
            taken = db.session.execute(
                update(ScheduleState)
                .where(ScheduleState.name == name, ScheduleState.run_requested_at.is_not(None))
                .values(run_requested_at=None, run_requested_by=None)
            )
            db.session.commit()
            schedule = by_name.get(name)
            if not taken.rowcount or schedule is None:  # type: ignore[attr-defined]
                continue
            at = utcnow()
            if claim_tick(name, at, who, manual=True):
                _run(schedule, at)
                ran.append(name)
    return ran


# -- the schedules page ----------------------------------------------------------------------
@dataclass
class ScheduleView:
    schedule: Schedule
    paused: bool = False
    changed_by: str | None = None
    changed_at: datetime | None = None
    run_requested_at: datetime | None = None
    last: SchedulerTick | None = None

    @property
    def next_run(self) -> datetime | None:
        """When the next interval firing is due: a period after the last run started (None:
        paused, or never run: at the scheduler's start)."""
        if self.paused or self.last is None:
            return None
        return self.last.claimed_at + timedelta(seconds=self.schedule.every_seconds)

    @property
    def overdue(self) -> bool:
        """Two periods (and a minute) late: no scheduler process is firing it."""
        due = self.next_run
        return due is not None and utcnow() - due > timedelta(seconds=self.schedule.every_seconds + 60)


def overview(schedules: list[Schedule]) -> list[ScheduleView]:
    """Every schedule with its state and its latest run (two queries)."""
    states = {s.name: s for s in db.session.scalars(select(ScheduleState))}
    latest = (
        select(SchedulerTick.name, func.max(SchedulerTick.claimed_at).label("at"))
        .group_by(SchedulerTick.name)
        .subquery()
    )
    last = {
        t.name: t
        for t in db.session.scalars(
            select(SchedulerTick).join(
                latest, (latest.c.name == SchedulerTick.name) & (latest.c.at == SchedulerTick.claimed_at)
            )
        )
    }
    views = []
    for schedule in schedules:
        state = states.get(schedule.name)
        view = ScheduleView(schedule, last=last.get(schedule.name))
        if state is not None:
            view.paused, view.changed_by, view.changed_at = state.paused, state.changed_by, state.changed_at
            view.run_requested_at = state.run_requested_at
        views.append(view)
    db.session.rollback()
    return views


def recent_runs(name: str, limit: int = 20) -> list[SchedulerTick]:
    return list(
        db.session.scalars(
            select(SchedulerTick)
            .where(SchedulerTick.name == name)
            .order_by(SchedulerTick.claimed_at.desc())
            .limit(limit)
        )
    )
