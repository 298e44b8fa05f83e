"""Sending one delivery: Standard Webhooks signatures, the attempt record, the retry decision,
the endpoint's circuit breaker; resend and recover."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from flask import current_app
from marshmallow import Schema, fields
from sqlalchemy import bindparam, func, insert, select, update

from app.db.postgres import single_statement
from app.extensions import db
from app.jobtypes import JobType, register
from app.models import Event, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.models.base import UTCDateTime, utcnow
from app.services import audit, jobs, ratelimit
from app.services.jobs import ledger
from app.services.webhooks import endpoints, transport
from app.telemetry import metrics


class DeliverPayload(Schema):
    delivery_id = fields.String(required=True)


DELIVER = register(JobType("webhooks.deliver", family="webhooks", queue="webhooks", payload=DeliverPayload))

log = logging.getLogger(__name__)
USER_AGENT = "Opsdeck-Webhooks/1"
_transport = transport.Transport()


def sign(message_id: str, timestamp: int, body: bytes, secrets: list[str]) -> str:
    """`webhook-signature`: `v1,<base64 HMAC-SHA256>` per secret, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    values = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix(endpoints.SECRET_PREFIX))
        values.append("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode())
    return " ".join(values)


def max_attempts() -> int:
    limit = current_app.config["JOB_MAX_ATTEMPTS_LIMIT"]
    return min(limit, len(current_app.config["WEBHOOK_RETRY_SCHEDULE"]) + 1)


def new_round(delivery_id: str, tenant_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new round of attempts for a delivery: its ledger job's row (for `jobs.submit_many`),
    and the delivery's columns that say so."""
    job = jobs.new_row(DELIVER.name, {"delivery_id": delivery_id}, tenant_id=tenant_id, max_attempts=max_attempts())
    return job, {
        "job_id": job["id"],
        "status": "pending",
        "next_attempt_at": job["next_attempt_at"],
        "updated_at": job["created_at"],
    }


def start_round(delivery_id: str, tenant_id: str) -> dict[str, Any]:
    """A new round of attempts for a delivery: its ledger job (caller's transaction), and the
    delivery's columns that say so."""
    job, columns = new_round(delivery_id, tenant_id)
    jobs.submit_many([job])
    return columns


def schedule(row: WebhookDelivery) -> None:
    """Start a round of attempts for a delivery the session holds."""
    for column, value in start_round(row.id, row.tenant_id).items():
        setattr(row, column, value)


@dataclass
class Outcome:
    """What an attempt came to; the actor publishes events and raises `retry` when set."""

    result: dict[str, Any] = field(default_factory=dict)
    retry: Exception | None = None
    dead: bool = False
    disabled_reason: str | None = None
    delivery_id: str | None = None
    tenant_id: str | None = None
    endpoint_id: str | None = None
    event_id: str | None = None
    url: str | None = None
    error: str | None = None
    #: On success: the record of the attempt, committed with the job's success (ledger writes).
    writes: list[ledger.Write] = field(default_factory=list)


def _retry_after(headers: dict[str, str]) -> float | None:
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():  # ("²".isdigit() is True)
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (when - utcnow()).total_seconds()) if when.tzinfo else None


_D, _E = WebhookDelivery, WebhookEndpoint
#: Everything one attempt needs, in one statement (the send path is hot: no ORM identity map).
_LOAD = (
    select(
        _D.id,
        _D.job_id,
        _D.status,
        _D.tenant_id,
        _D.endpoint_id,
        _D.event_id,
        _E.url,
        _E.enabled,
        _E.deleted_at,
        _E.disabled_reason,
        _E.rate_limit_per_second,
        _E.secret_encrypted,
        _E.previous_secret_encrypted,
        _E.previous_secret_expires_at,
        _E.failing_since,
        _E.last_success_at,
        Event.body,
    )
    .join(_E, _E.id == _D.endpoint_id)
    .join(Event, Event.id == _D.event_id)
    .where(_D.id == bindparam("delivery_id"))
)
_NOW = UTCDateTime()
_INSERT_ATTEMPT = insert(WebhookAttempt)
_DELIVERED = (
    update(_D)
    .where(_D.id == bindparam("d_id"), _D.job_id == bindparam("j_id"))
    .values(
        status="succeeded",
        attempts=_D.attempts + 1,
        last_status_code=bindparam("code"),
        last_error=None,
        updated_at=bindparam("now", type_=_NOW),
        delivered_at=bindparam("now", type_=_NOW),
        next_attempt_at=None,
    )
)
_ENDPOINT_OK = (
    update(_E)
    .where(_E.id == bindparam("e_id"))
    .values(last_success_at=bindparam("now", type_=_NOW), failing_since=None)
)
#: A success refreshes the endpoint's last_success_at at most this often (one write saved per delivery).
SUCCESS_STAMP_SECONDS = 30


def attempt(delivery_id: str, job: ledger.ClaimedJob) -> Outcome:
    """Send the delivery once (the current attempt of `job`) and record what happened."""
    with single_statement(db.engine) as conn:  # read, then no transaction (or SQLite lock) across the send
        row = conn.execute(_LOAD, {"delivery_id": delivery_id}).first()
    if row is None or row.job_id != job.id:
        return Outcome({"skipped": "superseded by a newer send of this delivery"})
    if row.status in ("succeeded", "cancelled", "dead"):
        return Outcome({"skipped": f"delivery already {row.status}"})
    ids = {
        "delivery_id": row.id,
        "tenant_id": row.tenant_id,
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "url": row.url,
    }
    if not row.enabled or row.deleted_at is not None:
        with single_statement(db.engine) as conn:
            conn.execute(
                update(_D)
                .where(_D.id == row.id, _D.job_id == job.id)
                .values(status="cancelled", last_error=f"endpoint {row.disabled_reason}", updated_at=utcnow())
            )
        return Outcome({"skipped": "endpoint disabled"}, **ids)
    if row.rate_limit_per_second:
        decision = ratelimit.hit(f"webhook:{row.endpoint_id}", row.rate_limit_per_second, 1)
        if not decision.allowed:  # delayed, not failed: spread over the next windows
            return Outcome(retry=ledger.Postpone(decision.retry_after * random.uniform(1, 2), "endpoint rate limit"))

    body, sent_at = row.body.encode(), int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": row.event_id,
        "webhook-timestamp": str(sent_at),
        "webhook-signature": sign(row.event_id, sent_at, body, endpoints.signing_secrets(row)),
    }
    config = current_app.config
    answer: transport.Answer | None = None
    error: str | None = None
    started = time.monotonic()
    try:
        target = transport.vet(row.url, endpoints.allowed_networks())
        answer = _transport.post(
            target, body, headers, timeout=config["WEBHOOK_TIMEOUT"], connect_timeout=config["WEBHOOK_CONNECT_TIMEOUT"]
        )
    except transport.Refused as err:
        error = f"refused: {err}"
    except transport.SendFailed as err:
        error = str(err)
    except Exception as err:  # anything else is still a recorded, scheduled failure
        log.exception("webhook delivery %s: unexpected error", row.id)
        error = f"internal error: {type(err).__name__}"
    duration = answer.duration_ms if answer else int((time.monotonic() - started) * 1000)
    return _record(row, job, answer, error, duration, Outcome(**ids))


def _record(
    row: Any,
    job: ledger.ClaimedJob,
    answer: transport.Answer | None,
    error: str | None,
    duration_ms: int,
    outcome: Outcome,
) -> Outcome:
    """Record the attempt. A success is handed back as `writes` (committed with the job's
    success, in the worker's batch); a failure is one short transaction now."""
    now = utcnow()
    ok = answer is not None and 200 <= answer.status < 300
    if answer is not None and not ok:
        error = f"HTTP {answer.status}"
    attempt_row = {
        "delivery_id": row.id,
        "attempted_at": now - timedelta(milliseconds=duration_ms),
        "duration_ms": duration_ms,
        "status_code": answer.status if answer else None,
        "error": error,
        "succeeded": ok,
        "response_body": answer.body.decode("utf-8", "replace").replace("\x00", "\ufffd") if answer else None,
    }
    outcome.error = error
    metrics.webhook_attempt("success" if ok else "http_error" if answer is not None else "no_response")
    if ok:
        outcome.result = {"status_code": attempt_row["status_code"], "duration_ms": duration_ms}
        outcome.writes = [
            (_INSERT_ATTEMPT, attempt_row),
            (_DELIVERED, {"d_id": row.id, "j_id": job.id, "code": attempt_row["status_code"], "now": now}),
        ]
        stale = row.last_success_at is None or (now - row.last_success_at).total_seconds() > SUCCESS_STAMP_SECONDS
        if row.failing_since is not None or stale:
            outcome.writes.append((_ENDPOINT_OK, {"e_id": row.endpoint_id, "now": now}))
        return outcome

    reason = _disable_reason(row.failing_since or now, answer, now)
    outcome.disabled_reason = reason
    common = {
        "attempts": _D.attempts + 1,
        "last_status_code": attempt_row["status_code"],
        "last_error": error,
        "updated_at": now,
    }
    if reason or job.attempts >= job.max_attempts:
        values = {**common, "status": "dead", "next_attempt_at": None}
        outcome.dead = True
        outcome.retry = ledger.GiveUp(f"{error}; {reason or 'attempts used up'}")
    else:
        delay = _delay(answer, job)
        values = {**common, "status": "retrying", "next_attempt_at": now + timedelta(seconds=delay)}
        outcome.retry = ledger.RetryIn(delay, error or "failed")
    with db.engine.begin() as conn:
        conn.execute(_INSERT_ATTEMPT, attempt_row)
        conn.execute(update(_D).where(_D.id == row.id, _D.job_id == job.id).values(**values))
        if row.failing_since is None:
            conn.execute(
                update(_E).where(_E.id == row.endpoint_id, _E.failing_since.is_(None)).values(failing_since=now)
            )
    if reason:
        endpoint = db.session.get(_E, row.endpoint_id)
        if endpoint is not None and endpoint.enabled:
            endpoints.set_enabled(endpoint, False, reason=reason, actor="system:webhooks")
            endpoints.tell_contact(endpoint, reason)
            db.session.commit()
    return outcome


def _disable_reason(failing_since: datetime, answer: transport.Answer | None, now: datetime) -> str | None:
    if answer is not None and answer.status == 410:
        return "the endpoint answered 410 Gone"
    if (now - failing_since).total_seconds() > current_app.config["WEBHOOK_DISABLE_AFTER"]:
        return f"failing without a success since {failing_since:%Y-%m-%d %H:%M} UTC"
    return None


def _delay(answer: transport.Answer | None, job: ledger.ClaimedJob) -> float:
    """The receiver's Retry-After on 429/503 (bounded), else the schedule with jitter."""
    config = current_app.config
    if answer is not None and answer.status in (429, 503):
        wanted = _retry_after(answer.headers)
        if wanted is not None:
            return min(wanted, float(config["WEBHOOK_RETRY_AFTER_MAX"]))
    return ledger.retry_delay(job.attempts, {"retry_schedule": config["WEBHOOK_RETRY_SCHEDULE"]})


def settle_orphans(limit: int = 1000) -> int:
    """Deliveries still `pending`/`retrying` whose job ended without them (its worker died on
    the last attempt, or an operator cancelled it) become `dead`, so recover and retention see
    them. Run by the scheduler every minute. Commits."""
    finished = select(Job.id).where(Job.id == _D.job_id, Job.status.in_(("dead", "cancelled")))
    stuck = list(
        db.session.scalars(select(_D.id).where(_D.status.in_(("pending", "retrying")), finished.exists()).limit(limit))
    )
    if stuck:
        db.session.execute(
            update(_D)
            .where(_D.id.in_(stuck), _D.status.in_(("pending", "retrying")))
            .values(
                status="dead",
                next_attempt_at=None,
                updated_at=utcnow(),
                last_error=func.coalesce(_D.last_error, "its job ended without a result"),
            ),
            execution_options={"synchronize_session": False},
        )
    db.session.commit()
    return len(stuck)


def get(delivery_id: str, tenant_id: str | None) -> WebhookDelivery | None:
    row = db.session.get(WebhookDelivery, delivery_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        return None
    return row


def attempts_of(delivery_id: str) -> list[WebhookAttempt]:
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id)
    return list(db.session.scalars(query))


def resend(row: WebhookDelivery, *, actor: str, audited: bool = True) -> WebhookDelivery:
    """Send again now, whatever its state: a waiting round is cancelled and a new one starts."""
    if row.job_id:
        jobs.cancel_many([row.job_id])
    schedule(row)
    if audited:
        audit.record(actor, "webhook_delivery.resend", target=row.id, tenant_id=row.tenant_id)
    return row


def recover(endpoint: WebhookEndpoint, since: datetime, until: datetime | None, *, actor: str) -> int:
    """Resend every dead or cancelled delivery of the endpoint created in [since, until)."""
    query = select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint.id,
        WebhookDelivery.status.in_(("dead", "cancelled")),
        WebhookDelivery.created_at >= since,
    )
    if until is not None:
        query = query.where(WebhookDelivery.created_at < until)
    count = 0
    for row in db.session.scalars(query.order_by(WebhookDelivery.created_at)).all():
        resend(row, actor=actor, audited=False)
        count += 1
    audit.record(
        actor,
        "webhook_endpoint.recover",
        target=endpoint.id,
        tenant_id=endpoint.tenant_id,
        details={"since": since.isoformat(), "until": until.isoformat() if until else None, "count": count},
    )
    return count
