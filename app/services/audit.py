"""Audit log writes. The caller's transaction carries the entry with the change it records."""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models import AuditEntry


def record(
    actor: str,
    action: str,
    *,
    target: str | None = None,
    tenant_id: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Add an audit entry to the current session (committed with the caller's change)."""
    entry = AuditEntry(actor=actor, action=action, target=target, tenant_id=tenant_id, details=details, ip=ip)
    db.session.add(entry)
    return entry
