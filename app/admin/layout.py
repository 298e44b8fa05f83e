"""What every admin page shares: the navigation, the feed panel, time and state filters."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask_login import current_user

from app.models.base import utcnow

log = logging.getLogger(__name__)

#: Navigation: (endpoint, label). Family pages fill the slots as they land.
NAVIGATION = [
    ("admin.dashboard", "Dashboard"),
    ("admin.jobs", "Jobs"),
    ("admin.dead_letters", "Dead letters"),
    ("admin.workers", "Workers"),
    ("admin.schedules", "Schedules"),
    ("admin.tenants", "Tenants & keys"),
    ("admin.audit", "Audit log"),
    ("admin.users", "Users"),
]
#: Family pages: (family, endpoint, label), shown unless the family is switched off.
FAMILY_PAGES = [
    ("email", "admin.emails", "Emails"),
    ("webhooks", "admin.webhooks", "Webhooks"),
    ("scans", "admin.scans", "Scans"),
    ("provisioning", "admin.routers", "Provisioning"),
    ("retention", "admin.retention", "Retention"),
]
#: Families whose pages have not landed yet.
FAMILY_SLOTS: list[str] = []

#: Job states in words and colour (CSS classes in static/admin.css).
STATE_CLASSES = {
    "pending": "state-waiting",
    "queued": "state-waiting",
    "running": "state-running",
    "succeeded": "state-ok",
    "retrying": "state-warn",
    "dead": "state-bad",
    "cancelled": "state-muted",
    # mails
    "sending": "state-running",
    "sent": "state-ok",
    "failed": "state-bad",
    "suppressed": "state-muted",
    "digested": "state-muted",
    # scans
    "clean": "state-ok",
    "infected": "state-bad",
    "rejected": "state-warn",
    "error": "state-bad",
    # provisioning
    "active": "state-ok",
    "provisioning": "state-running",
    "expired": "state-muted",
    "expected": "state-waiting",
    "processing": "state-running",
    "processed": "state-ok",
    "held": "state-warn",
    "online": "state-ok",
    "offline": "state-bad",
    "unknown": "state-muted",
}


def ago(value: datetime | None) -> str:
    """'3 min ago' / 'in 5 s'."""
    if value is None:
        return "—"
    seconds = (utcnow() - value).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        text = f"{int(seconds)} s"
    return f"in {text}" if future else f"{text} ago"


def duration(seconds: float | None) -> str:
    """A runtime: '850 ms', '3.2 s', '4 min 5 s'."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _disabled() -> list[str]:
    from flask import current_app

    return current_app.config.get("OPSDECK_DISABLED_FAMILIES", [])


#: Where a feed item's subject links to, by event type or its family (the part before the dot).
FEED_LINKS = {
    "job": ("admin.job_detail", "job_id"),
    "jobs.bulk_progress": ("admin.job_detail", "job_id"),
    "jobs.bulk_completed": ("admin.job_detail", "job_id"),
    "email.failed": ("admin.email_detail", "email_id"),
    "webhook.endpoint_disabled": ("admin.webhook_endpoint", "endpoint_id"),
    "webhook.delivery_dead": ("admin.webhook_delivery", "delivery_id"),
    "scan": ("admin.scan_detail", "scan_id"),
    "payment.processed": ("admin.payment_detail", "payment_id"),
    "payment.failed": ("admin.payment_detail", "payment_id"),
    "payment.held": ("admin.payment_detail", "payment_id"),
    "subscription": ("admin.subscription_detail", "subscription_id"),
    "provisioning": ("admin.subscription_detail", "subscription_id"),
    "router": ("admin.router_detail", "router_id"),
}
#: The feed's type filter: event families, in this order.
FEED_FAMILIES = ["job", "jobs", "queue", "email", "webhook", "scan", "scans", "retention", "payment",
                 "subscription", "provisioning", "router"]  # fmt: skip
#: Tenants named in the feed's tenant filter (the most recent first past it).
FEED_TENANTS = 500
_PLACEHOLDER = "__id__"


def _feed_links() -> dict[str, str]:
    """Event type or family -> URL with `__id__` where the subject goes (pages that exist)."""
    from flask import current_app, url_for

    links = {}
    for key, (endpoint, arg) in FEED_LINKS.items():
        if endpoint in current_app.view_functions:
            values: dict[str, Any] = {arg: _PLACEHOLDER}
            links[key] = url_for(endpoint, **values)
    return links


def _feed_tenants() -> dict[str, str]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Tenant

    rows = db.session.execute(
        select(Tenant.id, Tenant.name).order_by(Tenant.created_at.desc()).limit(FEED_TENANTS)
    ).all()
    return dict(sorted(((tid, name) for tid, name in rows), key=lambda item: item[1].lower()))


def _feed() -> dict[str, Any]:
    """What the feed's filters and links need, read when a full page draws the feed. An error
    page drawn while the database is down still renders, with no tenants to filter by."""
    try:
        tenants = _feed_tenants()
    except Exception:
        log.warning("feed: tenants not read", exc_info=True)
        tenants = {}
    return {"links": _feed_links(), "tenants": tenants, "families": FEED_FAMILIES}


def _recent_events() -> list[dict[str, Any]]:
    from app.live import recent

    return recent(20)


def layout_context() -> dict[str, Any]:
    """For every template; what costs a read is a function, called only by the full layout
    (not by the fragments the pages refresh)."""
    if not current_user.is_authenticated:
        return {"navigation": [], "family_slots": FAMILY_SLOTS, "state_classes": STATE_CLASSES}
    return {
        "navigation": NAVIGATION
        + [(endpoint, label) for family, endpoint, label in FAMILY_PAGES if family not in _disabled()],
        "family_slots": FAMILY_SLOTS,
        "state_classes": STATE_CLASSES,
        "recent_events": _recent_events,
        "feed": _feed,
    }


def zip_add(left: Any, right: Any) -> list[int]:
    return [a + b for a, b in zip(left, right, strict=True)]


FILTERS = {"ago": ago, "utc": utc, "zip_add": zip_add, "duration": duration}
