"""The scheduler process: `python -m workers.scheduler`.

APScheduler fires each schedule of app/services/scheduler.py's table on its interval; the
service claims the tick in the database first (so a second scheduler started by mistake, or one
per machine, is harmless) and skips a paused schedule. Every process also polls for a "run now"
asked from the schedules page, and beats like a worker for the workers page.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from app.services import scheduler as schedules_service
from app.services import workers
from app.services.scheduler import Schedule, fire, run_requested

log = logging.getLogger("opsdeck.scheduler")


def schedules(app: Flask) -> list[Schedule]:
    """Every periodic trigger (the table lives in app/services/scheduler.py, which the admin
    pages read too)."""
    return schedules_service.table(app)


def build(app: Flask) -> BlockingScheduler:
    process = me()
    who = process.id
    sched = BlockingScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    started = datetime.now(UTC)
    table = schedules(app)
    for schedule in table:
        # First firing at start (its tick is claimed like any other): a restarted scheduler
        # relays and checks the daily runs at once instead of after a whole period.
        sched.add_job(
            fire,
            IntervalTrigger(seconds=schedule.every_seconds),
            args=(app, schedule, who),
            id=schedule.name,
            next_run_time=started,
        )
    sched.add_job(
        run_requested,
        IntervalTrigger(seconds=schedules_service.REQUEST_POLL_SECONDS),
        args=(app, table, who),
        id="scheduler.run_requested",
        next_run_time=started,
    )
    with app.app_context():
        every = workers.interval()
    sched.add_job(
        heartbeat, IntervalTrigger(seconds=every), args=(app, process), id="scheduler.heartbeat", next_run_time=started
    )
    return sched


def me() -> workers.Process:
    """This scheduler process as the workers page shows it."""
    host, pid = socket.gethostname(), os.getpid()
    started = datetime.now(UTC).isoformat()
    return workers.Process(f"{host}:{pid}", host, pid, [], 0, started_at=started, role="scheduler")


def heartbeat(app: Flask, process: workers.Process) -> None:
    with app.app_context():
        process.rss_bytes, process.interval = workers.rss_bytes(), workers.interval()
        try:
            workers.beat(process)
        except Exception as err:  # Redis away: the page shows the process silent meanwhile
            log.warning("scheduler heartbeat failed: %s", err)


def main() -> None:
    from workers import app  # the worker package builds the app, its broker and its logging once

    sched = build(app)
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    log.info("scheduler started: %s", ", ".join(s.name for s in schedules(app)))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        sched.start()
    with app.app_context(), contextlib.suppress(Exception):  # a stopped process leaves the workers page
        workers.gone(me().id)


if __name__ == "__main__":
    main()
