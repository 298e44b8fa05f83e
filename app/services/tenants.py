"""Tenants and API keys: create, rotate, revoke, and look up a key for request signing."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, exists, select, update

from app.db.postgres import single_statement
from app.extensions import db
from app.models import ApiKey, IdempotencyRecord, Tenant
from app.models.base import utcnow
from app.models.tenants import key_active
from app.services import audit, crypto


class TenantError(ValueError):
    pass


@dataclass(frozen=True)
class IssuedKey:
    """A key as shown once at creation: the only time the secret is visible."""

    tenant_id: str
    key_id: str
    secret: str

    def as_dict(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id, "key_id": self.key_id, "secret": self.secret}


def _issue_key(tenant: Tenant) -> IssuedKey:
    key_id = "key_" + secrets.token_hex(12)
    secret = "sk_" + secrets.token_urlsafe(32)
    db.session.add(ApiKey(id=key_id, tenant=tenant, secret_encrypted=crypto.encrypt(secret)))
    return IssuedKey(tenant_id=tenant.id, key_id=key_id, secret=secret)


def create_tenant(name: str, *, actor: str = "cli", contact_email: str | None = None) -> IssuedKey:
    """Create a tenant with its first API key. Commits."""
    name = name.strip()
    if not name:
        raise TenantError("tenant name must not be empty")
    contact_email = _checked_contact(contact_email)
    if db.session.scalar(select(Tenant).where(Tenant.name == name)) is not None:
        raise TenantError(f"tenant {name!r} already exists")
    tenant = Tenant(name=name, contact_email=contact_email)
    db.session.add(tenant)
    db.session.flush()
    issued = _issue_key(tenant)
    audit.record(actor, "tenant.create", target=tenant.id, tenant_id=tenant.id, details={"key_id": issued.key_id})
    db.session.commit()
    return issued


def _checked_contact(address: str | None) -> str | None:
    address = (address or "").strip().lower() or None
    if address is not None and (
        "@" not in address or len(address) > 254 or not address.isascii() or any(c.isspace() for c in address)
    ):
        raise TenantError("contact email must be an address")
    return address


def set_contact(tenant: Tenant, address: str | None, *, actor: str) -> Tenant:
    """Set (or clear) the tenant's contact address. Commits."""
    tenant.contact_email = _checked_contact(address)
    audit.record(
        actor, "tenant.contact", target=tenant.id, tenant_id=tenant.id, details={"contact_email": tenant.contact_email}
    )
    db.session.commit()
    return tenant


def find_tenant(name_or_id: str) -> Tenant | None:
    return db.session.scalar(select(Tenant).where((Tenant.id == name_or_id) | (Tenant.name == name_or_id)))


def rotate_key(tenant: Tenant, *, grace: timedelta | None = None, actor: str = "cli") -> IssuedKey:
    """Issue a new key. Older active keys keep working for `grace` (default
    API_KEY_ROTATION_GRACE_HOURS), then stop; a zero grace revokes them now. Commits."""
    if grace is None:
        grace = timedelta(hours=current_app.config["API_KEY_ROTATION_GRACE_HOURS"])
    now = utcnow()
    retiring = []
    for key in tenant.keys:
        if key.active:
            if grace > timedelta(0):
                key.expires_at = min(key.expires_at or now + grace, now + grace)
            else:
                key.revoked_at = now
            retiring.append(key.id)
    issued = _issue_key(tenant)
    audit.record(
        actor,
        "tenant.rotate_key",
        target=tenant.id,
        tenant_id=tenant.id,
        details={"key_id": issued.key_id, "retiring": retiring, "grace_seconds": int(grace.total_seconds())},
    )
    db.session.commit()
    return issued


def revoke_key(key_id: str, *, actor: str = "cli") -> ApiKey:
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise TenantError(f"no key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(actor, "tenant.revoke_key", target=key.id, tenant_id=key.tenant_id)
        db.session.commit()
    return key


@dataclass(frozen=True)
class SigningKey:
    """What request signing needs of an active key (read without the ORM: every signed
    request reads one)."""

    id: str
    tenant_id: str
    last_used_at: datetime | None
    #: A record holds one of the idempotency keys asked about (see active_key_secret).
    replayed: bool = False


_SIGNING_KEY = select(
    ApiKey.id, ApiKey.tenant_id, ApiKey.secret_encrypted, ApiKey.revoked_at, ApiKey.expires_at, ApiKey.last_used_at
).where(ApiKey.id == bindparam("key_id"))
_SIGNING_KEY_AND_REPLAY = _SIGNING_KEY.add_columns(
    exists()
    .where(
        IdempotencyRecord.tenant_id == ApiKey.tenant_id, IdempotencyRecord.key.in_(bindparam("keys", expanding=True))
    )
    .label("replayed")
)
_MARK_USED = update(ApiKey).where(ApiKey.id == bindparam("key_id"))


def active_key_secret(key_id: str, *, replay_keys: Sequence[str] | None = None) -> tuple[SigningKey, str] | None:
    """The active key and its decrypted secret, or None for an unknown or revoked key. One
    statement, outside the session's transaction: a request whose rows are written by its
    group (app/api/grouped.py) opens none. With `replay_keys`, the same statement also tells
    whether the key's tenant holds an idempotency record under any of them
    (`SigningKey.replayed`): a signed write learns that it is a repeat without a second
    round trip."""
    with single_statement(db.engine) as conn:
        if replay_keys is None:
            row = conn.execute(_SIGNING_KEY, {"key_id": key_id}).first()
        else:
            row = conn.execute(_SIGNING_KEY_AND_REPLAY, {"key_id": key_id, "keys": list(replay_keys)}).first()
    if row is None or not key_active(row.revoked_at, row.expires_at):
        return None
    key = SigningKey(row.id, row.tenant_id, row.last_used_at, bool(replay_keys is not None and row.replayed))
    return key, crypto.decrypt_kept(row.secret_encrypted)


def mark_key_used(key_id: str, when: datetime) -> None:
    """Record the key's last use, in a statement of its own: the request holds no lock on the
    key's row (nor, on SQLite, the write lock) while it does its work, or while it waits for
    its group (app/api/grouped.py)."""
    with single_statement(db.engine) as conn:
        conn.execute(_MARK_USED, {"key_id": key_id, "last_used_at": when})
