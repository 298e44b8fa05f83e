"""The outbox: jobs reach Redis only after their row commits, and a relay re-publishes what
did not get there (Redis down, process died after commit, long delays, lost workers).

Redis is the transport, the database is the truth: a message is `(job_id,)` with the job id
as the Dramatiq message id, and a worker skips a message whose job is finished or cancelled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dramatiq import Message
from flask import current_app
from sqlalchemy import case, event, or_, select, update
from sqlalchemy.orm import Session

from app import jobtypes
from app.broker.redis import Publication
from app.extensions import db, queue
from app.models import Job, JobStatus
from app.models.base import utcnow
from app.telemetry import metrics, tracing

log = logging.getLogger(__name__)

_SESSION_KEY = "opsdeck_outbox"
_READY_KEY = "opsdeck_outbox_committed"
_UNPUBLISHED = (JobStatus.PENDING.value, JobStatus.RETRYING.value)
#: Set in Redis when a request path publishes a job (see publish()).
_MARKER = "opsdeck:outbox:published:{}"
_MARKER_TTL = 86400


@dataclass(frozen=True)
class Outgoing:
    job_id: str
    queue_name: str
    actor_name: str
    #: When the job may start (None: now).
    eta_epoch: float | None
    job_type: str
    #: The submitter's span (tracing on): the parent of the publish's producer span.
    traceparent: str | None = None


def _outgoing(job: Job) -> Outgoing:
    return _outgoing_of(job.id, job.queue, job.type, job.next_attempt_at, job.traceparent)


def _outgoing_of(job_id: str, queue_name: str, job_type: str, due: Any, traceparent: str | None) -> Outgoing:
    jt = jobtypes.get(job_type)
    if jt is None:  # a type removed from the code while rows remain
        raise LookupError(f"unknown job type {job_type!r}")
    return Outgoing(job_id, queue_name, jt.actor_name, due.timestamp() if due else None, job_type, traceparent)


def publish_after_commit(session: Session | Any, job: Job) -> None:
    """Publish `job` once the session's transaction commits (dropped on rollback).

    The message is built now: after commit the session has expired the job's attributes.
    """
    session.info.setdefault(_SESSION_KEY, []).append(_outgoing(job))


def publish_row_after_commit(session: Session | Any, row: dict[str, Any]) -> None:
    """`publish_after_commit` for a job inserted from a row, with no ORM object."""
    outgoing = _outgoing_of(row["id"], row["queue"], row["type"], row["next_attempt_at"], row.get("traceparent"))
    session.info.setdefault(_SESSION_KEY, []).append(outgoing)


def install(session_class: Any = Session) -> None:
    """Hook the after-commit publisher into SQLAlchemy sessions (idempotent)."""
    if event.contains(session_class, "after_commit", _after_commit):
        return
    event.listen(session_class, "after_commit", _after_commit)
    event.listen(session_class, "after_transaction_end", _after_transaction_end)
    event.listen(session_class, "after_soft_rollback", _after_rollback)


def _after_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_SESSION_KEY, None)


def _after_commit(session: Session) -> None:
    # The session still holds its connection here; publishing (which writes published_at on
    # another connection) waits for after_transaction_end, when that connection is back in
    # the pool. Publishing from here made every request hold two connections at once, and a
    # burst of requests as large as the pool deadlocked on it.
    outgoing = session.info.pop(_SESSION_KEY, None)
    if outgoing:
        session.info[_READY_KEY] = outgoing


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        outgoing = session.info.pop(_READY_KEY, None)
        if outgoing:
            publish(outgoing)


def publish(items: list[Outgoing], *, confirm_in_db: bool = False) -> list[str]:
    """Enqueue the items to Redis, all in one script call. Returns the ids published: none
    on a broker error (what is left stays pending for the relay).

    Request paths leave the row `pending` and drop a marker in Redis instead of writing the
    database again: the relay turns marked rows into `queued` in bulk, and re-publishes
    unmarked ones (the marker carries the job's due time, so an old marker never vouches
    for a job published again by a retry). If Redis loses its data, it loses the marker with
    the message, and the relay publishes again. `confirm_in_db` (the relay) marks rows
    `queued` directly.
    """
    if not items:
        return []
    max_delay = current_app.config["OUTBOX_MAX_BROKER_DELAY"]
    now = utcnow().timestamp()
    publications: list[Publication] = []
    published: list[Outgoing] = []
    producers = tracing.producers()
    for item in items:
        delay_ms = int((item.eta_epoch - now) * 1000) if item.eta_epoch else 0
        if delay_ms > max_delay * 1000:
            continue  # too far ahead to hold in a worker's memory; the relay sends it when due
        message: Message[Any] = Message(
            queue_name=item.queue_name,
            actor_name=item.actor_name,
            args=(item.job_id,),
            kwargs={},
            options=producers.options(item.job_id, item.queue_name, item.job_type, item.traceparent),
            message_id=item.job_id,
        )
        marker = None if confirm_in_db else (_MARKER.format(item.job_id), _marker_value(item.eta_epoch))
        publications.append(Publication(message, delay_ms if delay_ms > 0 else None, marker))
        published.append(item)
    try:
        # One script call: the messages and their markers go in together, or none of them.
        queue.broker.enqueue_many(publications, marker_ttl=_MARKER_TTL)
    except Exception as err:  # redis.ConnectionError, timeouts…: the relay will re-publish
        log.warning("outbox: broker unavailable (%s); %d job(s) left for the relay", err, len(items))
        published = []
        producers.end(err)
    producers.end()
    metrics.jobs_enqueued(published)
    ids = [item.job_id for item in published]
    if ids and confirm_in_db:
        _mark_published(ids)
    return ids


def _marker_value(eta_epoch: float | None) -> str:
    return "now" if eta_epoch is None else f"{eta_epoch:.6f}"


def _mark_published(job_ids: list[str]) -> None:
    """pending → queued (and published_at on a retrying job re-sent): one statement per 500."""
    now = utcnow()
    queued = case((Job.status == JobStatus.PENDING.value, JobStatus.QUEUED.value), else_=Job.status)
    with db.engine.begin() as conn:
        for start in range(0, len(job_ids), 500):
            conn.execute(
                update(Job)
                .where(Job.id.in_(job_ids[start : start + 500]), Job.status.in_(_UNPUBLISHED))
                .values(status=queued, published_at=now, updated_at=now)
            )


#: Set in Redis (no expiry) by the first relay that finds it missing. Missing again means Redis
#: came back without its data (restarted without persistence, flushed, replaced): every message
#: it held is gone.
_EPOCH = "opsdeck:outbox:epoch"


def recover_redis_loss() -> int:
    """When Redis has lost its data, hand every job it was holding back to the relay: `queued`
    jobs become `pending` again and published retries unpublished. Returns how many. A job
    whose message survived somewhere (a worker's prefetch) runs once anyway: the claim skips
    the duplicate. One relay (the one whose SET NX wins) does it."""
    if not queue.redis.set(_EPOCH, utcnow().isoformat(), nx=True):
        return 0
    with db.engine.begin() as conn:
        queued = conn.execute(
            update(Job)
            .where(Job.status == JobStatus.QUEUED.value)
            .values(status=JobStatus.PENDING.value, published_at=None)
        ).rowcount
        retrying = conn.execute(
            update(Job)
            .where(Job.status == JobStatus.RETRYING.value, Job.published_at.is_not(None))
            .values(published_at=None)
        ).rowcount
    if queued or retrying:
        log.warning("outbox: Redis lost its data; %d queued and %d retrying job(s) go out again", queued, retrying)
    return queued + retrying


#: The Redis server the relays last saw ("<run_id> <unix time>"): a new run_id is a new server
#: (a replica promoted by Sentinel, or a restart), which may lack the old one's last writes.
_MASTER = "opsdeck:outbox:master"
#: How far before the old server's last sighting jobs are sent again: the replication lag and
#: the hosts' clocks fit well within it.
MASTER_CHANGE_MARGIN = 60.0
#: Where the app keeps the server its relay saw at its last tick (run_id, unix time).
_LAST_SEEN = "opsdeck_outbox_last_seen"


def recover_master_change() -> int:
    """When Redis is served by another process than at the last check, what the old one took in
    its last moments may not be there: jobs published since MASTER_CHANGE_MARGIN before the old
    server was last seen go out again (`queued` ones back to `pending`, published retries lose
    their mark; a duplicate of a message that did survive is skipped by the claim). Two
    sightings count: the one kept in Redis (for a relay that started since), and this process's
    own (for what it published to the old server after another relay had moved on, as in a
    manual failover). Returns how many."""
    run_id, now = queue.redis.info("server")["run_id"], time.time()
    changes = []
    kept = queue.redis.getset(_MASTER, f"{run_id} {now:.3f}")
    if kept is not None:
        kept_id, _, at = kept.decode().partition(" ")
        if kept_id != run_id and at:
            changes.append(float(at))
    last_seen = current_app.extensions.get(_LAST_SEEN)
    if last_seen is not None and last_seen[0] != run_id:
        changes.append(last_seen[1])
    current_app.extensions[_LAST_SEEN] = (run_id, now)
    if not changes:
        return 0
    return _publish_again(datetime.fromtimestamp(min(changes) - MASTER_CHANGE_MARGIN, UTC))


def _publish_again(since: datetime) -> int:
    with db.engine.begin() as conn:
        queued = conn.execute(
            update(Job)
            .where(Job.status == JobStatus.QUEUED.value, Job.published_at >= since)
            .values(status=JobStatus.PENDING.value, published_at=None)
        ).rowcount
        retrying = conn.execute(
            update(Job)
            .where(Job.status == JobStatus.RETRYING.value, Job.published_at >= since)
            .values(published_at=None)
        ).rowcount
    if queued or retrying:
        log.warning("outbox: Redis is a new server; %d queued and %d retrying job(s) go out again", queued, retrying)
    return queued + retrying


def relay(*, limit: int | None = None) -> int:
    """Re-publish jobs that should be in Redis and are not known to be. Returns how many.

    - pending jobs older than OUTBOX_GRACE_SECONDS (their after-commit publish failed or never
      ran) that are due within OUTBOX_MAX_BROKER_DELAY;
    - retrying jobs not yet published (long backoff, or Redis was down at retry time).
    Lease recovery for lost workers is in services/ledger.py (recover_expired).
    """
    cfg = current_app.config
    limit = limit or cfg["OUTBOX_BATCH_SIZE"]
    now = utcnow()
    horizon = now + timedelta(seconds=cfg["OUTBOX_MAX_BROKER_DELAY"])
    grace = now - timedelta(seconds=cfg["OUTBOX_GRACE_SECONDS"])
    rows = db.session.scalars(
        select(Job)
        .where(
            or_(
                (Job.status == JobStatus.PENDING.value) & (Job.created_at <= grace),
                (Job.status == JobStatus.RETRYING.value) & Job.published_at.is_(None),
            ),
            or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= horizon),
        )
        .order_by(Job.next_attempt_at)
        .limit(limit)
    ).all()
    items = []
    for job in rows:
        try:
            items.append(_outgoing(job))
        except LookupError:
            log.error("outbox: job %s has unknown type %s; left pending", job.id, job.type)
    db.session.rollback()  # end the read before talking to Redis
    try:
        markers = queue.redis.mget([_MARKER.format(item.job_id) for item in items]) if items else []
    except Exception as err:
        log.warning("outbox: relay skipped, redis unavailable: %s", err)
        return 0
    confirmed = [
        i.job_id for i, m in zip(items, markers, strict=True) if m and m.decode() == _marker_value(i.eta_epoch)
    ]
    if confirmed:
        _mark_published(confirmed)
    return len(publish([i for i in items if i.job_id not in set(confirmed)], confirm_in_db=True))
