"""Audit log writes. The caller's transaction carries the entry with the change it records."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

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
    """Add an audit entry to the current session (committed with the caller's change).

    Without an explicit `ip`, an action taken in a web request records the client's address
    (the one piece of the request this service reads, so no route can forget it)."""
    if ip is None and has_request_context():
        ip = request.remote_addr
    entry = AuditEntry(actor=actor, action=action, target=target, tenant_id=tenant_id, details=details, ip=ip)
    db.session.add(entry)
    return entry
