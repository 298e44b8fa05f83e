"""Audit log writes. The caller's transaction carries the entry with the change it records."""

from __future__ import annotations

import contextvars
from typing import Any

from app.extensions import db
from app.models import AuditEntry

#: The client address of the request being served; set by the app for every request.
_origin: contextvars.ContextVar[str | None] = contextvars.ContextVar("audit_origin", default=None)


def set_origin(ip: str | None) -> None:
    _origin.set(ip)


def record(
    actor: str,
    action: str,
    *,
    target: str | None = None,
    tenant_id: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Add an audit entry to the current session (committed with the caller's change).

    Without an explicit `ip`, the entry takes the origin the web layer set for this request
    (set_origin), so no route can forget it."""
    if ip is None:
        ip = _origin.get()
    entry = AuditEntry(actor=actor, action=action, target=target, tenant_id=tenant_id, details=details, ip=ip)
    db.session.add(entry)
    return entry
