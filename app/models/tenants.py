"""Tenants (the platforms that call Opsdeck) and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Model, UTCDateTime, new_id, utcnow


class Tenant(Model):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: Where Opsdeck writes to the tenant about its account (e.g. a webhook endpoint disabled).
    contact_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    keys: Mapped[list[ApiKey]] = relationship(back_populates="tenant", order_by="ApiKey.created_at")


def key_active(revoked_at: datetime | None, expires_at: datetime | None) -> bool:
    """A key works until it is revoked or, after a rotation, until its grace ends."""
    return revoked_at is None and (expires_at is None or expires_at > utcnow())


class ApiKey(Model):
    """An API key: a public id and a secret kept only as Fernet ciphertext."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Set on the old key at rotation: it keeps working until then (the rotation grace).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tenant: Mapped[Tenant] = relationship(back_populates="keys")

    @property
    def active(self) -> bool:
        return key_active(self.revoked_at, self.expires_at)

    def __repr__(self) -> str:  # never the secret
        return f"<ApiKey {self.id} tenant={self.tenant_id} active={self.active}>"
