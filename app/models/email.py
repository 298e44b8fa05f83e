"""Email: queued mails (each its own outbox row), the batches that sent them, and the
per-tenant suppression list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import JSONType, Model, UTCDateTime, new_id, utcnow

#: queued → sending → sent | retrying → … | failed; suppressed (never sent); digested (sent
#: inside a digest mail, see digest_id).
EMAIL_STATES = ("queued", "sending", "sent", "retrying", "failed", "suppressed", "digested")
#: States a flush may claim (with next_attempt_at due), besides `sending` with a lapsed lease.
CLAIMABLE = ("queued", "retrying")


class Email(Model):
    __tablename__ = "emails"
    __table_args__ = (
        Index("ix_emails_due", "status", "next_attempt_at"),
        Index("ix_emails_tenant_created", "tenant_id", "created_at"),
        Index("ix_emails_created", "created_at"),
        Index("ix_emails_to_created", "to", "created_at"),
        Index("ix_emails_digest", "tenant_id", "to", "digest_key", "status"),
        Index("ix_emails_batch", "batch_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    to: Mapped[str] = mapped_column(String(254))
    #: A template under templates/email/, or None for a mail given as subject + text (+ html).
    template: Mapped[str | None] = mapped_column(String(100))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    subject: Mapped[str | None] = mapped_column(String(998))
    text: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    digest_key: Mapped[str | None] = mapped_column(String(200))
    #: The digest mail this one was folded into.
    digest_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Set before the first attempt, derived from the id: a resend carries the same one.
    message_id: Mapped[str] = mapped_column(String(255))
    batch_id: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EmailBatch(Model):
    """One flush: the mails it claimed and sent over one SMTP connection."""

    __tablename__ = "email_batches"
    __table_args__ = (Index("ix_email_batches_created", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    worker: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    retrying: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: Given back unsent (the relay's rate limit would not reach them within the lease).
    deferred: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class Suppression(Model):
    """An address a tenant's mails are not sent to (hard bounce, unsubscribe, by hand)."""

    __tablename__ = "email_suppressions"
    __table_args__ = (UniqueConstraint("tenant_id", "address", name="uq_email_suppressions_tenant_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    address: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Unsubscribed by the recipient (List-Unsubscribe) rather than bounced or added by hand.
    by_recipient: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
