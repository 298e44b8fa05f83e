"""The scheduler: every tick runs once, however many schedulers fire it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from app.extensions import db
from app.models import SchedulerTick
from app.services import scheduler as ticks
from app.services.scheduler import Schedule, fire, tick_time
from tests.fakes.processes import wait_until
from tests.helpers import job_row


def test_tick_time_floors_to_the_period():
    assert tick_time(10, 1005.5) == datetime.fromtimestamp(1000, UTC)
    assert tick_time(2, 1001.9) == tick_time(2, 1000.0)
    assert tick_time(2, 1002.0) != tick_time(2, 1001.9)


def test_a_tick_runs_once_when_two_schedulers_fire_it(app):
    runs = []
    schedule = Schedule("test.count", 60, run=lambda: runs.append(1))
    now = time.time() // 60 * 60 + 10  # 10 s into a tick, so now + 1 is in the same one
    assert fire(app, schedule, "scheduler-a", now=now) is True
    assert fire(app, schedule, "scheduler-b", now=now + 1) is False  # same 60 s tick
    assert fire(app, schedule, "scheduler-b", now=now + 60) is True  # the next tick
    assert len(runs) == 2


def test_concurrent_schedulers_race_for_one_tick(app):
    runs, lock = [], threading.Lock()

    def count():
        with lock:
            runs.append(1)

    schedule = Schedule("test.race", 3600, run=count)
    now = time.time()
    threads = [threading.Thread(target=fire, args=(app, schedule, f"s{i}"), kwargs={"now": now}) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1


def test_a_failing_schedule_does_not_stop_the_tick_claim(app):
    def boom():
        raise RuntimeError("schedule body failed")

    schedule = Schedule("test.boom", 60, run=boom)
    now = time.time() // 60 * 60 + 10  # both in one tick, whatever the clock says
    assert fire(app, schedule, "a", now=now) is True  # logged, claimed: not retried by a second scheduler
    assert fire(app, schedule, "b", now=now + 1) is False


def test_schedule_can_submit_a_job_through_the_ledger(app):
    schedule = Schedule("test.echo", 60, job_type="system.echo", payload={"message": "tick"})
    assert fire(app, schedule, "a")
    from app.models import Job

    job = db.session.query(Job).one()
    assert job.type == "system.echo" and job.payload["message"] == "tick"


def test_prune_keeps_the_latest_tick_of_each_schedule(app):
    old = datetime.now(UTC) - timedelta(days=10)
    for i in range(3):
        ticks.claim_tick("daily", old + timedelta(days=i), "a")
    ticks.claim_tick("fresh", datetime.now(UTC), "a")
    assert ticks.prune_ticks() == 2
    assert ticks.last_tick("daily") == old + timedelta(days=2)
    assert db.session.query(SchedulerTick).count() == 2


def test_two_scheduler_processes_relay_without_running_a_tick_twice(app, workers):
    """Started twice by mistake: both keep running, each relay period runs once (not twice),
    and the relay still publishes what was lost."""
    from app.extensions import queue
    from tests.helpers import submit

    settings = {"OUTBOX_RELAY_INTERVAL": 0.5, "OUTBOX_GRACE_SECONDS": 0}
    first = workers.start_scheduler(name="scheduler-1", **settings)
    second = workers.start_scheduler(name="scheduler-2", **settings)
    wait_until(lambda: _ticks("outbox.relay") >= 10, 30, 0.2, what="relay ticks")
    assert first.proc.poll() is None and second.proc.poll() is None, workers.logs()
    db.session.rollback()
    times = sorted(t for (t,) in db.session.query(SchedulerTick.tick_at).filter_by(name="outbox.relay"))
    periods = (times[-1] - times[0]).total_seconds() / 0.5 + 1
    assert len(times) <= periods, f"{len(times)} relay runs in {periods:.0f} periods"

    job_id = submit(payload={"message": "relayed"})
    # Redis loses its data: the message, the publish marker and the relay's epoch key. (A relay
    # tick may already have confirmed the job `queued`: the epoch tells the relay to send it again.)
    for key in queue.redis.scan_iter("dramatiq:default*"):
        queue.redis.delete(key)
    queue.redis.delete(f"opsdeck:outbox:published:{job_id}", "opsdeck:outbox:epoch")
    try:  # a generous bound: two schedulers on one SQLite file queue behind each other under load
        wait_until(
            lambda: queue.broker.do_qsize("default") == 1 and job_row(job_id).status == "queued",
            60,
            0.2,
            what="relay to publish",
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{workers.logs()}") from None
    assert queue.broker.do_qsize("default") == 1


def _ticks(name: str) -> int:
    db.session.rollback()
    return db.session.query(SchedulerTick).filter_by(name=name).count()


def test_two_scheduler_processes_queue_the_daily_retention_run_once(app, workers):
    from app.models import Job

    settings = {"RETENTION_AT": "00:00"}  # already past today: due at once
    workers.start_scheduler(name="scheduler-1", **settings)
    workers.start_scheduler(name="scheduler-2", **settings)

    def runs() -> int:
        db.session.rollback()
        return db.session.query(Job).filter_by(type="retention.run").count()

    wait_until(lambda: runs() >= 1 and _ticks("retention.check") >= 1, 30, 0.2, what="the daily retention run")
    wait_until(lambda: _ticks("outbox.relay") >= 4, 30, 0.2, what="both schedulers to have been up a while")
    assert runs() == 1 and _ticks("retention.daily") == 1, workers.logs()
