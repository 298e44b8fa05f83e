"""Taking an upload: stored under a random name (hashed on the way), pre-checked, recorded as
a scan row with its scan job in the caller's transaction, or recorded as rejected with the
reason and no file kept."""

from __future__ import annotations

from typing import IO, Any

from flask import current_app
from sqlalchemy import insert, select

from app.db.statements import add_as_loaded, core_execute
from app.extensions import db
from app.models.base import new_id, utcnow
from app.models.scans import Scan
from app.services import pagination
from app.services.scans import precheck, storage, verdicts
from app.telemetry import metrics


class TooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Files are limited to {limit:,} bytes ({limit / 1024 / 1024:g} MiB).")
        self.limit = limit


def accept(tenant_id: str, filename: str | None, stream: IO[bytes]) -> Scan:
    """Store and pre-check an upload (caller's transaction). Returns the scan row: `pending`
    with its job queued, or `rejected` with `reject_reason` (nothing of its file stored).
    Raises TooLarge (nothing stored) over SCAN_MAX_BYTES. A `storage.Incoming` stream (written
    while the request was parsed) is stored as it is, not copied."""
    config = current_app.config
    received = storage.receive(stream, config["SCAN_MAX_BYTES"])
    if received is None:
        raise TooLarge(config["SCAN_MAX_BYTES"])
    with received:  # closed untaken (refused, or an error below): nothing of it stays
        now = utcnow()
        values: dict[str, Any] = {
            "id": new_id(),
            "tenant_id": tenant_id,
            "display_name": precheck.display_name(filename),
            "size": received.size,
            "sha256": received.sha256(),
            "storage_key": received.key,
            "location": "files",
            "status": "pending",
            "attempts": 0,
            "extension": "",
            "created_at": now,
            "updated_at": now,
        }
        try:
            values["extension"] = precheck.extension(filename, config["SCAN_ALLOWED_EXTENSIONS"])
            values["content_type"] = precheck.content_type(received.head, values["extension"])
        except precheck.Rejected as refusal:
            values.update(
                status="rejected", reject_reason=str(refusal), storage_key=None, location="none", verdict_at=now
            )
            metrics.scan_verdict("rejected")
            return _insert(values)
        received.take()
    try:
        values["job_id"] = verdicts.submit(values["id"], tenant_id).id
    except Exception:
        storage.delete("files", received.key)
        raise
    return _insert(values)


_INSERT = insert(Scan)


def _insert(values: dict[str, Any]) -> Scan:
    """The row goes in with a prepared INSERT after its job (which it names), not through the
    ORM's unit of work and a second UPDATE for `job_id`; the session holds it as loaded, for the
    response."""
    core_execute(_INSERT, values)
    return add_as_loaded(Scan, values)


def get(scan_id: str, tenant_id: str | None) -> Scan | None:
    row = db.session.get(Scan, scan_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        return None
    return row


def listing(
    *,
    tenant_id: str | None = None,
    status: str | None = None,
    location: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> pagination.Page:
    """Scans newest first, keyset-paginated (raises pagination.BadCursor)."""
    query = select(Scan)
    if tenant_id is not None:
        query = query.where(Scan.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Scan.status == status)
    if location is not None:
        query = query.where(Scan.location == location)
    return pagination.newest_first(query, Scan, cursor=cursor, limit=limit)
