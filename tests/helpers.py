"""Helpers for tests that wait on real processes."""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models import Job
from tests.fakes.processes import wait_until


def job_row(job_id: str) -> Job:
    db.session.rollback()  # a fresh snapshot: other processes wrote since
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


def wait_for_status(job_id: str, *statuses: str, timeout: float = 30, logs: Any = None) -> Job:
    try:
        wait_until(lambda: job_row(job_id).status in statuses, timeout, 0.1, what=f"job {job_id} to be {statuses}")
    except TimeoutError:
        job = job_row(job_id)
        detail = f"job is {job.status} (attempts {job.attempts}, error {job.error!r})"
        raise AssertionError(detail + ("\n" + logs() if logs else "")) from None
    return job_row(job_id)


def submit(job_type: str = "system.echo", payload: dict[str, Any] | None = None, **options: Any) -> str:
    from app.services import jobs

    job = jobs.submit(job_type, payload or {}, **options)
    job_id = job.id
    db.session.commit()
    return job_id
