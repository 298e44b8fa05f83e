"""The whole path with real processes: ledger → outbox → Redis → `dramatiq workers` → ledger."""

from __future__ import annotations

import pytest
from dramatiq import Message

from app.extensions import db, queue
from app.models import Job
from tests.fakes.processes import wait_until
from tests.helpers import job_row, submit, wait_for_status

pytestmark = pytest.mark.slow


def test_echo_job_runs_once_and_records_its_result(app, workers):
    workers.start()
    job_id = submit(payload={"message": "hello"})
    job = wait_for_status(job_id, "succeeded", logs=workers.logs)
    assert job.result == {"message": "hello"}
    assert job.attempts == 1 and job.started_at and job.finished_at >= job.started_at
    assert job.lease_expires_at is None and job.error is None


def test_failing_job_retries_with_backoff_then_goes_dead(app, workers):
    workers.start()
    job_id = submit(payload={"message": "boom", "fail": True}, max_attempts=2)
    job = wait_for_status(job_id, "dead", logs=workers.logs)
    assert job.attempts == 2
    assert job.error.startswith("EchoFailure: system.echo failed on request")
    assert "Traceback" in job.traceback and "EchoFailure" in job.traceback
    assert job.next_attempt_at > job.created_at  # the retry was scheduled after a backoff


def test_message_for_a_finished_job_is_skipped(app, workers):
    workers.start()
    job_id = submit(payload={"message": "once"})
    wait_for_status(job_id, "succeeded", logs=workers.logs)
    # Redeliver the same message (a relay re-publish, a Redis redelivery): nothing runs again.
    for _ in range(3):
        queue.broker.enqueue(Message("default", "system_echo", (job_id,), {}, {}, message_id=job_id))
    queue.broker.join("default", timeout=20_000)
    job = job_row(job_id)
    assert job.status == "succeeded" and job.attempts == 1


def test_cancelled_job_never_runs(app, workers):
    from app.services import jobs

    job_id = submit(payload={"message": "never"}, delay_seconds=2)
    jobs.cancel(job_row(job_id), actor="test")
    db.session.commit()
    workers.start()
    queue.broker.join("default", timeout=20_000)
    job = job_row(job_id)
    assert job.status == "cancelled" and job.attempts == 0 and job.started_at is None


def test_sigkilled_worker_job_runs_again_without_manual_action(app, workers):
    """A worker dies mid-job (SIGKILL) holding one running job and one prefetched job. The
    running job's lease expires and the relay re-queues it; the prefetched message is taken
    back from the dead worker's ack set. Both finish on another worker, each exactly once,
    bounded by JOB_LEASE_SECONDS + OUTBOX_RELAY_INTERVAL, not by Dramatiq's 60 s heartbeat
    timeout and 0.1% maintenance chance."""
    settings = {"JOB_LEASE_SECONDS": 3, "OUTBOX_RELAY_INTERVAL": 0.5, "OUTBOX_GRACE_SECONDS": 1}
    running = submit(payload={"message": "survive", "sleep_seconds": 4})
    prefetched = submit(payload={"message": "held"})
    first = workers.start(name="doomed", threads=1, **settings)  # prefetch = 2 messages
    wait_for_status(running, "running", logs=workers.logs)
    first.kill()
    first.proc.wait(10)
    assert job_row(running).status == "running"  # nobody told the ledger
    assert job_row(prefetched).status in ("pending", "queued")  # held in the dead worker's memory, not started
    workers.start(name="rescuer", **settings)
    workers.start_scheduler(**settings)
    job = wait_for_status(running, "succeeded", timeout=60, logs=workers.logs)
    assert job.attempts == 2
    assert job.result == {"message": "survive"}
    assert "lost (lease expired)" in job.error
    held = wait_for_status(prefetched, "succeeded", timeout=60, logs=workers.logs)
    assert held.attempts == 1 and held.result == {"message": "held"}


def test_graceful_shutdown_releases_the_running_job_without_using_an_attempt(app, workers):
    worker = workers.start(name="deploying")
    job_id = submit(payload={"message": "patient", "sleep_seconds": 30})
    wait_for_status(job_id, "running", logs=workers.logs)
    worker.stop(timeout=20)  # SIGTERM, as supervisord does on a deploy
    job = job_row(job_id)
    assert job.status == "retrying" and job.attempts == 0, workers.logs()
    db.session.query(Job).filter_by(id=job_id).update(
        {"payload": {"message": "patient", "sleep_seconds": 0, "fail": False}}
    )
    db.session.commit()
    workers.start(name="next-release")
    workers.start_scheduler(OUTBOX_RELAY_INTERVAL=0.5)
    job = wait_for_status(job_id, "succeeded", logs=workers.logs)
    assert job.attempts == 1


def test_job_not_started_within_max_age_goes_dead(app, workers):
    from datetime import timedelta

    from app.models.base import utcnow

    job_id = submit(payload={"message": "stale"})
    db.session.query(Job).filter_by(id=job_id).update({"next_attempt_at": utcnow() - timedelta(hours=2)})
    db.session.commit()
    workers.start()
    job = wait_for_status(job_id, "dead", logs=workers.logs)
    assert job.error.startswith("AgeLimitExceeded") and job.result is None


def test_redeliveries_do_not_run_a_job_twice_concurrently(app, workers):
    """Two workers get the same message while the job runs: the live lease makes one skip."""
    workers.start(name="a")
    workers.start(name="b")
    job_id = submit(payload={"message": "solo", "sleep_seconds": 2})
    wait_for_status(job_id, "running", logs=workers.logs)
    queue.broker.enqueue(Message("default", "system_echo", (job_id,), {}, {}, message_id=job_id))
    wait_for_status(job_id, "succeeded", logs=workers.logs)
    queue.broker.join("default", timeout=20_000)
    assert job_row(job_id).attempts == 1


def test_high_priority_starts_ahead_of_a_10k_low_backlog(app, workers):
    """Order of start, not timing: with 10,000 low jobs queued and workers busy on them, a
    high job starts while almost the whole backlog is still waiting."""
    from app.services import jobs

    backlog = 10_000
    for start in range(0, backlog, 1000):
        for i in range(start, start + 1000):
            jobs.submit("system.echo", {"message": f"low {i}"}, priority="low")
        db.session.commit()
    workers.start([q for q in _queues() if q.endswith("_high")], name="high")
    workers.start([q for q in _queues() if not q.endswith("_high")], name="bulk")
    wait_until(lambda: _count(status="succeeded") >= 50, 60, 0.2, what="bulk workers to be busy")
    high_id = submit(payload={"message": "urgent"}, priority="high")
    high = wait_for_status(high_id, "succeeded", logs=workers.logs)
    started_before = _count(priority="low", started_before=high.started_at)
    print(f"low jobs started before the high one: {started_before} of {backlog}")
    assert started_before < backlog // 10, f"{started_before} low jobs started before the high one"


def _queues() -> list[str]:
    from app.jobtypes import all_queue_names

    return all_queue_names()


def _count(*, status: str | None = None, priority: str | None = None, started_before=None) -> int:
    db.session.rollback()
    query = db.session.query(Job)
    if status:
        query = query.filter(Job.status == status)
    if priority:
        query = query.filter(Job.priority == priority)
    if started_before is not None:
        query = query.filter(Job.started_at.is_not(None), Job.started_at < started_before)
    return query.count()


def test_deep_readiness_runs_a_canary_through_the_workers(app):
    client = app.test_client()
    response = client.get("/readyz?deep=1")
    assert response.status_code == 503
    assert response.get_json()["checks"]["workers"].startswith("down: no worker ran the canary")


def test_deep_readiness_is_ok_with_a_high_priority_worker(app, workers, sink):
    app.config["SMTP_PORT"] = sink.port  # deep is 503 while any peer is down, the relay included
    worker = workers.start([name for name in _queues() if name.endswith("_high")], name="high")
    worker.wait_for_log("Worker process is ready for action")
    response = app.test_client().get("/readyz?deep=1")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"]["workers"] == "ok"
    from app.services import workers as processes

    assert processes.alive() == 1  # the worker process, not the web or test process publishing
