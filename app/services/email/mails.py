"""Queued mails: submit (with digest windows and the suppression list), read, suppress, and
the signed one-click unsubscribe token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select

from app.extensions import db
from app.models import Email, Suppression
from app.models.base import new_id, utcnow
from app.services import audit
from app.services.email import render
from app.telemetry import metrics


class EmailInputError(ValueError):
    """Bad mail input; `messages` maps fields (or, for a list of mails, indexes) to lists of
    messages (marshmallow style)."""

    def __init__(self, messages: dict[Any, Any]):
        super().__init__("invalid email")
        self.messages = messages


@dataclass(frozen=True)
class NewMail:
    to: str
    template: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    context: dict[str, Any] | None = None
    digest_key: str | None = None
    #: Critical mails are never folded into a digest.
    critical: bool = False
    send_after: datetime | None = None
    headers: dict[str, str] | None = None


def normalise(address: str) -> str:
    return address.strip().lower()


def message_domain() -> str:
    _, address = parseaddr(current_app.config["EMAIL_FROM"])
    return address.rpartition("@")[2] or "opsdeck.local"


def submit(tenant_id: str, mails: list[NewMail]) -> list[Email]:
    """Queue mails in the caller's transaction. Suppressed addresses are recorded as
    `suppressed`; mails with a digest_key wait for their (tenant, recipient, key) window."""
    known = render.names()
    shipped = ", ".join(sorted(known))
    bad = {
        i: {"template": [f"Unknown template {m.template!r}; the templates are: {shipped}."]}
        for i, m in enumerate(mails)
        if m.template is not None and m.template not in known
    }
    if bad:
        raise EmailInputError(bad if len(mails) > 1 else bad[0])
    now = utcnow()
    addresses = {normalise(m.to) for m in mails}
    suppressed = dict(
        db.session.execute(
            select(Suppression.address, Suppression.reason).where(
                Suppression.tenant_id == tenant_id, Suppression.address.in_(addresses)
            )
        ).all()
    )
    window = timedelta(seconds=current_app.config["EMAIL_DIGEST_WINDOW"])
    domain = message_domain()
    created = []
    for mail in mails:
        to = normalise(mail.to)
        due = max(mail.send_after or now, now)
        digest_key = None if mail.critical else mail.digest_key
        if digest_key and to not in suppressed:
            due = _digest_due(tenant_id, to, digest_key, due, window)
        email_id = new_id()
        row = Email(
            id=email_id,
            tenant_id=tenant_id,
            to=to,
            template=mail.template,
            context=mail.context,
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
            headers=mail.headers,
            digest_key=digest_key,
            status="suppressed" if to in suppressed else "queued",
            next_attempt_at=due,
            message_id=f"<{email_id}@{domain}>",
            created_at=now,
            updated_at=now,
            last_error=f"address suppressed: {suppressed[to]}" if to in suppressed else None,
        )
        db.session.add(row)
        created.append(row)
        if to in suppressed:
            metrics.email_outcome("suppressed")
    return created


def _digest_due(tenant_id: str, to: str, key: str, due: datetime, window: timedelta) -> datetime:
    """The open window's send time for (tenant, to, key), or a new window from `due`."""
    open_until = db.session.scalar(
        select(func.min(Email.next_attempt_at)).where(
            Email.tenant_id == tenant_id, Email.to == to, Email.digest_key == key, Email.status == "queued"
        )
    )
    return open_until if open_until is not None and open_until >= due else due + window


def get(email_id: str, tenant_id: str | None) -> Email | None:
    row = db.session.get(Email, email_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        return None
    return row


# -- suppression list ---------------------------------------------------------------
def is_suppressed(tenant_id: str, address: str) -> bool:
    query = select(Suppression.id).where(Suppression.tenant_id == tenant_id, Suppression.address == normalise(address))
    return db.session.scalar(query) is not None


def suppress(tenant_id: str, address: str, reason: str, *, actor: str, by_recipient: bool = False) -> bool:
    """Add the address to the tenant's list (caller's transaction). False when already there."""
    address = normalise(address)
    if is_suppressed(tenant_id, address):
        return False
    db.session.add(Suppression(tenant_id=tenant_id, address=address, reason=reason[:500], by_recipient=by_recipient))
    audit.record(actor, "email.suppress", target=address, tenant_id=tenant_id, details={"reason": reason[:200]})
    return True


def unsuppress(tenant_id: str, address: str, *, actor: str) -> bool:
    row = db.session.scalar(
        select(Suppression).where(Suppression.tenant_id == tenant_id, Suppression.address == normalise(address))
    )
    if row is None:
        return False
    db.session.delete(row)
    audit.record(actor, "email.unsuppress", target=row.address, tenant_id=tenant_id)
    return True


# -- one-click unsubscribe (RFC 8058) -----------------------------------------------------
def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="opsdeck-unsubscribe")


def unsubscribe_token(tenant_id: str, address: str) -> str:
    return _serializer().dumps([tenant_id, normalise(address)])


def unsubscribe_url(tenant_id: str, address: str) -> str:
    return f"{current_app.config['OPSDECK_PUBLIC_URL']}/unsubscribe/{unsubscribe_token(tenant_id, address)}"


def read_unsubscribe_token(token: str) -> tuple[str, str] | None:
    try:
        tenant_id, address = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    return str(tenant_id), str(address)
