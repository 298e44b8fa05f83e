"""What every admin page shares: the navigation, the feed panel, time and state filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_login import current_user

from app.models.base import utcnow

#: Navigation: (endpoint, label). Family pages fill the slots as they land.
NAVIGATION = [
    ("admin.dashboard", "Dashboard"),
    ("admin.jobs", "Jobs"),
    ("admin.dead_letters", "Dead letters"),
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


def utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _disabled() -> list[str]:
    from flask import current_app

    return current_app.config.get("OPSDECK_DISABLED_FAMILIES", [])


def layout_context() -> dict[str, Any]:
    from app.live import recent

    return {
        "navigation": NAVIGATION
        + [(endpoint, label) for family, endpoint, label in FAMILY_PAGES if family not in _disabled()],
        "family_slots": FAMILY_SLOTS,
        "state_classes": STATE_CLASSES,
        "recent_events": recent(20) if current_user.is_authenticated else [],
    }


def zip_add(left: Any, right: Any) -> list[int]:
    return [a + b for a, b in zip(left, right, strict=True)]


FILTERS = {"ago": ago, "utc": utc, "zip_add": zip_add}
