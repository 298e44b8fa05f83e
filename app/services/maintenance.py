"""Housekeeping the relay tick does: recover lost workers' jobs, publish the outbox, drop
expired replay-protection rows."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete

from app.extensions import db
from app.models import SeenSignature
from app.models.base import utcnow
from app.services import ledger, outbox, redelivery

log = logging.getLogger(__name__)


def relay_tick() -> dict[str, int]:
    requeued, dead = ledger.recover_expired()
    try:
        lost = outbox.recover_redis_loss()
    except Exception as err:  # Redis down: checked again when it is back
        log.warning("redis loss check skipped: %s", err)
        lost = 0
    published = outbox.relay()
    try:
        redelivery.requeue_from_dead_workers()
    except Exception as err:  # Redis down: nothing to redeliver from until it is back
        log.warning("redelivery skipped: %s", err)
    window = timedelta(seconds=2 * current_app.config["API_SIGNATURE_TOLERANCE"])
    pruned = db.session.execute(delete(SeenSignature).where(SeenSignature.seen_at < utcnow() - window)).rowcount
    db.session.commit()
    return {"recovered": requeued, "dead": dead, "lost_in_redis": lost, "published": published,
            "signatures_pruned": pruned}  # fmt: skip


def prune_expired() -> dict[str, int]:
    """Drop idempotency records past their IDEMPOTENCY_TTL_HOURS (hourly, in batches)."""
    from sqlalchemy import select

    from app.models import IdempotencyRecord

    deleted = 0
    while True:
        ids = db.session.scalars(
            select(IdempotencyRecord.id).where(IdempotencyRecord.expires_at < utcnow()).limit(1000)
        ).all()
        if not ids:
            break
        deleted += db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids))).rowcount
        db.session.commit()
    return {"idempotency_records": deleted}
