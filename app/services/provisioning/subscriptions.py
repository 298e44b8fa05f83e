"""Subscriptions: made from a payment, a voucher or by hand; provisioned as a hotspot user on
their router (retried on PROVISION_RETRY_SCHEDULE, one worker at a time per router and user);
extended, expired or provisioned again; removed from the router at expiry."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from marshmallow import Schema, fields
from sqlalchemy import select

from app.extensions import db, queue
from app.jobtypes import JobType, register
from app.models import Job
from app.models.base import new_id, utcnow
from app.models.provisioning import Plan, Router, Subscription
from app.services import audit, crypto, jobs
from app.services.jobs import ledger
from app.services.provisioning import hotspot
from app.services.webhooks import events
from app.telemetry import metrics


class SubscriptionPayload(Schema):
    subscription_id = fields.String(required=True)


PROVISION = register(
    JobType("subscription.provision", family="provisioning", queue="provisioning", payload=SubscriptionPayload)
)
DEPROVISION = register(
    JobType("subscription.deprovision", family="provisioning", queue="provisioning", payload=SubscriptionPayload)
)

log = logging.getLogger(__name__)
#: Unambiguous characters for generated usernames and passwords (no 0/O, 1/l/I).
CHARSET = "abcdefghjkmnpqrstuvwxyz23456789"
#: A user's lock outlives the slowest router call: this many ROUTER_TIMEOUTs (connect, a few
#: replies, one reconnect).
LOCK_TIMEOUTS = 8


class SubscriptionError(ValueError):
    pass


def random_text(length: int, charset: str = CHARSET, prefix: str = "") -> str:
    return prefix + "".join(secrets.choice(charset) for _ in range(length))


def max_attempts() -> int:
    return min(current_app.config["JOB_MAX_ATTEMPTS_LIMIT"], len(current_app.config["PROVISION_RETRY_SCHEDULE"]) + 1)


def create(
    tenant_id: str,
    plan: Plan,
    router: Router,
    *,
    source: str,
    subscriber_id: str | None = None,
    payment_id: str | None = None,
    username: str | None = None,
    password: str | None = None,
    mac: str | None = None,
    provision: bool = True,
) -> Subscription:
    """A new subscription starting now for the plan's duration (caller's transaction), with its
    provisioning job unless `provision` is False."""
    now = utcnow()
    row = Subscription(
        id=new_id(),
        tenant_id=tenant_id,
        subscriber_id=subscriber_id,
        plan_id=plan.id,
        router_id=router.id,
        payment_id=payment_id,
        source=source,
        status="pending",
        username=username or random_text(8, prefix="u"),
        password_encrypted=crypto.encrypt(password or random_text(8)),
        mac=mac,
        starts_at=now,
        expires_at=now + timedelta(seconds=plan.duration_seconds),
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(row)
    if provision:
        schedule(row, PROVISION)
    return row


def schedule(row: Subscription, job_type: JobType, delay_seconds: float = 0) -> None:
    """Queue a router job for the subscription (caller's transaction); it supersedes any other."""
    job = jobs.submit(
        job_type.name,
        {"subscription_id": row.id},
        tenant_id=row.tenant_id,
        max_attempts=max_attempts(),
        delay_seconds=delay_seconds,
    )
    row.job_id, row.updated_at = job.id, utcnow()
    if job_type is PROVISION:
        row.status = "provisioning" if row.status in ("pending", "failed", "active") else row.status


def username_taken(router_id: str, username: str) -> bool:
    return (
        db.session.scalar(
            select(Subscription.id).where(Subscription.router_id == router_id, Subscription.username == username)
        )
        is not None
    )


def password_of(row: Subscription) -> str:
    return crypto.decrypt(row.password_encrypted)


def get(subscription_id: str, tenant_id: str | None) -> Subscription | None:
    row = db.session.get(Subscription, subscription_id)
    return None if row is None or (tenant_id is not None and row.tenant_id != tenant_id) else row


# -- operator actions -------------------------------------------------------------------
def extend(row: Subscription, seconds: int, *, actor: str) -> None:
    """Push the expiry back (from now if it already passed) and make sure the user is there."""
    if seconds <= 0:
        raise SubscriptionError("extend by a positive number of seconds")
    if row.status == "cancelled":
        raise SubscriptionError("a cancelled subscription cannot be extended")
    now = utcnow()
    row.expires_at = max(row.expires_at, now) + timedelta(seconds=seconds)
    if row.status in ("expired", "failed"):
        row.expired_at = None
        schedule(row, PROVISION)
    audit.record(actor, "subscription.extend", target=row.id, tenant_id=row.tenant_id, details={"seconds": seconds})


def expire_now(row: Subscription, *, actor: str) -> None:
    if row.status in ("expired", "cancelled"):
        raise SubscriptionError(f"the subscription is already {row.status}")
    row.expires_at = min(row.expires_at, utcnow())
    schedule(row, DEPROVISION)
    audit.record(actor, "subscription.expire", target=row.id, tenant_id=row.tenant_id)


def reprovision(row: Subscription, *, actor: str) -> None:
    if row.status in ("expired", "cancelled") or row.expires_at <= utcnow():
        raise SubscriptionError("only a subscription that has not expired can be provisioned again")
    schedule(row, PROVISION)
    audit.record(actor, "subscription.reprovision", target=row.id, tenant_id=row.tenant_id)


# -- the router work ----------------------------------------------------------------------
@dataclass
class Outcome:
    result: dict[str, Any] = field(default_factory=dict)
    retry: Exception | None = None
    live: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tenant_id: str | None = None


def summary(row: Subscription, **extra: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "username": row.username,
        "router_id": row.router_id,
        "plan_id": row.plan_id,
        "payment_id": row.payment_id,
        "expires_at": row.expires_at.isoformat(),
        **extra,
    }


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
# Take the lock when it is free or already this job's (an earlier attempt that died), and (re)set
# its expiry: one round trip.
_ACQUIRE = """local v = redis.call('get', KEYS[1])
if v == false or v == ARGV[1] then redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end
return 0"""


@contextlib.contextmanager
def _user_lock(row: Subscription, owner: str) -> Iterator[bool]:
    """One job at a time changes a user on a router (Redis, across processes). The holder is the
    job: its next attempt, after its worker died holding the lock, takes it over at once instead
    of waiting for it to expire. Expires after the longest a router call can take."""
    key = f"opsdeck:router:{row.router_id}:user:{row.username}"
    timeout = current_app.config["ROUTER_TIMEOUT"]
    ttl, deadline = int(timeout * LOCK_TIMEOUTS) + 5, time.monotonic() + timeout * 2
    held = bool(queue.redis.eval(_ACQUIRE, 1, key, owner, ttl))
    while not held and time.monotonic() < deadline:
        time.sleep(0.05)
        held = bool(queue.redis.eval(_ACQUIRE, 1, key, owner, ttl))
    try:
        yield held
    finally:
        if held:
            queue.redis.eval(_RELEASE, 1, key, owner)


def provision(subscription_id: str, job: ledger.ClaimedJob) -> Outcome:
    """Make the router match the subscription: the plan's profile, then the user (added, or
    updated when the name exists)."""
    row = db.session.get(Subscription, subscription_id)
    if row is None or row.job_id != job.id:
        return Outcome({"skipped": "superseded"})
    if row.status not in ("provisioning", "pending"):
        return Outcome({"skipped": f"subscription is {row.status}"})
    plan, router = db.session.get(Plan, row.plan_id), db.session.get(Router, row.router_id)
    assert plan is not None and router is not None
    user = hotspot.HotspotUser(
        name=row.username,
        password=password_of(row),
        profile=plan.profile,
        server=router.hotspot_server,
        comment=f"opsdeck:{row.id}",
        limit_uptime=plan.uptime_limit,
        limit_bytes_total=plan.data_limit_bytes,
    )
    # Nothing held open while the router answers. The read ends with a commit (nothing was
    # written): a rollback would expire plan and router, which the router call then reloaded
    # one by one.
    db.session.commit()

    def work(api: Any) -> str:
        hotspot.ensure_profile(
            api, plan.profile, rate_limit=plan.rate_limit, shared_users=plan.shared_users, router_id=router.id
        )
        return hotspot.upsert_user(api, user)

    with _user_lock(row, job.id) as held:
        if not held:
            return _failed(subscription_id, job, "another worker is changing this user on the router")
        try:
            how = hotspot.call(router, work)
        except hotspot.RouterError as err:
            return _failed(subscription_id, job, str(err))
    row = db.session.get(Subscription, subscription_id, populate_existing=True)
    assert row is not None, "subscriptions are never deleted"
    now = utcnow()
    row.status, row.provisioned_at, row.updated_at, row.last_error = "active", now, now, None
    row.attempts += 1
    data = summary(row, user=how)
    events.emit(row.tenant_id, "subscription.provisioned", data)
    db.session.commit()
    metrics.provisioning_outcome("provisioned")
    return Outcome({"user": how}, live=[("subscription.provisioned", data)], tenant_id=row.tenant_id)


def _failed(subscription_id: str, job: ledger.ClaimedJob, error: str) -> Outcome:
    row = db.session.get(Subscription, subscription_id)
    assert row is not None, "subscriptions are never deleted"
    row.attempts, row.last_error, row.updated_at = row.attempts + 1, error[:500], utcnow()
    outcome = Outcome(tenant_id=row.tenant_id)
    if job.attempts >= job.max_attempts:
        row.status = "failed"
        data = summary(row, error=row.last_error, attempts=job.attempts)
        events.emit(row.tenant_id, "provisioning.failed", data)
        metrics.provisioning_outcome("failed")
        outcome.live.append(("provisioning.failed", data))
        outcome.retry = ledger.GiveUp(error)
    else:
        delay = ledger.retry_delay(job.attempts, {"retry_schedule": current_app.config["PROVISION_RETRY_SCHEDULE"]})
        outcome.retry = ledger.RetryIn(delay, error)
    db.session.commit()
    return outcome


def deprovision(subscription_id: str, job: ledger.ClaimedJob) -> Outcome:
    """Expiry: remove the user, kick its sessions, drop its cookies; then `expired`."""
    row = db.session.get(Subscription, subscription_id)
    if row is None or row.job_id != job.id:
        return Outcome({"skipped": "superseded"})
    if row.status in ("expired", "cancelled"):
        return Outcome({"skipped": f"subscription is {row.status}"})
    router = db.session.get(Router, row.router_id)
    assert router is not None, "routers are only ever soft-deleted"
    db.session.commit()  # a read: nothing held open while the router answers (see provision)
    username = row.username
    with _user_lock(row, job.id) as held:
        if not held:
            return _retry_removal(job, "another worker is changing this user on the router")
        try:
            removed = hotspot.call(router, lambda api: hotspot.remove_user(api, username))
        except hotspot.RouterError as err:
            return _retry_removal(job, str(err))
    row = db.session.get(Subscription, subscription_id, populate_existing=True)
    assert row is not None, "subscriptions are never deleted"
    now = utcnow()
    row.status, row.expired_at, row.updated_at, row.last_error = "expired", now, now, None
    data = summary(row, removed=removed)
    events.emit(row.tenant_id, "subscription.expired", data)
    db.session.commit()
    metrics.provisioning_outcome("expired")
    return Outcome({"removed": removed}, live=[("subscription.expired", data)], tenant_id=row.tenant_id)


def _retry_removal(job: ledger.ClaimedJob, error: str) -> Outcome:
    """An expired user must not stay on the router: removal retries for as long as it takes
    (the schedule's last delay repeats; the expiry check queues it again if the job dies)."""
    delay = ledger.retry_delay(job.attempts, {"retry_schedule": current_app.config["PROVISION_RETRY_SCHEDULE"]})
    return Outcome(retry=ledger.RetryIn(delay, error))


def expire_due(limit: int = 500) -> dict[str, int]:
    """The scheduler's minute check: a removal job for each subscription past its expiry that
    has none running yet."""
    now = utcnow()
    due = db.session.scalars(
        select(Subscription)
        .where(Subscription.status.in_(("active", "provisioning", "pending", "failed")), Subscription.expires_at <= now)
        .order_by(Subscription.expires_at)
        .limit(limit)
    ).all()
    queued = 0
    for row in due:
        current = db.session.get(Job, row.job_id) if row.job_id else None
        if current is not None and current.type == DEPROVISION.name and not jobs.is_finished(current.status):
            continue
        schedule(row, DEPROVISION)
        queued += 1
    db.session.commit()
    return {"queued": queued}
