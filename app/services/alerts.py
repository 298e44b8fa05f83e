"""Long-wait alerts (Horizon's LongWaitDetected): a queue whose oldest due, waiting job has
waited past its threshold raises an alert once per episode, and a cleared event when it
recovers.

The check is one of the scheduler's schedules (`queues.long_wait`). An episode is a row of
queue_alerts: whichever scheduler process inserts it raises the alert; whichever deletes it
clears it, so several schedulers never alert twice. Raising tells the operators four ways: the
live feed, the dashboard (`active()`), a mail to every active admin, and a `queue.long_wait`
webhook event.

Webhook events go to the tenants with an endpoint subscribed to the type by name: an endpoint
that takes every type does not get them, since they are about the platform, not the tenant's
own work. The mail is sent straight to the relay, not through the email queue, which may be the
queue that waits; a mail the relay did not accept is tried again at the next check.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app import live
from app.extensions import db
from app.models import QueueAlert, User, WebhookEndpoint
from app.models.base import utcnow
from app.services import stats
from app.services.webhooks import events
from app.telemetry import metrics

log = logging.getLogger("opsdeck.alerts")

RAISED = events.service_event("queue.long_wait")
CLEARED = events.service_event("queue.long_wait_cleared")
_PRIORITY_SUFFIXES = ("_high", "_low")


def thresholds() -> tuple[int, dict[str, int]]:
    """(QUEUE_LONG_WAIT_SECONDS, {queue: seconds} from QUEUE_LONG_WAIT_OVERRIDES). Overrides
    are `queue:seconds` items, comma-separated (a bad item is logged and ignored)."""
    config = current_app.config
    default = int(config["QUEUE_LONG_WAIT_SECONDS"])
    raw = config["QUEUE_LONG_WAIT_OVERRIDES"]
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    overrides: dict[str, int] = {}
    for item in (i.strip() for i in items):
        name, _, seconds = item.rpartition(":")
        if not item:
            continue
        if not name or not seconds.strip().isdigit():
            log.warning("QUEUE_LONG_WAIT_OVERRIDES: %r is not queue:seconds; ignored", item)
            continue
        overrides[name.strip()] = int(seconds)
    return default, overrides


def threshold(queue: str, default: int, overrides: dict[str, int]) -> int:
    """A queue's own override, else its family's (`email` covers `email_high`), else the default."""
    if queue in overrides:
        return overrides[queue]
    for suffix in _PRIORITY_SUFFIXES:
        if queue.endswith(suffix) and queue[: -len(suffix)] in overrides:
            return overrides[queue[: -len(suffix)]]
    return default


@dataclass(frozen=True)
class Alert:
    queue: str
    raised_at: datetime
    oldest_waiting_at: datetime
    threshold_seconds: int

    @property
    def waited_seconds(self) -> float:
        return max(0.0, (utcnow() - self.oldest_waiting_at).total_seconds())


def active() -> list[Alert]:
    """The open episodes, longest waiting first (for the dashboard and the metric)."""
    rows = db.session.scalars(select(QueueAlert).order_by(QueueAlert.oldest_waiting_at)).all()
    alerts = [Alert(r.queue, r.raised_at, r.oldest_waiting_at, r.threshold_seconds) for r in rows]
    db.session.rollback()
    return alerts


def check(now: datetime | None = None) -> dict[str, list[str]]:
    """Compare every queue's oldest waiting job with its threshold: raise, clear, and retry
    the mails of open episodes not mailed yet. Returns the queues raised and cleared."""
    now = now or utcnow()
    default, overrides = thresholds()
    waiting = {q.name: q.oldest_waiting for q in stats.queue_stats()}
    open_ = {a.queue: a for a in active()}
    raised, cleared = [], []
    for queue, oldest in sorted(waiting.items()):
        limit = threshold(queue, default, overrides)
        late = oldest is not None and (now - oldest).total_seconds() >= limit
        if late and queue not in open_ and oldest is not None and _raise(queue, oldest, limit, now):
            raised.append(queue)
        elif not late and queue in open_ and _clear(open_[queue], now):
            cleared.append(queue)
    for queue in set(open_) - set(waiting):  # a queue no longer configured
        if _clear(open_[queue], now):
            cleared.append(queue)
    unmailed = [
        Alert(row.queue, row.raised_at, row.oldest_waiting_at, row.threshold_seconds)
        for row in db.session.scalars(select(QueueAlert).where(QueueAlert.emailed_at.is_(None)))
    ]
    db.session.rollback()  # copied first: a rollback expires loaded rows
    for alert in unmailed:
        _mail(alert)
    return {"raised": raised, "cleared": cleared}


def _data(queue: str, oldest: datetime, limit: int, now: datetime) -> dict[str, Any]:
    return {
        "queue": queue,
        "threshold_seconds": limit,
        "waited_seconds": round((now - oldest).total_seconds(), 1),
        "oldest_waiting_at": oldest.isoformat(),
    }


def _raise(queue: str, oldest: datetime, limit: int, now: datetime) -> bool:
    """Open the episode: the row, its webhook events and its feed event in one transaction."""
    data = _data(queue, oldest, limit, now)
    db.session.add(QueueAlert(queue=queue, raised_at=now, oldest_waiting_at=oldest, threshold_seconds=limit))
    try:
        db.session.flush()
    except IntegrityError:  # another scheduler opened it first
        db.session.rollback()
        return False
    _webhook_events(RAISED, data)
    live.publish_after_commit(RAISED, subject=queue, data=data)
    db.session.commit()
    metrics.long_wait_raised(queue)
    log.warning("queue %s: oldest job waited %.0f s (threshold %d s)", queue, data["waited_seconds"], limit)
    return True


def _clear(row: Alert, now: datetime) -> bool:
    """Close the episode (whoever deletes the row clears it)."""
    data = {
        "queue": row.queue,
        "threshold_seconds": row.threshold_seconds,
        "raised_at": row.raised_at.isoformat(),
        "lasted_seconds": round((now - row.raised_at).total_seconds(), 1),
    }
    gone = db.session.execute(delete(QueueAlert).where(QueueAlert.queue == row.queue))
    if not gone.rowcount:  # type: ignore[attr-defined]  # a DML statement's Result is a CursorResult
        db.session.rollback()
        return False
    _webhook_events(CLEARED, data)
    live.publish_after_commit(CLEARED, subject=row.queue, data=data)
    db.session.commit()
    log.info("queue %s: long wait cleared after %.0f s", row.queue, data["lasted_seconds"])
    return True


def _webhook_events(event_type: str, data: dict[str, Any]) -> int:
    """The event for every tenant with an endpoint subscribed to it by name (caller's transaction)."""
    rows = db.session.execute(
        select(WebhookEndpoint.tenant_id, WebhookEndpoint.event_types).where(
            WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None)
        )
    ).all()
    tenants = sorted({tenant for tenant, types in rows if types is not None and events.receives(types, event_type)})
    for tenant in tenants:
        events.emit(tenant, event_type, data)
    return len(tenants)


def operators() -> list[str]:
    """The addresses of every active admin."""
    return list(
        db.session.scalars(select(User.email).where(User.role == "admin", User.active.is_(True)).order_by(User.email))
    )


def _mail(row: Alert) -> bool:
    """Tell the operators by mail (straight to the relay). True when the relay accepted it for
    every operator; else left for the next check."""
    from app.services.email import compose, relay

    # Claimed before sending, so two checks running at once (a slow relay, a "run now") send
    # one mail; given back when the relay refuses it.
    claimed = db.session.execute(
        update(QueueAlert)
        .where(QueueAlert.queue == row.queue, QueueAlert.emailed_at.is_(None))
        .values(emailed_at=utcnow())
    )
    db.session.commit()
    if not claimed.rowcount:  # type: ignore[attr-defined]  # another check has it, or it cleared
        return False
    config = current_app.config
    to = operators()
    if not config.get("SMTP_HOST") or "email" in config.get("OPSDECK_DISABLED_FAMILIES", []):
        to = []  # nowhere to send: recorded as done, the feed and the dashboard carry the alert
    if to:
        waited = (utcnow() - row.oldest_waiting_at).total_seconds()
        msg = EmailMessage()
        msg["From"] = config["EMAIL_FROM"]
        msg["To"] = ", ".join(to)
        msg["Subject"] = f"Opsdeck: queue {row.queue} has waited {waited / 60:.0f} min"
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=compose.envelope_from().rpartition("@")[2] or "opsdeck.local")
        msg.set_content(
            f"The oldest job waiting in queue {row.queue} has waited {waited:.0f} s, past its threshold of "
            f"{row.threshold_seconds} s (since {row.oldest_waiting_at:%Y-%m-%d %H:%M:%S} UTC).\n\n"
            "Are its workers running, and are there enough of them? The workers page shows each process.\n"
            "You get one mail per episode; the live feed says when the queue has recovered.\n"
        )
        try:
            smtp = relay.connect()
            try:
                smtp.send_message(msg, from_addr=compose.envelope_from(), to_addrs=to)
            finally:
                smtp.quit()
        except (OSError, smtplib.SMTPException) as err:
            log.warning("long-wait mail for queue %s not sent (next check retries): %s", row.queue, err)
            db.session.execute(update(QueueAlert).where(QueueAlert.queue == row.queue).values(emailed_at=None))
            db.session.commit()
            return False
    return True
