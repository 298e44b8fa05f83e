"""The scheduler process: `python -m workers.scheduler`.

APScheduler fires triggers in this process; every firing first claims its tick in the
database (services/scheduler.py), so a restart or a second scheduler never runs a tick twice.
Most schedules submit a job through the ledger; the outbox relay runs here inline, because it
is what moves ledger rows into Redis (it must work while the queue does not).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from app.extensions import db
from app.services import jobs, maintenance
from app.services import scheduler as ticks

log = logging.getLogger("opsdeck.scheduler")


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
    return [
        Schedule("outbox.relay", app.config["OUTBOX_RELAY_INTERVAL"], run=maintenance.relay_tick),
        Schedule("scheduler.prune_ticks", 3600, run=ticks.prune_ticks),
    ]


def tick_time(every_seconds: float, now: float) -> datetime:
    """The tick a firing belongs to: time floored to the schedule's period."""
    return datetime.fromtimestamp(math.floor(now / every_seconds) * every_seconds, UTC)


def fire(app: Flask, schedule: Schedule, who: str, now: float | None = None) -> bool:
    """Claim this tick and run it. True when this process ran it."""
    import time

    at = tick_time(schedule.every_seconds, time.time() if now is None else now)
    with app.app_context():
        try:
            if not ticks.claim_tick(schedule.name, at, who):
                return False
            if schedule.run is not None:
                outcome = schedule.run()
            else:
                job = jobs.submit(schedule.job_type or "", schedule.payload)
                db.session.commit()
                outcome = {"job": job.id}
            if outcome:
                log.debug("tick %s %s: %s", schedule.name, at.isoformat(), outcome)
            return True
        except Exception:
            db.session.rollback()
            log.exception("schedule %s failed at tick %s", schedule.name, at.isoformat())
            return True


def build(app: Flask) -> BlockingScheduler:
    who = f"{socket.gethostname()}:{os.getpid()}"
    sched = BlockingScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    for schedule in schedules(app):
        sched.add_job(
            fire, IntervalTrigger(seconds=schedule.every_seconds), args=(app, schedule, who), id=schedule.name
        )
    return sched


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from workers import app  # the worker package builds the app and its broker once

    sched = build(app)
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    log.info("scheduler started: %s", ", ".join(s.name for s in schedules(app)))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        sched.start()


if __name__ == "__main__":
    main()
