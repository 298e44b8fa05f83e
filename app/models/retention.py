"""Retention: a policy per data kind, the record of every run, and legal holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import JSONType, Model, UTCDateTime, new_id, utcnow


class RetentionPolicy(Model):
    __tablename__ = "retention_policies"

    kind: Mapped[str] = mapped_column(String(50), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    batch_size: Mapped[int] = mapped_column(Integer, default=5000)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RetentionRun(Model):
    __tablename__ = "retention_runs"
    __table_args__ = (Index("ix_retention_runs_started", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    #: running | completed | interrupted (time budget spent; the next run goes on) | failed
    status: Mapped[str] = mapped_column(String(20), default="running")
    triggered_by: Mapped[str] = mapped_column(String(200))
    #: kind -> rows deleted (or, dry, that would be)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: kind -> rows kept because of a legal hold
    held: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    bytes_deleted: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(2000))


class LegalHold(Model):
    """Rows of a tenant (or one event) that no retention run deletes while the hold exists."""

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    #: None: everything of the tenant; "event": the event `target_id` (and its deliveries);
    #: "scan": the scan `target_id` (and its file).
    target_kind: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
