"""The job state machine, transition by transition (no worker process needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Job
from app.models.base import utcnow
from app.services import jobs
from app.services.jobs import ledger
from tests.helpers import job_row, submit


def test_claim_moves_queued_to_running_with_a_lease(app):
    job_id = submit(payload={"message": "a"})
    claimed = ledger.claim(job_id, "w1", 30)
    assert claimed.payload["message"] == "a" and claimed.attempts == 1
    job = job_row(job_id)
    assert job.status == "running" and job.worker_id == "w1"
    assert utcnow() + timedelta(seconds=25) < job.lease_expires_at <= utcnow() + timedelta(seconds=31)


def test_a_running_job_with_a_live_lease_cannot_be_claimed_again(app):
    job_id = submit()
    assert ledger.claim(job_id, "w1", 30) is not None
    assert ledger.claim(job_id, "w2", 30) is None
    assert job_row(job_id).attempts == 1


def test_a_lost_attempt_is_recorded_before_the_job_runs_again(app):
    """A message for a job whose worker died (its lease expired) does not take the job over:
    only recovery moves it on, so the lost attempt is logged and max_attempts still holds."""
    job_id = submit(max_attempts=1)
    ledger.claim(job_id, "w1", 30)
    db.session.get(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert ledger.claim(job_id, "w2", 30) is None
    assert job_row(job_id).attempts == 1
    assert ledger.recover_expired() == (0, 1)
    job = job_row(job_id)
    assert job.status == "dead" and "w1 lost" in job.error and len(job.attempt_log) == 1


@pytest.mark.parametrize("final", ["succeeded", "dead", "cancelled"])
def test_finished_jobs_are_never_claimed(app, final):
    job_id = submit()
    db.session.get(Job, job_id).status = final
    db.session.commit()
    assert ledger.claim(job_id, "w1", 30) is None


def test_succeed_records_the_result_only_for_the_lease_holder(app):
    job_id = submit()
    ledger.claim(job_id, "w1", 30)
    assert ledger.succeed(job_id, "w2", {"x": 1}) is False
    assert ledger.succeed(job_id, "w1", {"x": 1}) is True
    job = job_row(job_id)
    assert job.status == "succeeded" and job.result == {"x": 1} and job.lease_expires_at is None


def test_fail_retries_until_attempts_are_used_then_dead(app):
    job_id = submit(max_attempts=2)
    ledger.claim(job_id, "w1", 30)
    first = ledger.fail(job_id, "w1", error="E: one", traceback="tb", retry_in=5)
    assert first.status == "retrying" and first.next_attempt_at > utcnow()
    job = job_row(job_id)
    assert job.status == "retrying" and job.error == "E: one" and job.published_at is None
    ledger.claim(job_id, "w1", 30)
    second = ledger.fail(job_id, "w1", error="E: two", traceback="tb", retry_in=5)
    assert second.status == "dead"
    job = job_row(job_id)
    assert job.status == "dead" and job.attempts == 2 and job.finished_at is not None


def test_every_failed_attempt_is_logged_with_its_times(app):
    job_id = submit(max_attempts=3)
    ledger.claim(job_id, "w1", 30)
    ledger.fail(job_id, "w1", error="E: one", traceback=None, retry_in=1)
    ledger.claim(job_id, "w2", 30)
    db.session.get(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    ledger.recover_expired()
    log = job_row(job_id).attempt_log
    assert [(a["attempt"], a["worker"]) for a in log] == [(1, "w1"), (2, "w2")]
    assert log[0]["error"] == "E: one" and "lost" in log[1]["error"]
    assert all(a["started_at"] <= a["ended_at"] for a in log)


def test_non_retryable_failure_goes_dead_at_once(app):
    job_id = submit(max_attempts=5)
    ledger.claim(job_id, "w1", 30)
    assert ledger.fail(job_id, "w1", error="E", traceback=None, retry_in=None).status == "dead"


def test_expired_lease_is_recovered_then_dead_when_attempts_are_used(app):
    job_id = submit(max_attempts=2)
    ledger.claim(job_id, "w1", 30)
    db.session.get(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert ledger.recover_expired() == (1, 0)
    job = job_row(job_id)
    assert job.status == "retrying" and "w1 lost" in job.error and job.published_at is None
    ledger.claim(job_id, "w2", 30)
    db.session.get(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert ledger.recover_expired() == (0, 1)
    assert job_row(job_id).status == "dead"


def test_heartbeat_extends_only_this_workers_leases(app):
    mine, theirs = submit(), submit()
    ledger.claim(mine, "w1", 5)
    ledger.claim(theirs, "w2", 5)
    before = job_row(mine).lease_expires_at
    assert ledger.heartbeat("w1", [mine, theirs], 60) == 1
    assert job_row(mine).lease_expires_at > before + timedelta(seconds=50)
    assert job_row(theirs).lease_expires_at < utcnow() + timedelta(seconds=6)


def test_release_at_shutdown_does_not_count_the_attempt(app):
    job_id = submit()
    ledger.claim(job_id, "w1", 30)
    assert ledger.release(job_id, "w1")
    job = job_row(job_id)
    assert job.status == "retrying" and job.attempts == 0


def test_cancel_and_retry_transitions(app):
    job_id = submit()
    jobs.cancel(job_row(job_id), actor="t")
    db.session.commit()
    with pytest.raises(jobs.JobStateError):
        jobs.cancel(job_row(job_id), actor="t")
    jobs.retry(job_row(job_id), actor="t")
    db.session.commit()
    job = job_row(job_id)
    assert job.status == "pending" and job.attempts == 0 and job.finished_at is None
    with pytest.raises(jobs.JobStateError):
        jobs.retry(job, actor="t")


def test_retry_delay_is_exponential_capped_and_jittered():
    options = {"min_backoff": 1000, "max_backoff": 8000}
    for attempt, base in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = [ledger.retry_delay(attempt, options) for _ in range(200)]
        assert base * 0.8 <= min(delays) and max(delays) <= base * 1.2
        assert max(delays) - min(delays) > 0  # jittered, not lockstep


def test_retry_schedule_option_is_followed_and_its_last_step_repeats():
    options = {"retry_schedule": [5, 300, 1800]}
    assert 4 <= ledger.retry_delay(1, options) <= 6
    assert 240 <= ledger.retry_delay(2, options) <= 360
    assert 1440 <= ledger.retry_delay(7, options) <= 2160


def test_a_submitted_job_is_one_row_and_a_loaded_object(app):
    """jobs.submit inserts the row at once and hands back an object the session holds as if it
    had loaded it: nothing pending, nothing to reload, columns it leaves empty NULL in SQL (a
    JSON None stored as JSON null would not match `IS NULL`)."""
    from sqlalchemy import inspect, select

    job = jobs.submit("system.echo", {"message": "x"})
    state = inspect(job)
    assert state.persistent and not state.expired_attributes and job not in db.session.new
    assert db.session.scalar(select(Job.status).where(Job.id == job.id)) == "pending"  # no flush needed
    db.session.commit()
    empty = [Job.result, Job.attempt_log, Job.error, Job.started_at, Job.worker_id]
    assert db.session.scalar(select(Job.id).where(Job.id == job.id, *(c.is_(None) for c in empty))) == job.id
    job.priority = "high"  # a change to it is an UPDATE of the row
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Job, job.id).priority == "high" and db.session.get(Job, job.id).result is None
