"""Idempotency-Key records: claim a key, store the response with the request's own writes,
replay it for a repeat.

The in-flight marker is committed before the request's work starts, so a concurrent repeat
sees it (409); the completed response is written in the same transaction as what the request
created, so a job can never exist without its key being completed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import IdempotencyRecord
from app.models.base import utcnow
from app.services import crypto

#: An in-flight marker older than this is taken to be from a crashed request and taken over.
STALE_IN_FLIGHT = timedelta(minutes=5)


class KeyInFlight(Exception):
    pass


class KeyReused(Exception):
    """Same key, different request."""


@dataclass
class Replay:
    status: int
    body: Any
    headers: dict[str, str]


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(f"{method.upper()} {path}\n".encode() + body).hexdigest()


def begin(tenant_id: str, key: str, req_hash: str) -> Replay | int:
    """Claim `key` for this request (returns the record id) or return the stored response.

    Raises KeyInFlight while the first request runs and KeyReused for a different request.
    Commits the in-flight marker.
    """
    now = utcnow()
    ttl = timedelta(hours=current_app.config["IDEMPOTENCY_TTL_HOURS"])
    for _ in range(3):
        record = IdempotencyRecord(
            tenant_id=tenant_id, key=key, request_hash=req_hash, created_at=now, expires_at=now + ttl
        )
        db.session.add(record)
        try:
            db.session.commit()
            return record.id
        except IntegrityError:
            db.session.rollback()
        existing = db.session.scalar(
            select(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key)
        )
        if existing is None:
            continue  # deleted meanwhile; try again
        expired = existing.expires_at <= now
        abandoned = existing.state == "in_flight" and existing.created_at <= now - STALE_IN_FLIGHT
        if expired or abandoned:
            db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == existing.id))
            db.session.commit()
            continue
        if existing.request_hash != req_hash:
            db.session.rollback()
            raise KeyReused()
        if existing.state == "in_flight":
            db.session.rollback()
            raise KeyInFlight()
        replay = Replay(existing.response_status or 200, _unseal(existing.response_body),
                        dict(existing.response_headers or {}))  # fmt: skip
        db.session.rollback()
        return replay
    raise KeyInFlight()


def complete(record_id: int, status: int, body: Any, headers: dict[str, str], *, sealed: bool = False) -> None:
    """Store the response in the current transaction (the caller commits it with its writes).
    `sealed`: the body holds a secret (a signing secret shown once): stored encrypted."""
    if sealed:
        body = {SEALED: crypto.encrypt(json.dumps(body)).decode()}
    db.session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id)
        .values(state="completed", response_status=status, response_body=body, response_headers=headers)
        .execution_options(synchronize_session=False)  # nothing in the session to keep in step
    )


#: The key of a stored response body kept as Fernet ciphertext.
SEALED = "_opsdeck_sealed"


def _unseal(body: Any) -> Any:
    if isinstance(body, dict) and set(body) == {SEALED}:
        return json.loads(crypto.decrypt(body[SEALED].encode()))
    return body


def release(record_id: int) -> None:
    """Drop the marker after a failed request so the client can retry with the same key."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
    db.session.commit()
