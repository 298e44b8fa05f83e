"""Worker-side ledger transitions: claim, heartbeat, succeed, fail (retry or dead), recover.

Each transition is one short statement in its own transaction, guarded by the state it
expects, so a duplicate message, a second worker or a late heartbeat changes nothing.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, select, update

from app.db.postgres import single_statement
from app.extensions import db
from app.models import Job, JobStatus
from app.models.base import UTCDateTime, utcnow
from app.models.jobs import CLAIMABLE

log = logging.getLogger(__name__)

#: Stored error text and traceback are capped so a runaway message cannot bloat the ledger.
MAX_ERROR_CHARS = 2_000
MAX_TRACEBACK_CHARS = 16_000

#: Default retry backoff (milliseconds) when an actor does not set its own.
DEFAULT_MIN_BACKOFF = 1_000
DEFAULT_MAX_BACKOFF = 15 * 60_000
#: Retry delays are spread by ±JITTER so a burst of failures does not retry in lockstep.
JITTER = 0.2


class RetryIn(Exception):
    """Raised by an actor: the attempt failed; try again in exactly `seconds` (e.g. the
    receiver's Retry-After) instead of the actor's schedule. Still counts as an attempt."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = max(0.0, seconds)


class GiveUp(Exception):
    """Raised by an actor: the attempt failed and retrying cannot help; the job is dead now."""


class Postpone(Exception):
    """Raised by an actor before doing anything: run the job again in `seconds` without
    counting an attempt or recording a failure (e.g. a per-endpoint rate limit)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = max(0.0, seconds)


def retry_delay(attempt: int, options: dict[str, Any], config: Any = None) -> float:
    """Seconds before the next attempt after `attempt` failed, from an actor's options: its
    `retry_schedule` (seconds, the last entry repeats; or the name of a config setting that
    holds such a list) or exponential between `min_backoff` and `max_backoff` (ms); ±20%
    jitter either way."""
    schedule = options.get("retry_schedule")
    if isinstance(schedule, str):
        schedule = (config or {}).get(schedule) or None
    if schedule:
        base = float(schedule[min(attempt, len(schedule)) - 1])
    else:
        lo = options.get("min_backoff", DEFAULT_MIN_BACKOFF) / 1000
        hi = options.get("max_backoff", DEFAULT_MAX_BACKOFF) / 1000
        base = min(hi, lo * 2 ** (attempt - 1))
    return max(0.0, base * random.uniform(1 - JITTER, 1 + JITTER))


#: A Core statement and its parameters.
Write = tuple[Any, dict[str, Any]]


def apply_writes(conn: Any, writes: list[Write]) -> None:
    """Run writes in order, one executemany per run of the same statement, its rows in a
    stable order (every process then locks shared rows, e.g. an endpoint, in the same order:
    no deadlock between two workers' batches)."""
    i = 0
    while i < len(writes):
        stmt, j = writes[i][0], i
        while j < len(writes) and writes[j][0] is stmt:
            j += 1
        conn.execute(stmt, sorted((params for _, params in writes[i:j]), key=lambda p: sorted(map(str, p.items()))))
        i = j


@dataclass
class ClaimedJob:
    """What a worker knows about the job it runs; actors read `payload` and set `result`."""

    id: str
    type: str
    tenant_id: str | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    #: When the job became due (its creation, or the delay it was given).
    due_at: datetime | None = None
    result: Any = None
    #: Statements (Core, with their parameters) to commit with the job's success, in the same
    #: transaction: an actor's record of what it did is then never ahead of, nor lost behind,
    #: the ledger, and costs no transaction of its own.
    writes: list[Write] = field(default_factory=list)


#: The claim, built once (it runs for every message): bind job_ids, now, lease_until, worker.
#: A running job is never claimed, even past its lease: `recover_expired` records the lost
#: attempt and decides between a retry and dead first.
_CLAIM = (
    update(Job)
    .where(Job.id.in_(bindparam("job_ids", expanding=True)), Job.status.in_([s.value for s in CLAIMABLE]))
    .values(
        status=JobStatus.RUNNING.value,
        attempts=Job.attempts + 1,
        started_at=bindparam("now", type_=UTCDateTime()),
        lease_expires_at=bindparam("lease_until", type_=UTCDateTime()),
        worker_id=bindparam("worker"),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
    .returning(Job.id, Job.type, Job.tenant_id, Job.payload, Job.attempts, Job.max_attempts, Job.next_attempt_at)
)


def claim(job_id: str, worker_id: str, lease_seconds: int) -> ClaimedJob | None:
    """Take the job for this worker, or return None when it is finished, cancelled, or
    running (the message is then a duplicate; a running job whose worker died comes back
    through `recover_expired`)."""
    return claim_many([job_id], worker_id, lease_seconds).get(job_id)


def claim_many(job_ids: list[str], worker_id: str, lease_seconds: int) -> dict[str, ClaimedJob]:
    """`claim` for several jobs in one statement and one transaction (a worker's threads
    combine theirs, see workers/middleware.py). Returns the jobs taken, by id; an id missing
    from the answer was not claimable."""
    now = utcnow()
    params = {
        "job_ids": sorted(set(job_ids)),
        "now": now,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "worker": worker_id,
    }
    with single_statement(db.engine) as conn:
        rows = conn.execute(_CLAIM, params).all()
    claimed = {}
    for row in rows:
        due_at = row.next_attempt_at
        if due_at is not None and due_at.tzinfo is None:  # defensive: drivers differ on RETURNING
            due_at = due_at.replace(tzinfo=UTC)
        claimed[row.id] = ClaimedJob(
            row.id, row.type, row.tenant_id, row.payload or {}, row.attempts, row.max_attempts, due_at
        )
    return claimed


def heartbeat(worker_id: str, job_ids: list[str], lease_seconds: int) -> int:
    """Extend the leases this worker holds. Returns how many rows were extended."""
    if not job_ids:
        return 0
    now = utcnow()
    with single_statement(db.engine) as conn:
        result = conn.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.status == JobStatus.RUNNING.value, Job.worker_id == worker_id)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
    return result.rowcount


def _owned(job_id: str, worker_id: str) -> Any:
    return and_(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.worker_id == worker_id)


def succeed(job_id: str, worker_id: str, result: Any = None, writes: list[Write] | None = None) -> bool:
    """Mark the job succeeded. False when this worker no longer holds it (lease lost)."""
    return succeed_many(worker_id, [(job_id, result, utcnow())], writes) == 1


def succeed_many(worker_id: str, outcomes: list[tuple[str, Any, datetime]], writes: list[Write] | None = None) -> int:
    """Mark several jobs of this worker succeeded in one transaction (one executemany), with
    the actors' `writes` first. `outcomes` are (job id, result, finish time). Returns how many
    rows this worker held. (The writes apply even for a job whose lease was lost: they record
    work that was done.)"""
    if not outcomes:
        return 0
    stmt = (
        update(Job)
        .where(
            Job.id == bindparam("job_id"),
            Job.status == JobStatus.RUNNING.value,
            Job.worker_id == bindparam("worker"),
        )
        .values(
            status=JobStatus.SUCCEEDED.value,
            result=bindparam("job_result", type_=Job.__table__.c.result.type),
            finished_at=bindparam("finished", type_=Job.__table__.c.finished_at.type),
            updated_at=bindparam("finished", type_=Job.__table__.c.finished_at.type),
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    params = [{"job_id": j, "worker": worker_id, "job_result": r, "finished": t} for j, r, t in outcomes]
    with db.engine.begin() as conn:
        if writes:
            apply_writes(conn, writes)
        done = conn.execute(stmt, params).rowcount
    if done != len(outcomes):
        log.warning(
            "ledger: %d of %d job(s) finished by %s after their lease was lost",
            len(outcomes) - done,
            len(outcomes),
            worker_id,
        )
    return done


@dataclass
class Failure:
    status: str  # "retrying" or "dead" ("" when this worker no longer held the job)
    next_attempt_at: datetime | None = None


def fail(
    job_id: str,
    worker_id: str,
    *,
    error: str,
    traceback: str | None,
    retry_in: float | None,
) -> Failure:
    """Record a failed attempt: `retrying` at now + retry_in, or `dead` when retry_in is None
    or the attempts are used up."""
    now = utcnow()
    error, traceback = error[:MAX_ERROR_CHARS], (traceback or "")[-MAX_TRACEBACK_CHARS:] or None
    with db.engine.begin() as conn:
        row = conn.execute(
            select(Job.attempts, Job.max_attempts, Job.started_at, Job.attempt_log).where(_owned(job_id, worker_id))
        ).first()
        if row is None:
            log.warning("ledger: job %s failed on %s after its lease was lost", job_id, worker_id)
            return Failure("")
        if retry_in is not None and row.attempts < row.max_attempts:
            when = now + timedelta(seconds=retry_in)
            values = dict(status=JobStatus.RETRYING.value, next_attempt_at=when, published_at=None)
            outcome = Failure(JobStatus.RETRYING.value, when)
        else:
            values = dict(status=JobStatus.DEAD.value, finished_at=now)
            outcome = Failure(JobStatus.DEAD.value)
        history = _logged(row.attempt_log, row.attempts, worker_id, row.started_at, now, error)
        conn.execute(
            update(Job)
            .where(_owned(job_id, worker_id))
            .values(
                error=error, traceback=traceback, lease_expires_at=None, updated_at=now, attempt_log=history, **values
            )
        )
    return outcome


#: Attempts kept in a job's attempt_log (the oldest are dropped past this).
MAX_LOGGED_ATTEMPTS = 50


def _logged(
    log_: list[dict[str, Any]] | None,
    attempt: int,
    worker: str | None,
    started: datetime | None,
    ended: datetime,
    error: str,
) -> list[dict[str, Any]]:
    entry = {
        "attempt": attempt,
        "worker": worker,
        "started_at": started.isoformat() if started else None,
        "ended_at": ended.isoformat(),
        "error": error[:500],
    }
    return [*(log_ or []), entry][-MAX_LOGGED_ATTEMPTS:]


def release(job_id: str, worker_id: str) -> bool:
    """Give a job back without counting the attempt (worker shutting down mid-job)."""
    return postpone(job_id, worker_id, 0) is not None


def postpone(job_id: str, worker_id: str, seconds: float) -> datetime | None:
    """Put a job back for later without counting the attempt. Returns when it is due, or
    None when this worker no longer held it."""
    now = utcnow()
    when = now + timedelta(seconds=seconds)
    with single_statement(db.engine) as conn:
        done = conn.execute(
            update(Job)
            .where(_owned(job_id, worker_id))
            .values(
                status=JobStatus.RETRYING.value,
                attempts=Job.attempts - 1,
                next_attempt_at=when,
                published_at=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
    return when if done.rowcount == 1 else None


def mark_published(job_id: str) -> None:
    with single_statement(db.engine) as conn:
        conn.execute(
            update(Job).where(Job.id == job_id, Job.status == JobStatus.RETRYING.value).values(published_at=utcnow())
        )


def recover_expired(limit: int = 500) -> tuple[int, int]:
    """Jobs whose worker died (lease expired): back to `retrying` for the relay, or `dead` when
    their attempts are used up. Returns (requeued, dead)."""
    now = utcnow()
    requeued = dead = 0
    with db.engine.begin() as conn:
        rows = conn.execute(
            select(Job.id, Job.attempts, Job.max_attempts, Job.worker_id, Job.started_at, Job.attempt_log)
            .where(Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now)
            .limit(limit)
        ).all()
        for row in rows:
            error = f"worker {row.worker_id} lost (lease expired) during attempt {row.attempts}"
            if row.attempts >= row.max_attempts:
                values = dict(status=JobStatus.DEAD.value, finished_at=now)
                dead += 1
            else:
                values = dict(status=JobStatus.RETRYING.value, next_attempt_at=now, published_at=None)
                requeued += 1
            conn.execute(
                update(Job)
                .where(Job.id == row.id, Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now)
                .values(
                    error=error,
                    traceback=None,
                    lease_expires_at=None,
                    updated_at=now,
                    attempt_log=_logged(row.attempt_log, row.attempts, row.worker_id, row.started_at, now, error),
                    **values,
                )
            )
    if rows:
        log.warning("ledger: recovered %d job(s) from lost workers (%d requeued, %d dead)", len(rows), requeued, dead)
    return requeued, dead
