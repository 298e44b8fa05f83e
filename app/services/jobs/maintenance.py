"""Housekeeping the relay tick does: recover lost workers' jobs, publish the outbox, drop
expired idempotency records."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select

from app.extensions import db
from app.models import IdempotencyRecord
from app.models.base import utcnow
from app.services.jobs import ledger, outbox, redelivery

log = logging.getLogger(__name__)


def relay_tick() -> dict[str, int]:
    requeued, dead = ledger.recover_expired()
    try:
        lost = outbox.recover_redis_loss() + outbox.recover_master_change()
    except Exception as err:  # Redis down: checked again when it is back
        log.warning("redis loss check skipped: %s", err)
        lost = 0
    published = outbox.relay()
    try:
        redelivery.requeue_from_dead_workers()
    except Exception as err:  # Redis down: nothing to redeliver from until it is back
        log.warning("redelivery skipped: %s", err)
    pruned = prune_expired(max_batches=PRUNE_BATCHES_PER_TICK)["idempotency_records"]
    return {
        "recovered": requeued,
        "dead": dead,
        "lost_in_redis": lost,
        "published": published,
        "records_pruned": pruned,
    }


#: A tick deletes at most this many batches of expired records; what is left goes at the next.
PRUNE_BATCHES_PER_TICK = 10


def prune_expired(*, max_batches: int | None = None, batch: int = 1000) -> dict[str, int]:
    """Drop idempotency records past their expiry, `batch` rows a transaction. Most are a
    write's signature records, which expire minutes after they are made."""
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        ids = db.session.scalars(
            select(IdempotencyRecord.id).where(IdempotencyRecord.expires_at < utcnow()).limit(batch)
        ).all()
        if not ids:
            break
        result = db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
        deleted += result.rowcount  # type: ignore[attr-defined]  # a DML statement's Result is a CursorResult
        db.session.commit()
        batches += 1
    db.session.commit()
    return {"idempotency_records": deleted}
