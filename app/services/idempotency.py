"""Idempotency-Key records: the response a request produced, stored in the same transaction as
what it created, and replayed for a repeat.

A request with a key looks the key up (a read), does its work, then inserts the record with
its response and commits once: one transaction per request. Two requests racing with one key
both do their work; the second's insert finds the first's record (on PostgreSQL it waits for
the first to commit), so it rolls its own work back and answers with the first's response.
Nothing is ever held "in flight": a request cut off by a crash or a database outage leaves no
record, and the client's retry runs at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, delete, select, update

from app.db.statements import Prepared, core_execute
from app.models import IdempotencyRecord
from app.models.base import utcnow
from app.services import crypto


class KeyReused(Exception):
    """Same key, different request."""


@dataclass
class Replay:
    status: int
    body: Any
    headers: dict[str, str]


#: Prefix of the keys of records made for a write's signature. No Idempotency-Key may start
#: with it (app/api/writes.py refuses one).
SIGNATURE_KEY_PREFIX = "opsdeck-signature:"


@dataclass
class Claim:
    """A key no live record holds: the request runs, and `store` records its response."""

    tenant_id: str
    key: str
    request_hash: str
    #: An expired record still holding the key, deleted when the new one is stored.
    expired_id: int | None = None
    #: How long the record is kept; None: IDEMPOTENCY_TTL_HOURS.
    ttl: timedelta | None = None

    @property
    def implicit(self) -> bool:
        """The claim of a write's signature, not of a client's Idempotency-Key."""
        return self.key.startswith(SIGNATURE_KEY_PREFIX)

    def again(self, expired_id: int | None = None) -> Claim:
        return Claim(self.tenant_id, self.key, self.request_hash, expired_id, self.ttl)


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(f"{method.upper()} {path}\n".encode() + body).hexdigest()


_RECORD = select(
    IdempotencyRecord.id,
    IdempotencyRecord.expires_at,
    IdempotencyRecord.request_hash,
    IdempotencyRecord.response_status,
    IdempotencyRecord.response_body,
    IdempotencyRecord.response_headers,
).where(IdempotencyRecord.tenant_id == bindparam("tenant"), IdempotencyRecord.key == bindparam("idem_key"))
_DELETE = delete(IdempotencyRecord).where(IdempotencyRecord.id == bindparam("record_id"))
#: Returns the (tenant_id, key) of each record inserted; nothing for a key a record holds already.
_STORE = Prepared(
    lambda insert: (
        insert(IdempotencyRecord)
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
        .returning(IdempotencyRecord.tenant_id, IdempotencyRecord.key)
    )
)


def signature_claim(tenant_id: str, digest: str, req_hash: str, valid_for: timedelta) -> Claim:
    """The claim of a write sent without an Idempotency-Key, by its signature's digest."""
    return Claim(tenant_id, SIGNATURE_KEY_PREFIX + digest, req_hash, ttl=valid_for)


def lookup(claim: Claim) -> Replay | Claim:
    """The stored response for a repeat, or the claim for a key not in use (a read, no lock).
    Raises KeyReused when the key answered a different request."""
    existing = core_execute(_RECORD, {"tenant": claim.tenant_id, "idem_key": claim.key}).first()
    if existing is None:
        return claim
    if existing.expires_at <= utcnow():
        return claim.again(expired_id=existing.id)
    if existing.request_hash != claim.request_hash:
        raise KeyReused()
    return Replay(existing.response_status, _unseal(existing.response_body), dict(existing.response_headers or {}))


def store(claim: Claim, status: int, body: Any, headers: dict[str, str], *, sealed: bool = False) -> bool:
    """Insert the record in the current transaction (the caller commits it with its writes).
    False when a concurrent request with the same key stored its record first: the caller
    rolls back and replays that one. `sealed`: the body holds a secret (a signing secret
    shown once): stored encrypted."""
    if claim.expired_id is not None:
        core_execute(_DELETE, {"record_id": claim.expired_id})
    return core_execute(_STORE, new_record(claim, status, body, headers, sealed=sealed)).first() is not None


def new_record(
    claim: Claim, status: int, body: Any, headers: dict[str, str], *, sealed: bool = False
) -> dict[str, Any]:
    """The record's row, for `store` or `store_many`."""
    if sealed:
        body = {SEALED: crypto.encrypt(json.dumps(body)).decode()}
    now = utcnow()
    return {
        "tenant_id": claim.tenant_id,
        "key": claim.key,
        "request_hash": claim.request_hash,
        "response_status": status,
        "response_body": body,
        "response_headers": headers,
        "created_at": now,
        "expires_at": now + (claim.ttl or timedelta(hours=current_app.config["IDEMPOTENCY_TTL_HOURS"])),
    }


def store_many(records: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert records from `new_record` (each with its own key) in one statement, in the current
    transaction. Returns the (tenant_id, key) of those inserted: a key a record holds already,
    expired or not, is left as it is."""
    if not records:
        return set()
    return {(row.tenant_id, row.key) for row in core_execute(_STORE, records)}


def update_answer(record: dict[str, Any], status: int, body: Any, headers: dict[str, str]) -> None:
    """Give a record from `new_record`, stored in the current transaction, another answer."""
    core_execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.tenant_id == record["tenant_id"], IdempotencyRecord.key == record["key"])
        .values(response_status=status, response_body=body, response_headers=headers)
    )


#: The key of a stored response body kept as Fernet ciphertext.
SEALED = "_opsdeck_sealed"


def _unseal(body: Any) -> Any:
    if isinstance(body, dict) and set(body) == {SEALED}:
        return json.loads(crypto.decrypt(body[SEALED].encode()))
    return body
