"""Webhook endpoints: create, change, delete, rotate the signing secret, enable and disable."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import WebhookEndpoint
from app.models.base import utcnow
from app.services import audit, crypto
from app.services.webhooks import transport

#: Random bytes in a new signing secret (Standard Webhooks allows 24–64).
SECRET_BYTES = 32
SECRET_PREFIX = "whsec_"


class EndpointError(ValueError):
    """Bad endpoint input; `messages` maps fields to lists of messages (marshmallow style)."""

    def __init__(self, messages: dict[str, list[str]]):
        super().__init__("invalid endpoint")
        self.messages = messages


@dataclass(frozen=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def allowed_networks() -> tuple[transport.Network, ...]:
    cached = current_app.extensions.get("opsdeck_webhook_networks")
    if cached is None:
        cached = transport.parse_networks(current_app.config["WEBHOOK_ALLOWED_NETWORKS"])
        current_app.extensions["opsdeck_webhook_networks"] = cached
    return cached


def _check_url(url: str) -> None:
    try:
        transport.vet(url, allowed_networks())
    except transport.Refused as err:
        raise EndpointError({"url": [str(err)]}) from None


def create(tenant_id: str, *, url: str, actor: str, **fields: Any) -> Created:
    """Add an endpoint (its URL vetted now, and again at every send). Not committed."""
    _check_url(url)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=url,
        description=fields.get("description") or "",
        event_types=fields.get("event_types"),
        rate_limit_per_second=fields.get("rate_limit_per_second"),
        enabled=fields.get("enabled", True),
        secret_encrypted=crypto.encrypt(secret),
    )
    db.session.add(endpoint)
    db.session.flush()
    audit.record(
        actor, "webhook_endpoint.create", target=endpoint.id, tenant_id=endpoint.tenant_id, details={"url": url}
    )
    return Created(endpoint, secret)


def get(endpoint_id: str, tenant_id: str | None) -> WebhookEndpoint | None:
    """The endpoint (of this tenant, unless tenant_id is None), unless deleted."""
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None:
        return None
    if tenant_id is not None and endpoint.tenant_id != tenant_id:
        return None
    return endpoint


def list_for(tenant_id: str | None) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
    if tenant_id is not None:
        query = query.where(WebhookEndpoint.tenant_id == tenant_id)
    return list(db.session.scalars(query.order_by(WebhookEndpoint.created_at)))


def update(endpoint: WebhookEndpoint, changes: dict[str, Any], *, actor: str) -> WebhookEndpoint:
    """Apply a partial update. Enabling clears the disable reason and the failure clock."""
    if "url" in changes and changes["url"] != endpoint.url:
        _check_url(changes["url"])
    for name in ("url", "description", "event_types", "rate_limit_per_second"):
        if name in changes:
            setattr(endpoint, name, changes[name] if name != "description" else (changes[name] or ""))
    if "enabled" in changes:
        set_enabled(endpoint, bool(changes["enabled"]), reason="disabled by the tenant", actor=actor, audited=False)
    endpoint.updated_at = utcnow()
    audit.record(
        actor,
        "webhook_endpoint.update",
        target=endpoint.id,
        tenant_id=endpoint.tenant_id,
        details={"fields": sorted(changes)},
    )
    return endpoint


def set_enabled(
    endpoint: WebhookEndpoint, enabled: bool, *, reason: str, actor: str, audited: bool = True
) -> WebhookEndpoint:
    if enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
        endpoint.failing_since = None
    elif endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason[:500], utcnow()
    endpoint.updated_at = utcnow()
    if audited:
        action = "webhook_endpoint.enable" if enabled else "webhook_endpoint.disable"
        audit.record(
            actor,
            action,
            target=endpoint.id,
            tenant_id=endpoint.tenant_id,
            details=None if enabled else {"reason": reason},
        )
    return endpoint


def tell_contact(endpoint: WebhookEndpoint, reason: str) -> None:
    """Mail the tenant's contact that an endpoint was disabled (caller's transaction), when
    the tenant has a contact and the email family is on."""
    from app.models import Tenant
    from app.services.email import mails

    tenant = db.session.get(Tenant, endpoint.tenant_id)
    if tenant is None or not tenant.contact_email or "email" in current_app.config["OPSDECK_DISABLED_FAMILIES"]:
        return
    message = (
        f"Opsdeck stopped delivering webhooks to {endpoint.url}: {reason}.\n\n"
        "Deliveries to it are cancelled until it is enabled again; once it is, the recover call "
        "sends again what failed in a time window."
    )
    mails.submit(
        tenant.id,
        [
            mails.NewMail(
                to=tenant.contact_email,
                template="notification",
                critical=True,
                context={
                    "subject": "Webhook endpoint disabled",
                    "title": "A webhook endpoint was disabled",
                    "message": message,
                },
            )
        ],
    )


def delete(endpoint: WebhookEndpoint, *, actor: str) -> None:
    """Soft delete: the row stays for its deliveries' history; nothing more is sent."""
    endpoint.deleted_at = endpoint.updated_at = utcnow()
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted"
    audit.record(actor, "webhook_endpoint.delete", target=endpoint.id, tenant_id=endpoint.tenant_id)


def rotate_secret(endpoint: WebhookEndpoint, *, actor: str) -> str:
    """A new secret signs from now on; the old one also signs for WEBHOOK_ROTATION_GRACE."""
    secret = new_secret()
    grace = current_app.config["WEBHOOK_ROTATION_GRACE"]
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=grace)
    endpoint.secret_encrypted = crypto.encrypt(secret)
    endpoint.updated_at = utcnow()
    audit.record(
        actor,
        "webhook_endpoint.rotate_secret",
        target=endpoint.id,
        tenant_id=endpoint.tenant_id,
        details={"grace_seconds": grace},
    )
    return secret


def signing_secrets(endpoint: Any) -> list[str]:
    """The secrets that sign a send now: the current one, and the previous during its grace.
    `endpoint` is the model or a row with the same column names."""
    found = [crypto.decrypt_kept(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted is not None and expires is not None and expires > utcnow():
        found.append(crypto.decrypt_kept(endpoint.previous_secret_encrypted))
    return found
