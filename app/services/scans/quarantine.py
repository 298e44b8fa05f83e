"""Operators' actions on quarantined files: delete for good, or release a false positive
(admins only, with a reason, audited; the verdict stays `infected`, the file becomes servable)."""

from __future__ import annotations

from app.models.base import utcnow
from app.models.scans import Scan
from app.services import audit
from app.services.scans import storage


class QuarantineError(ValueError):
    pass


def delete(row: Scan, *, actor: str) -> int:
    """Delete a quarantined file (caller's transaction); returns the bytes freed."""
    if row.location != "quarantine" or row.storage_key is None:
        raise QuarantineError("Only a file in quarantine can be deleted here.")
    freed = storage.delete("quarantine", row.storage_key)
    row.location, row.storage_key, row.updated_at = "none", None, utcnow()
    audit.record(
        actor,
        "scan.quarantine_deleted",
        target=row.id,
        tenant_id=row.tenant_id,
        details={"signature": row.signature, "sha256": row.sha256, "bytes": freed},
    )
    return freed


def release(row: Scan, *, actor: str, reason: str) -> None:
    """Move a quarantined file back to storage as a false positive (caller's transaction)."""
    reason = reason.strip()
    if not reason:
        raise QuarantineError("Say why the file is released.")
    if row.location != "quarantine" or row.storage_key is None:
        raise QuarantineError("Only a file in quarantine can be released.")
    storage.move(row.storage_key, "quarantine", "files")
    now = utcnow()
    row.location, row.released_at, row.released_by, row.release_reason, row.updated_at = (
        "files",
        now,
        actor,
        reason[:500],
        now,
    )
    audit.record(
        actor,
        "scan.released",
        target=row.id,
        tenant_id=row.tenant_id,
        details={"signature": row.signature, "sha256": row.sha256, "reason": reason[:500]},
    )
