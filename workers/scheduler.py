"""The scheduler process: `python -m workers.scheduler`.

APScheduler fires each schedule of app/services/scheduler.py on its interval; the service
claims the tick in the database first, so a second scheduler started by mistake is harmless.
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

from app.services.scheduler import fire, schedules

log = logging.getLogger("opsdeck.scheduler")


def build(app: Flask) -> BlockingScheduler:
    who = f"{socket.gethostname()}:{os.getpid()}"
    sched = BlockingScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    started = datetime.now(UTC)
    for schedule in schedules(app):
        # First firing at start (its tick is claimed like any other): a restarted scheduler
        # relays and checks the daily runs at once instead of after a whole period.
        sched.add_job(fire, IntervalTrigger(seconds=schedule.every_seconds), args=(app, schedule, who),
                      id=schedule.name, next_run_time=started)  # fmt: skip
    return sched


def main() -> None:
    from workers import app  # the worker package builds the app, its broker and its logging once

    sched = build(app)
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    log.info("scheduler started: %s", ", ".join(s.name for s in schedules(app)))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        sched.start()


if __name__ == "__main__":
    main()
