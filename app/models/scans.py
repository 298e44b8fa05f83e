"""Scans: one row per uploaded file, its pre-check and clamd verdicts, where the file lives;
and the signature-database versions clamd has reported (rescans start when a new one appears)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Model, UTCDateTime, new_id, utcnow

#: pending: stored, waiting for clamd; clean: clamd said OK; infected: clamd found a signature
#: (file quarantined); rejected: refused by the pre-checks (no file kept); error: clamd could
#: not give a verdict after every attempt (the file is kept, never served).
SCAN_STATES = ("pending", "clean", "infected", "rejected", "error")
#: Where the file is: files (servable when clean), quarantine, or none (rejected or deleted).
LOCATIONS = ("files", "quarantine", "none")


class Scan(Model):
    __tablename__ = "scans"
    __table_args__ = (
        Index("ix_scans_created", "created_at"),
        Index("ix_scans_tenant_created", "tenant_id", "created_at"),
        Index("ix_scans_location_created", "location", "created_at"),
        Index("ix_scans_status_created", "status", "created_at"),
        Index("ix_scans_verdict_at", "status", "verdict_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: The uploaded name, reduced to safe display text (never used as a path).
    display_name: Mapped[str] = mapped_column(String(255))
    extension: Mapped[str] = mapped_column(String(16), default="")
    #: MIME type detected from the bytes (libmagic), not the one the client claimed.
    content_type: Mapped[str | None] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: Why the pre-checks refused the upload (status rejected).
    reject_reason: Mapped[str | None] = mapped_column(String(300))
    #: Random key (`ab/<32 hex>`) at SCAN_STORAGE_URL or SCAN_QUARANTINE_URL; None when no file is kept.
    storage_key: Mapped[str | None] = mapped_column(String(80))
    location: Mapped[str] = mapped_column(String(16), default="files")
    job_id: Mapped[str | None] = mapped_column(String(36))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: clamd's verdict: the signature found, and the VERSION that gave the verdict.
    signature: Mapped[str | None] = mapped_column(String(300))
    engine_version: Mapped[str | None] = mapped_column(String(40))
    db_version: Mapped[int | None] = mapped_column(Integer)
    db_date: Mapped[str | None] = mapped_column(String(40))
    verdict_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: A rescan against this signature DB version is queued (or done).
    rescan_db_version: Mapped[int | None] = mapped_column(Integer)
    rescanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: An admin released an infected file as a false positive (the verdict stays infected).
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_by: Mapped[str | None] = mapped_column(String(200))
    release_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def servable(self) -> bool:
        """The file may be handed out: clamd said OK, or an admin released it."""
        return self.location == "files" and (self.status == "clean" or self.released_at is not None)

    def __repr__(self) -> str:
        return f"<Scan {self.id} {self.status} {self.display_name!r}>"


class SignatureVersion(Model):
    """Each signature-database version clamd reported, first time seen (rescans key off it)."""

    __tablename__ = "scan_signature_versions"

    db_version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    engine_version: Mapped[str] = mapped_column(String(40))
    db_date: Mapped[str | None] = mapped_column(String(40))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rescans_queued: Mapped[int] = mapped_column(Integer, default=0)


class FileTombstone(Model):
    """A stored file whose row is gone: written in the transaction that deletes the row, the
    file is deleted after that commits, then the tombstone. A crash in between leaves the
    tombstone, and the next sweep finishes the job."""

    __tablename__ = "file_tombstones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    location: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(80), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
