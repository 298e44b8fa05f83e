"""Taking an upload: stored under a random name (hashed on the way), pre-checked, recorded as
a scan row with its scan job in the caller's transaction, or recorded as rejected with the
reason and no file kept."""

from __future__ import annotations

from typing import BinaryIO

from flask import current_app
from sqlalchemy import select

from app import metrics
from app.extensions import db
from app.models.base import new_id, utcnow
from app.models.scans import Scan
from app.services import pagination
from app.services.scans import precheck, storage, verdicts


class TooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Files are limited to {limit:,} bytes ({limit / 1024 / 1024:g} MiB).")
        self.limit = limit


def accept(tenant_id: str, filename: str | None, stream: BinaryIO) -> Scan:
    """Store and pre-check an upload (caller's transaction). Returns the scan row: `pending`
    with its job queued, or `rejected` with `reject_reason` (its file already deleted).
    Raises TooLarge (nothing stored) over SCAN_MAX_BYTES. A `storage.Incoming` stream (written
    while the request was parsed) is kept where it is, not copied."""
    config = current_app.config
    stored = storage.save(stream, config["SCAN_MAX_BYTES"])
    if stored is None:
        raise TooLarge(config["SCAN_MAX_BYTES"])
    now = utcnow()
    row = Scan(id=new_id(), tenant_id=tenant_id, display_name=precheck.display_name(filename), size=stored.size,
               sha256=stored.sha256, storage_key=stored.key, location="files", status="pending", attempts=0,
               created_at=now, updated_at=now)  # fmt: skip
    try:
        row.extension = precheck.extension(filename, config["SCAN_ALLOWED_EXTENSIONS"])
        with storage.open_file("files", stored.key) as file:
            head = file.read(precheck.SNIFF_BYTES)
        row.content_type = precheck.content_type(head, row.extension)
    except precheck.Rejected as refusal:
        storage.delete("files", stored.key)
        row.status, row.reject_reason, row.storage_key, row.location = "rejected", str(refusal), None, "none"
        row.verdict_at = now
        db.session.add(row)
        metrics.scan_verdict("rejected")
        return row
    db.session.add(row)
    try:
        verdicts.schedule(row)
    except Exception:
        storage.delete("files", stored.key)
        raise
    return row


def get(scan_id: str, tenant_id: str | None) -> Scan | None:
    row = db.session.get(Scan, scan_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        return None
    return row


def listing(
    *, tenant_id: str | None = None, status: str | None = None, location: str | None = None,
    cursor: str | None = None, limit: int = 50,
) -> pagination.Page:  # fmt: skip
    """Scans newest first, keyset-paginated (raises pagination.BadCursor)."""
    query = select(Scan)
    if tenant_id is not None:
        query = query.where(Scan.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Scan.status == status)
    if location is not None:
        query = query.where(Scan.location == location)
    return pagination.newest_first(query, Scan, cursor=cursor, limit=limit)
