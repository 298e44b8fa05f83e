"""What retention deletes: every kind of row Opsdeck keeps, the column that ages it, its default
policy, what a legal hold keeps of it, and what goes with it (children first)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select

from app.models import (
    AuditEntry,
    Email,
    EmailBatch,
    Event,
    IdempotencyRecord,
    Job,
    Scan,
    UnmatchedCallback,
    WebhookAttempt,
    WebhookDelivery,
)
from app.services import audit
from app.services.provisioning import unmatched
from app.services.scans import cleanup


@dataclass(frozen=True)
class Held:
    tenants: frozenset[str]
    events: frozenset[str]
    scans: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Kind:
    """A data kind: its rows, the column that ages them, and what goes with them."""

    name: str
    model: Any
    age: Any  # the column compared with the cutoff
    default_days: int
    description: str
    where: Callable[[], list[Any]] = lambda: []
    #: Conditions that keep held rows (None: nothing of this kind can be held).
    hold: Callable[[Held], list[Any]] | None = None
    #: Runs first on each batch (given as a SELECT of its ids): deletes the rows that reference
    #: it, or records what must outlive it.
    children: Callable[[Any, Any], None] | None = None


def _tenant_hold(column: Any) -> Callable[[Held], list[Any]]:
    def conditions(held: Held) -> list[Any]:
        return [or_(column.is_(None), column.notin_(held.tenants))] if held.tenants else []

    return conditions


def _delivery_hold(held: Held) -> list[Any]:
    out = _tenant_hold(WebhookDelivery.tenant_id)(held)
    if held.events:
        out.append(WebhookDelivery.event_id.notin_(held.events))
    return out


def _event_hold(held: Held) -> list[Any]:
    out = _tenant_hold(Event.tenant_id)(held)
    if held.events:
        out.append(Event.id.notin_(held.events))
    return out


def _scan_hold(held: Held) -> list[Any]:
    out = _tenant_hold(Scan.tenant_id)(held)
    if held.scans:
        out.append(Scan.id.notin_(held.scans))
    return out


def _attempt_hold(held: Held) -> list[Any]:
    if not held.tenants and not held.events:
        return []
    kept = select(WebhookDelivery.id).where(
        or_(WebhookDelivery.tenant_id.in_(held.tenants), WebhookDelivery.event_id.in_(held.events))
    )
    return [WebhookAttempt.delivery_id.notin_(kept)]


def _delivery_children(conn: Any, deliveries: Any) -> None:
    conn.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))


def _event_children(conn: Any, events: Any) -> None:
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(events))
    conn.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    conn.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(events)))


def _paid_callbacks_audited(conn: Any, batch: Any) -> None:
    """A kept callback that says money was paid (ResultCode 0 with an amount) leaves what it
    said in the audit log when retention removes it, as a dismissal does."""
    paid = conn.execute(
        select(UnmatchedCallback).where(
            UnmatchedCallback.id.in_(batch),
            UnmatchedCallback.result_code == 0,
            UnmatchedCallback.amount_paid.is_not(None),
        )
    ).all()
    for row in paid:
        audit.record(
            "system:retention",
            "payment.unmatched_expired",
            target=row.checkout_request_id,
            tenant_id=row.tenant_id,
            details=unmatched.details(row),
        )


FINISHED_MAIL = ("sent", "failed", "suppressed", "digested")

#: Children before parents: attempts, deliveries, then events.
# A table, one kind a row, read down its columns: kept aligned by hand.
# fmt: off
KINDS: list[Kind] = [
    Kind("jobs_succeeded", Job, Job.finished_at, 1, "succeeded jobs", lambda: [Job.status == "succeeded"],
         _tenant_hold(Job.tenant_id)),
    Kind("jobs_failed", Job, Job.finished_at, 7, "dead and cancelled jobs",
         lambda: [Job.status.in_(("dead", "cancelled"))], _tenant_hold(Job.tenant_id)),
    Kind("idempotency", IdempotencyRecord, IdempotencyRecord.created_at, 2, "Idempotency-Key records",
         hold=_tenant_hold(IdempotencyRecord.tenant_id)),
    Kind("webhook_attempts", WebhookAttempt, WebhookAttempt.attempted_at, 30, "webhook delivery attempts",
         hold=_attempt_hold),
    Kind("webhook_deliveries", WebhookDelivery, WebhookDelivery.created_at, 30,
         "settled webhook deliveries (with their attempts)",
         lambda: [WebhookDelivery.status.in_(("succeeded", "dead", "cancelled"))], _delivery_hold,
         _delivery_children),
    Kind("events", Event, Event.created_at, 30, "events (with their deliveries and attempts)",
         lambda: [~select(WebhookDelivery.id).where(WebhookDelivery.event_id == Event.id,
                                                    WebhookDelivery.status.in_(("pending", "retrying"))).exists()],
         _event_hold, _event_children),
    Kind("emails", Email, Email.created_at, 30, "sent, failed, suppressed and digested mails",
         lambda: [Email.status.in_(FINISHED_MAIL)], _tenant_hold(Email.tenant_id)),
    Kind("email_batches", EmailBatch, EmailBatch.created_at, 30, "email batch records"),
    Kind("scans", Scan, Scan.created_at, 90, "scans with a final verdict other than infected (with their files)",
         lambda: [Scan.status.in_(("clean", "rejected", "error"))], _scan_hold, cleanup.entomb),
    Kind("scans_quarantined", Scan, Scan.created_at, 30, "infected scans (with their quarantined files)",
         lambda: [Scan.status == "infected"], _scan_hold, cleanup.entomb),
    Kind("unmatched_callbacks", UnmatchedCallback, UnmatchedCallback.received_at, 90,
         "kept M-Pesa callbacks (their payment never registered, or one an operator must look at); a paid one "
         "leaves its receipt in the audit log", hold=_tenant_hold(UnmatchedCallback.tenant_id),
         children=_paid_callbacks_audited),
    Kind("audit_log", AuditEntry, AuditEntry.created_at, 365, "audit log entries", hold=_tenant_hold(AuditEntry.tenant_id)),
]
# fmt: on
BY_NAME = {k.name: k for k in KINDS}
#: Kinds whose rows have files (deleted through tombstones after the rows commit).
FILE_KINDS = {"scans", "scans_quarantined"}
