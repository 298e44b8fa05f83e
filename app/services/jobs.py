"""The ledger as callers see it: submit, cancel, retry, read.

Submitting adds the job row to the caller's transaction; the outbox publishes it to Redis
once that transaction commits (see services/outbox.py). Worker-side transitions (claim,
finish, retry, recover) are in services/ledger.py.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import and_, or_, select, update

from app import jobtypes
from app.extensions import db
from app.models import Job, JobStatus
from app.models.base import new_id, utcnow
from app.models.jobs import FINISHED, PRIORITIES
from app.services import audit, outbox


class JobInputError(ValueError):
    """Bad job input; `messages` maps field names to lists of messages (marshmallow style)."""

    def __init__(self, messages: dict[str, Any]):
        super().__init__("invalid job")
        self.messages = messages


class JobStateError(RuntimeError):
    """The job is in a state that does not allow the requested transition."""


def submit(
    job_type: str,
    payload: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
    priority: str = "normal",
    delay_seconds: float = 0,
    max_attempts: int | None = None,
) -> Job:
    """Validate and add a job to the current transaction; it is published after commit."""
    jt = jobtypes.get(job_type)
    if jt is None:
        raise JobInputError({"type": [f"Unknown job type {job_type!r}."]})
    if jt.family in current_app.config.get("OPSDECK_DISABLED_FAMILIES", []):
        raise JobInputError({"type": [f"The {jt.family} family is disabled on this server."]})
    if priority not in PRIORITIES:
        raise JobInputError({"priority": [f"Must be one of: {', '.join(PRIORITIES)}."]})
    limit = current_app.config["JOB_MAX_ATTEMPTS_LIMIT"]
    if max_attempts is not None and not 1 <= max_attempts <= limit:
        raise JobInputError({"max_attempts": [f"Must be between 1 and {limit}."]})
    try:
        clean = jt.payload().load(payload or {})
    except ValidationError as err:
        raise JobInputError({"payload": err.messages}) from err
    now = utcnow()
    job = Job(
        id=new_id(),
        tenant_id=tenant_id,
        type=jt.name,
        queue=jobtypes.queue_name(jt.queue, priority),
        priority=priority,
        status=JobStatus.PENDING.value,
        payload=clean,
        attempts=0,
        max_attempts=max_attempts or jt.max_attempts,
        next_attempt_at=now + timedelta(seconds=delay_seconds),
        created_at=now,
        updated_at=now,
    )
    db.session.add(job)
    outbox.publish_after_commit(db.session, job)
    return job


def get_for_tenant(job_id: str, tenant_id: str | None) -> Job | None:
    """A job by id, only if it belongs to the tenant (None for another tenant's job)."""
    job = db.session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        return None
    return job


def cancel(job: Job, *, actor: str) -> Job:
    """Cancel a job that has not started (in the caller's transaction).

    Running or finished jobs raise JobStateError."""
    result = db.session.execute(
        update(Job)
        .where(
            Job.id == job.id,
            Job.status.in_([s.value for s in (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RETRYING)]),
        )
        .values(status=JobStatus.CANCELLED.value, finished_at=utcnow(), updated_at=utcnow(), lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(job)
    if result.rowcount != 1:
        raise JobStateError(f"job is {job.status}; only pending, queued or retrying jobs can be cancelled")
    audit.record(actor, "job.cancel", target=job.id, tenant_id=job.tenant_id)
    return job


def retry(job: Job, *, actor: str) -> Job:
    """Run a dead or cancelled job again from a fresh attempt count (in the caller's
    transaction; published after it commits)."""
    now = utcnow()
    result = db.session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status.in_([JobStatus.DEAD.value, JobStatus.CANCELLED.value]))
        .values(
            status=JobStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            published_at=None,
            finished_at=None,
            lease_expires_at=None,
            worker_id=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(job)
    if result.rowcount != 1:
        raise JobStateError(f"job is {job.status}; only dead or cancelled jobs can be retried")
    audit.record(actor, "job.retry", target=job.id, tenant_id=job.tenant_id)
    outbox.publish_after_commit(db.session, job)
    return job


def retry_dead(*, tenant_id: str | None = None, job_type: str | None = None, actor: str, limit: int = 1000) -> int:
    """Retry up to `limit` dead jobs (optionally of one tenant/type), committing each.
    Returns how many."""
    query = select(Job).where(Job.status == JobStatus.DEAD.value)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    if job_type is not None:
        query = query.where(Job.type == job_type)
    count = 0
    for job in db.session.scalars(query.order_by(Job.created_at).limit(limit)).all():
        retry(job, actor=actor)
        db.session.commit()
        count += 1
    return count


@dataclass
class Page:
    items: Sequence[Job]
    next_cursor: str | None


def _encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at.isoformat()}|{job.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as err:
        raise JobInputError({"cursor": ["Invalid cursor."]}) from err


def list_jobs(
    *,
    tenant_id: str | None,
    status: str | None = None,
    job_type: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    all_tenants: bool = False,
) -> Page:
    """Newest first, keyset-paginated on (created_at, id): no OFFSET, no full scans."""
    if status is not None and status not in {s.value for s in JobStatus}:
        raise JobInputError({"status": [f"Must be one of: {', '.join(s.value for s in JobStatus)}."]})
    query = select(Job)
    if not all_tenants:
        query = query.where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    if job_type:
        query = query.where(Job.type == job_type)
    if cursor:
        created, job_id = _decode_cursor(cursor)
        query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id)))
    rows = db.session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, next_cursor=_encode_cursor(rows[-1]) if has_more and rows else None)


def is_finished(status: str) -> bool:
    return status in {s.value for s in FINISHED}
