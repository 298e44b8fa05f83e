"""Callbacks that came before their payment was registered, as operators see them: the list,
what the audit log keeps of one, and dismissing one. (Keeping them and applying them when the
payment is registered is part of the callback's handling, in payments.py.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.provisioning import UnmatchedCallback
from app.services import audit
from app.services.provisioning.payments import PaymentError, find


def listed(tenant_id: str | None = None, limit: int = 100) -> list[UnmatchedCallback]:
    """Callbacks waiting for their payment, newest first (every tenant's when None)."""
    query = select(UnmatchedCallback).order_by(UnmatchedCallback.received_at.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(UnmatchedCallback.tenant_id == tenant_id)
    return list(db.session.scalars(query))


def details(row: Any) -> dict[str, Any]:
    """What the audit log keeps of a kept callback that goes (dismissed, or aged out by retention)."""
    return {
        "result_code": row.result_code,
        "receipt_number": row.receipt_number,
        "amount_paid": None if row.amount_paid is None else str(row.amount_paid),
        "callbacks": row.callbacks,
        "received_at": row.received_at.isoformat(),
    }


def dismiss(unmatched_id: int, *, actor: str) -> UnmatchedCallback | None:
    """An operator settled a callback nobody registered (refunded, or registered elsewhere):
    it goes from the list, and the audit log keeps what it said (caller commits). Locked like
    registration and the sweep lock it: one that is being applied is gone (None) once they
    commit. One whose payment is registered is refused: the sweep is about to apply it."""
    row = db.session.get(UnmatchedCallback, unmatched_id, with_for_update=True)
    if row is None:
        return None
    if find(row.tenant_id, row.checkout_request_id) is not None:
        raise PaymentError({"checkout_request_id": ["Its payment is registered: the minute sweep applies it."]})
    audit.record(
        actor,
        "payment.unmatched_dismiss",
        target=row.checkout_request_id,
        tenant_id=row.tenant_id,
        details=details(row),
    )
    db.session.delete(row)
    return row
