"""The job ledger: one row per unit of work, whatever its family."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import DDL, ForeignKey, Index, Integer, String, Text, event, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import JSONType, Model, UTCDateTime, new_id, utcnow


class JobStatus(enum.StrEnum):
    PENDING = "pending"  # committed, not yet published (the outbox)
    QUEUED = "queued"  # published to Redis
    RUNNING = "running"  # claimed by a worker, lease held
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # failed, next attempt at next_attempt_at
    DEAD = "dead"  # attempts exhausted
    CANCELLED = "cancelled"


#: States a worker may claim a job from (plus running with an expired lease).
CLAIMABLE = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RETRYING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED)
PRIORITIES = ("high", "normal", "low")


class Job(Model):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    type: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.PENDING.value)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    result: Mapped[Any | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    #: Failed attempts, oldest first: [{"attempt", "worker", "started_at", "ended_at", "error"}].
    #: The current or last attempt is started_at/finished_at; success adds nothing here.
    attempt_log: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker_id: Mapped[str | None] = mapped_column(String(120))
    #: The platform's own key for the job (a batch item's `idempotency_key`): unique per tenant.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    #: W3C traceparent of the span that submitted the job (tracing on), its publish's parent.
    traceparent: Mapped[str | None] = mapped_column(String(55))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        # Tenant listings (newest first, keyset on (created_at, id)) and status filters.
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_jobs_tenant_status_created", "tenant_id", "status", "created_at"),
        # Admin listings across tenants: Dead letters and status filters, newest first.
        Index("ix_jobs_status_created", "status", "created_at", "id"),
        Index("ix_jobs_created", "created_at", "id"),
        # The relay and lease recovery scan only live states by time; the queue rides along so
        # the dashboard's and /metrics' per-queue counts read the index alone.
        Index("ix_jobs_status_next_attempt_queue", "status", "next_attempt_at", "queue"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        Index("ix_jobs_status_finished", "status", "finished_at"),  # retention
        Index(
            "uq_jobs_tenant_idempotency_key",
            "tenant_id",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        # The admin's text search (PostgreSQL): trigram indexes for ILIKE '%term%' on the last
        # error and the payload (jobs.JobFilter's `text`; pg_trgm, created below).
        Index("ix_jobs_error_trgm", text("coalesce(error, '') gin_trgm_ops"), postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
        Index("ix_jobs_payload_trgm", text("(payload::text) gin_trgm_ops"), postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
    )

    @property
    def finished(self) -> bool:
        return self.status in {s.value for s in FINISHED}

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.type} {self.status}>"


event.listen(
    Job.__table__, "before_create", DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql")
)
