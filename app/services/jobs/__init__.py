"""The ledger as callers see it: submit, cancel, retry, read.

Submitting adds the job row to the caller's transaction; the outbox publishes it to Redis
once that transaction commits (see services/outbox.py). Worker-side transitions (claim,
finish, retry, recover) are in services/ledger.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import Text, and_, cast, func, literal_column, or_, select, update

from app import jobtypes
from app.db.statements import InsertNew, Written, add_as_loaded, insert_once
from app.extensions import db
from app.models import Job, JobStatus
from app.models.base import new_id, utcnow
from app.models.jobs import FINISHED, PRIORITIES
from app.services import audit, pagination
from app.services.jobs import outbox
from app.services.pagination import Page
from app.telemetry import tracing


class JobInputError(ValueError):
    """Bad job input; `messages` maps field names to lists of messages (marshmallow style)."""

    def __init__(self, messages: dict[str, Any]):
        super().__init__("invalid job")
        self.messages = messages


class JobStateError(RuntimeError):
    """The job is in a state that does not allow the requested transition."""


class JobOptions(TypedDict, total=False):
    """What a submission may set besides its type and payload (defaults in `new_row`)."""

    tenant_id: str | None
    priority: str
    delay_seconds: float
    max_attempts: int | None
    #: The tenant API: internal job types are refused as unknown.
    public_only: bool
    #: For a caller that names the job in the same statement as its own row.
    job_id: str | None
    #: The platform's own key for the job, unique per tenant (`submit_many` dedupes on it).
    idempotency_key: str | None


def new_row(job_type: str, payload: dict[str, Any] | None = None, **options: Unpack[JobOptions]) -> dict[str, Any]:
    """A validated job row (raises JobInputError), for `submit_many`: priority
    `normal`, no delay, the type's max_attempts unless `options` say otherwise."""
    if unknown := options.keys() - JobOptions.__optional_keys__:
        raise TypeError(f"unknown job options: {', '.join(sorted(unknown))}")  # a misspelt keyword
    tenant_id, priority = options.get("tenant_id"), options.get("priority", "normal")
    max_attempts, job_id = options.get("max_attempts"), options.get("job_id")
    jt = jobtypes.get(job_type)
    if jt is None or (options.get("public_only", False) and not jt.public):
        raise JobInputError({"type": [f"Unknown job type {job_type!r}."]})
    if jt.family in current_app.config.get("OPSDECK_DISABLED_FAMILIES", []):
        raise JobInputError({"type": [f"The {jt.family} family is disabled on this server."]})
    if priority not in PRIORITIES:
        raise JobInputError({"priority": [f"Must be one of: {', '.join(PRIORITIES)}."]})
    limit = current_app.config["JOB_MAX_ATTEMPTS_LIMIT"]
    if max_attempts is not None and not 1 <= max_attempts <= limit:
        raise JobInputError({"max_attempts": [f"Must be between 1 and {limit}."]})
    try:
        clean = jt.payload_schema.load(payload or {})
    except ValidationError as err:
        raise JobInputError({"payload": err.messages}) from err
    now = utcnow()
    return {
        "id": job_id or new_id(),
        "tenant_id": tenant_id,
        "type": jt.name,
        "queue": jobtypes.queue_name(jt.queue, priority),
        "priority": priority,
        "status": JobStatus.PENDING.value,
        "payload": clean,
        "attempts": 0,
        "max_attempts": max_attempts or jt.max_attempts,
        "next_attempt_at": now + timedelta(seconds=options.get("delay_seconds", 0)),
        "idempotency_key": options.get("idempotency_key"),
        "traceparent": tracing.traceparent(),
        "created_at": now,
        "updated_at": now,
    }


def submit(job_type: str, payload: dict[str, Any] | None = None, **options: Unpack[JobOptions]) -> Job:
    """Validate and add one job to the current transaction, published after commit (options
    as `new_row`): `submit_many` of one row, the job as an ORM object the session holds as if
    loaded (with an `idempotency_key` a job of the tenant holds: that job)."""
    written = submit_many([new_row(job_type, payload, **options)])[0]
    return written.value if isinstance(written.value, Job) else add_as_loaded(Job, written.value)


def submit_many(rows: list[dict[str, Any]]) -> list[Written[Job]]:
    """Add rows from `new_row` to the current transaction in one INSERT, published after
    commit: the one way a job is written (a single job, a batch, a fan-out's deliveries). A row whose idempotency key a job of its tenant holds (committed before, or an
    earlier row of the same call) is not inserted: its answer is that job, replayed. Answers
    are in the rows' order."""
    answers, inserted = insert_once(_INSERT_NEW, rows, "idempotency_key", _holding_keys)
    for row in inserted:
        outbox.publish_row_after_commit(db.session, row)
    return answers


def _holding_keys(tenant_id: str | None, keys: list[str]) -> Iterable[Job]:
    return db.session.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key.in_(keys)))


#: Returns the id of each row inserted; nothing for one whose idempotency key a job holds.
_INSERT_NEW = InsertNew(
    Job, index_elements=["tenant_id", "idempotency_key"], index_where=Job.idempotency_key.is_not(None)
)


def get_for_tenant(job_id: str, tenant_id: str | None) -> Job | None:
    """A job by id, only if it belongs to the tenant (None for another tenant's job)."""
    job = db.session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        return None
    return job


def cancel(job: Job, *, actor: str) -> Job:
    """Cancel a job that has not started (in the caller's transaction).

    Running or finished jobs raise JobStateError."""
    changed = cancel_many([job.id])
    db.session.refresh(job)
    if changed != 1:
        raise JobStateError(f"job is {job.status}; only pending, queued or retrying jobs can be cancelled")
    audit.record(actor, "job.cancel", target=job.id, tenant_id=job.tenant_id)
    return job


def retry(job: Job, *, actor: str) -> Job:
    """Run a dead or cancelled job again from a fresh attempt count (in the caller's
    transaction; published after it commits)."""
    if retry_many([job.id]) != 1:
        raise JobStateError(f"job is {job.status}; only dead or cancelled jobs can be retried")
    audit.record(actor, "job.retry", target=job.id, tenant_id=job.tenant_id)
    return job


RETRYABLE_STATES = (JobStatus.DEAD.value, JobStatus.CANCELLED.value)
CANCELLABLE_STATES = (JobStatus.PENDING.value, JobStatus.QUEUED.value, JobStatus.RETRYING.value)


#: A bulk action never runs an earlier one again (a filter's text may match its payload).
_NOT_BULK = Job.type != "jobs.bulk"


def retry_many(job_ids: list[str]) -> int:
    """Retry the dead or cancelled jobs among `job_ids` but bulk actions (caller's transaction;
    published after commit). Returns how many changed."""
    now = utcnow()
    rows = db.session.scalars(
        select(Job)
        .where(Job.id.in_(job_ids), Job.status.in_(RETRYABLE_STATES), _NOT_BULK)
        .execution_options(populate_existing=True)
    ).all()
    for job in rows:
        job.status, job.attempts, job.next_attempt_at = JobStatus.PENDING.value, 0, now
        job.published_at = job.finished_at = job.lease_expires_at = job.worker_id = None
        job.updated_at = now
        outbox.publish_after_commit(db.session, job)
    return len(rows)


def cancel_many(job_ids: list[str]) -> int:
    """Cancel the not-yet-started jobs among `job_ids` (caller's transaction)."""
    now = utcnow()
    result = db.session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status.in_(CANCELLABLE_STATES))
        .values(status=JobStatus.CANCELLED.value, finished_at=now, updated_at=now, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount  # type: ignore[attr-defined]  # a DML statement's Result is a CursorResult


def bulk_apply(
    action: str,
    *,
    job_ids: list[str] | None = None,
    flt: JobFilter | None = None,
    actor: str,
    on_progress: Any = None,
) -> dict[str, int]:
    """Retry or cancel the selected jobs, or every job matching `flt`, a batch per
    transaction. Calls on_progress(done, changed, total) before the first batch and after each
    (total is counted at the start; jobs created meanwhile may push done past it). Audited once."""
    apply = {"retry": retry_many, "cancel": cancel_many}[action]
    if job_ids is not None:
        total = len(job_ids)
        batches: Any = (job_ids[i : i + 500] for i in range(0, len(job_ids), 500))
    else:
        flt = flt or JobFilter(all_tenants=True)
        total = count_matching(flt)
        batches = matching_ids(flt)
    done = changed = 0
    if on_progress:
        on_progress(done, changed, total)
    for batch in batches:
        changed += apply(batch)
        db.session.commit()
        done += len(batch)
        if on_progress:
            on_progress(done, changed, total)
    summary = {"examined": done, "changed": changed}
    audit.record(
        actor,
        f"job.bulk_{action}",
        details={
            **summary,
            "filter": flt.as_dict() if flt else None,
            "selected": len(job_ids) if job_ids is not None else None,
        },
    )
    db.session.commit()
    return summary


def retry_dead(*, job_type: str | None = None, actor: str) -> int:
    """Retry every dead job (optionally of one type), a batch per transaction. Returns how many."""
    flt = JobFilter(all_tenants=True, status=JobStatus.DEAD.value, job_type=job_type)
    return bulk_apply("retry", flt=flt, actor=actor)["changed"]


@dataclass
class JobFilter:
    """What the API, the admin pages and bulk actions filter jobs by."""

    tenant_id: str | None = None
    all_tenants: bool = False
    status: str | None = None
    job_type: str | None = None
    queue: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    #: Free text matched against the start of the job id.
    id_prefix: str | None = None
    #: Text found in the payload (as JSON) or the last error, any case (TEXT_MIN characters or more).
    text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in self.__dict__.items()
            if v not in (None, False)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobFilter:
        values = dict(data)
        for key in ("created_from", "created_to"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


#: The text search's shortest term (PostgreSQL's trigram index needs three characters).
TEXT_MIN = 3


def filtered(query: Any, flt: JobFilter) -> Any:
    """`query` narrowed to the jobs `flt` selects (raises JobInputError for a bad status or a
    text shorter than TEXT_MIN)."""
    if flt.status is not None and flt.status not in {s.value for s in JobStatus}:
        raise JobInputError({"status": [f"Must be one of: {', '.join(s.value for s in JobStatus)}."]})
    if flt.text is not None and len(flt.text) < TEXT_MIN:
        raise JobInputError({"text": [f"At least {TEXT_MIN} characters."]})
    if not flt.all_tenants or flt.tenant_id:
        query = query.where(Job.tenant_id == flt.tenant_id)
    if flt.status:
        query = query.where(Job.status == flt.status)
    if flt.job_type:
        query = query.where(Job.type == flt.job_type)
    if flt.queue:
        query = query.where(Job.queue == flt.queue)
    if flt.created_from:
        query = query.where(Job.created_at >= flt.created_from)
    if flt.created_to:
        query = query.where(Job.created_at < flt.created_to)
    if flt.id_prefix:
        query = query.where(Job.id.like(flt.id_prefix.replace("%", "").replace("_", "") + "%"))
    if flt.text:
        query = query.where(_text_match(flt.text))
    return query


def _text_match(term: str) -> Any:
    """Jobs whose last error or payload (as JSON text) contains `term`, case-insensitively.
    On PostgreSQL both sides are the expressions of the trigram indexes (migration 7a1c3e5b9d20);
    on SQLite a LIKE scan."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return or_(
        func.coalesce(Job.error, literal_column("''")).ilike(pattern, escape="\\"),
        cast(Job.payload, Text).ilike(pattern, escape="\\"),
    )


def list_jobs(flt: JobFilter, *, cursor: str | None = None, limit: int = 50) -> Page:
    """Newest first, keyset-paginated on (created_at, id): no OFFSET, no full scans."""
    try:
        return pagination.newest_first(filtered(select(Job), flt), Job, cursor=cursor, limit=limit)
    except pagination.BadCursor as err:
        raise JobInputError({"cursor": [str(err)]}) from None


def matching_ids(flt: JobFilter, *, batch: int = 500) -> Iterator[list[str]]:
    """Ids of every job matching the filter, newest first, a batch at a time (keyset)."""
    cursor: tuple[datetime, str] | None = None
    while True:
        query = filtered(select(Job.id, Job.created_at), flt)
        if cursor:
            query = query.where(or_(Job.created_at < cursor[0], and_(Job.created_at == cursor[0], Job.id < cursor[1])))
        rows = db.session.execute(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(batch)).all()
        db.session.rollback()
        if not rows:
            return
        yield [r.id for r in rows]
        cursor = (rows[-1].created_at, rows[-1].id)


def count_matching(flt: JobFilter) -> int:
    """How many jobs match the filter (one indexed count; bulk actions use it for progress)."""
    return db.session.scalar(filtered(select(func.count()).select_from(Job), flt)) or 0


def is_finished(status: str) -> bool:
    return status in {s.value for s in FINISHED}
