"""The scheduler process: `python -m workers.scheduler`.

`schedules` is the table of periodic work. APScheduler fires each schedule on its interval;
app/services/scheduler.py claims the tick in the database first, so a second scheduler started
by mistake is harmless.
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

from app.services import scheduler as ticks
from app.services.scheduler import Schedule, fire

log = logging.getLogger("opsdeck.scheduler")


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
        Schedule("scheduler.prune_ticks", 3600, run=ticks.prune_ticks),
        Schedule("stats.rollup", 60, run=stats.rollup),
        Schedule("scans.signatures", app.config["SCAN_SIGNATURE_CHECK_SECONDS"], run=signatures.check),
        Schedule("provisioning.expiry", app.config["EXPIRY_CHECK_SECONDS"], run=subscriptions.expire_due),
        Schedule("routers.check", app.config["ROUTER_CHECK_SECONDS"], run=routers.queue_checks),
        Schedule("payments.match", 60, run=payments.match_unmatched),
    ]


def build(app: Flask) -> BlockingScheduler:
    who = f"{socket.gethostname()}:{os.getpid()}"
    sched = BlockingScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    started = datetime.now(UTC)
    for schedule in schedules(app):
        # First firing at start (its tick is claimed like any other): a restarted scheduler
        # relays and checks the daily runs at once instead of after a whole period.
        sched.add_job(
            fire,
            IntervalTrigger(seconds=schedule.every_seconds),
            args=(app, schedule, who),
            id=schedule.name,
            next_run_time=started,
        )
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
