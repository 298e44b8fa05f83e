"""Reconciling the ledger with the side effects once a scenario has settled.

Each function reads the database as it is now (other processes wrote it), compares it with
what a peer saw (SMTP sink, webhook receiver, stored files, router), returns a summary for
the report and adds what is wrong to `problems`. A scenario asserts `problems` is empty at the
end, so one run shows every disagreement rather than the first.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import case, func, select

from app.extensions import db
from app.models import Email, Job, Scan, WebhookDelivery, WebhookEndpoint
from app.models.provisioning import Payment, Subscription
from app.services.email.outcomes import RECORD_EVERY
from tests.chaos.peers import Receiver, Sink
from tests.fakes.routeros import RouterOsServer

#: Rows not yet in a final state, per table.
UNFINISHED: dict[str, tuple[Any, Any]] = {
    "jobs": (Job, Job.status.in_(("pending", "queued", "running", "retrying"))),
    "emails": (Email, Email.status.in_(("queued", "sending", "retrying"))),
    "deliveries": (WebhookDelivery, WebhookDelivery.status.in_(("pending", "retrying"))),
    "scans": (Scan, Scan.status == "pending"),
    "payments": (Payment, Payment.status == "processing"),
    "subscriptions": (Subscription, Subscription.status.in_(("pending", "provisioning"))),
}


def fresh() -> None:
    db.session.rollback()
    db.session.expire_all()


def unfinished() -> dict[str, int]:
    fresh()
    counts = {
        name: db.session.scalar(select(func.count()).select_from(model).where(where))
        for name, (model, where) in UNFINISHED.items()
    }
    return {name: n for name, n in counts.items() if n}


def settle(timeout: float, logs: Callable[[], str] | None = None, *, stall: float = 20, interval: float = 0.5) -> float:
    """Wait until every job and domain row is final; returns the seconds it took. Gives up
    after `timeout`, or sooner when nothing has moved for `stall` seconds while every unfinished
    job only waits in `pending`/`queued` (nothing running or due for a retry can change it: the
    work is lost). The AssertionError names what is left, with the logs."""
    began = time.monotonic()
    last, moved = None, began
    while True:
        left = unfinished()
        if not left:
            return time.monotonic() - began
        now = time.monotonic()
        if left != last:
            last, moved = left, now
        waiting = db.session.scalar(
            select(func.count()).select_from(Job).where(Job.status.in_(("running", "retrying")))
        )
        stuck = not waiting and now - moved > stall
        if stuck or now - began > timeout:
            rows = db.session.execute(
                select(Job.type, Job.status, func.count()).where(UNFINISHED["jobs"][1]).group_by(Job.type, Job.status)
            ).all()
            why = f"nothing moved for {stall:.0f} s" if stuck else f"not final after {timeout:.0f} s"
            detail = f"{why}: {left}; unfinished jobs: {[tuple(r) for r in rows]}"
            raise AssertionError(detail + ("\n" + logs() if logs else ""))
        time.sleep(interval)


def ledger(problems: list[str]) -> dict[str, Any]:
    """Every job final; counts by type and status; attempts beyond each job's first, by type."""
    fresh()
    extra = func.sum(case((Job.attempts > 1, Job.attempts - 1), else_=0))
    rows = db.session.execute(select(Job.type, Job.status, func.count(), extra).group_by(Job.type, Job.status)).all()
    by_type: dict[str, dict[str, int]] = {}
    again: Counter[str] = Counter()
    for job_type, status, count, tried in rows:
        by_type.setdefault(job_type, {})[status] = count
        again[job_type] += tried or 0
        if status not in ("succeeded", "dead", "cancelled"):
            problems.append(f"ledger: {count} {job_type} job(s) still {status}")
    total = sum(sum(s.values()) for s in by_type.values())
    return {"jobs": total, "by_type": by_type, "attempts_beyond_the_first": {t: n for t, n in again.items() if n}}


def echo(accepted: dict[str, str], problems: list[str]) -> dict[str, Any]:
    """Each accepted system.echo job succeeded once, with its own message as the result."""
    fresh()
    rows = {j.id: j for j in db.session.scalars(select(Job).where(Job.type == "system.echo"))}
    statuses: Counter[str] = Counter()
    retried = 0
    for job_id, message in accepted.items():
        job = rows.get(job_id)
        if job is None:
            problems.append(f"echo: accepted job {job_id} is not in the ledger")
            continue
        statuses[job.status] += 1
        retried += job.attempts > 1
        if job.status != "succeeded" or job.result != {"message": message}:
            problems.append(f"echo: job {job_id} is {job.status} with {job.result!r} (error {job.error!r})")
    messages = Counter(job.payload.get("message") for job in rows.values())
    doubled = [m for m in accepted.values() if messages[m] > 1]
    if doubled:
        problems.append(f"echo: {len(doubled)} accepted request(s) made more than one job, e.g. {doubled[:3]}")
    return {"accepted": len(accepted), "status": dict(statuses), "ran_again_after_a_loss": retried}


def email(
    sink: Sink, accepted: Iterable[str], problems: list[str], *, resend_window: int = 0, expect: str = "sent"
) -> dict[str, Any]:
    """Every accepted mail final (`expect`); a mail `sent` only if the sink has its Message-ID;
    nothing in the sink that Opsdeck did not send; mails received more than once at most
    `resend_window` chunks of RECORD_EVERY (+ the one in flight) — one per kill of a batch."""
    fresh()
    ids = set(accepted)
    rows = [e for e in db.session.scalars(select(Email)) if e.id in ids]
    if len(rows) != len(ids):
        problems.append(f"email: {len(ids) - len(rows)} accepted mail(s) missing from the database")
    counts = sink.message_id_counts()
    known = {e.message_id for e in db.session.scalars(select(Email))}
    statuses = Counter(e.status for e in rows)
    for row in rows:
        if row.status == "sent" and row.message_id not in counts:
            problems.append(f"email: {row.id} is sent but the sink never got {row.message_id}")
        if row.status != expect:
            problems.append(f"email: {row.id} is {row.status}, expected {expect} ({row.last_error})")
    strangers = [m for m in counts if m not in known]
    if strangers:
        problems.append(f"email: the sink got {len(strangers)} mail(s) Opsdeck has no record of")
    ours = {e.message_id for e in rows}
    extra = sum(n - 1 for m, n in counts.items() if m in ours)
    allowed = resend_window * (RECORD_EVERY + 1)
    if extra > allowed:
        problems.append(
            f"email: {extra} mail(s) sent twice, more than {resend_window} window(s) of {RECORD_EVERY + 1} allow"
        )
    return {
        "accepted": len(ids),
        "status": dict(statuses),
        "in_sink": sum(counts[m] for m in ours if m in counts),
        "sent_twice": extra,
        "sent_twice_allowed": allowed,
    }


def webhooks(
    receiver: Receiver, accepted: Iterable[str], problems: list[str], *, resend_allowed: int | None = None
) -> dict[str, Any]:
    """Every delivery of the accepted events succeeded; a delivery `succeeded` only if its
    endpoint's receiver answered 2xx for that webhook-id; every request the receiver got
    belongs to a delivery, and repeats carry the same webhook-id and body (at least once).
    `resend_allowed`: most repeats of a 2xx answer allowed (e.g. one per delivery in flight at a kill)."""
    fresh()
    events = set(accepted)
    paths = {e.id: "/" + e.url.split("://", 1)[1].split("/", 1)[1] for e in db.session.scalars(select(WebhookEndpoint))}
    rows = [d for d in db.session.scalars(select(WebhookDelivery)) if d.event_id in events]
    delivered = {(d.event_id, paths[d.endpoint_id]) for d in rows}
    if len({d.event_id for d in rows}) != len(events):
        problems.append(f"webhooks: {len(events) - len({d.event_id for d in rows})} accepted event(s) have no delivery")
    ok: Counter[tuple[str, str]] = Counter()
    seen: Counter[tuple[str, str]] = Counter()
    for answer in receiver.answered:
        seen[(answer.webhook_id, answer.path)] += 1
        if 200 <= answer.status < 300:
            ok[(answer.webhook_id, answer.path)] += 1
    statuses = Counter(d.status for d in rows)
    for row in rows:
        key = (row.event_id, paths[row.endpoint_id])
        if row.status != "succeeded":
            problems.append(f"webhooks: delivery {row.id} is {row.status} ({row.last_error})")
        elif not ok[key]:
            problems.append(f"webhooks: delivery {row.id} succeeded but its receiver never answered 2xx")
    strangers = [k for k in seen if k not in delivered]
    if strangers:
        problems.append(f"webhooks: the receiver got {len(strangers)} webhook-id(s) no delivery of these events has")
    bodies: dict[tuple[str, str], set[str]] = {}
    for request in receiver.requests():
        key = (request.headers.get("webhook-id", ""), request.path)
        bodies.setdefault(key, set()).add(hashlib.sha256(request.body).hexdigest())
    changed = [k for k, b in bodies.items() if len(b) > 1]
    if changed:
        problems.append(f"webhooks: {len(changed)} delivery(ies) sent with different bodies")
    repeats = sum(n - 1 for n in ok.values() if n > 1)
    if resend_allowed is not None and repeats > resend_allowed:
        problems.append(
            f"webhooks: {repeats} repeated 2xx deliveries, more than the {resend_allowed} in flight at kills"
        )
    return {
        "events": len(events),
        "deliveries": len(rows),
        "status": dict(statuses),
        "requests": sum(seen.values()),
        "answered_2xx": sum(ok.values()),
        "repeats_after_2xx": repeats,
        "cut_mid_request": len(receiver.cut),
    }


def stored(location: str) -> set[str]:
    """The keys stored at `files` or `quarantine` of the app's scan storage, either backend."""
    from app.services.scans import storage

    return {entry.key for entry in storage.listing(location)}


def scans(accepted: dict[str, str], kept: set[str], held: set[str], problems: list[str]) -> dict[str, Any]:
    """Each accepted scan has its expected verdict (clean or infected, never clean while clamd
    could not say so), and its file is exactly where the verdict puts it (`kept`: the keys in
    the kept files, `held`: those in quarantine)."""
    fresh()
    rows = {s.id: s for s in db.session.scalars(select(Scan)) if s.id in accepted}
    statuses = Counter(s.status for s in rows.values())
    for scan_id, expected in accepted.items():
        row = rows.get(scan_id)
        if row is None:
            problems.append(f"scans: accepted scan {scan_id} is not in the database")
            continue
        if row.status != expected:
            problems.append(f"scans: {scan_id} is {row.status}, expected {expected} ({row.last_error})")
        folder = {"clean": kept, "infected": held}.get(row.status)
        where = "files" if row.storage_key in kept else "quarantine" if row.storage_key in held else "nowhere"
        if folder is not None and row.storage_key not in folder:
            problems.append(f"scans: {scan_id} is {row.status} but its file is in {where}")
        if row.storage_key in kept and row.storage_key in held:
            problems.append(f"scans: {scan_id} has a copy in files and in quarantine")
        expected_location = {"clean": "files", "infected": "quarantine"}.get(row.status)
        if expected_location and row.location != expected_location:
            problems.append(f"scans: {scan_id} is {row.status} with location {row.location}")
    return {"accepted": len(accepted), "status": dict(statuses), "files_kept": len(kept), "quarantined": len(held)}


def provisioning(router: RouterOsServer, accepted: Iterable[str], problems: list[str]) -> dict[str, Any]:
    """Every paid callback became one payment `processed`, one subscription `active`, and one
    hotspot user on the router (add is an upsert: exactly one user per subscription, none other)."""
    fresh()
    ids = set(accepted)
    payments = [p for p in db.session.scalars(select(Payment)) if p.id in ids]
    subs = list(db.session.scalars(select(Subscription)))
    by_payment = Counter(s.payment_id for s in subs)
    users = router.menus.items("/ip/hotspot/user")
    by_comment = Counter(u.get("comment", "") for u in users)
    by_name = Counter(u["name"] for u in users)
    for payment in payments:
        if payment.status != "processed":
            problems.append(f"provisioning: payment {payment.id} is {payment.status}")
        if by_payment[payment.id] != 1:
            problems.append(f"provisioning: payment {payment.id} has {by_payment[payment.id]} subscription(s)")
    for sub in subs:
        if sub.status != "active":
            problems.append(f"provisioning: subscription {sub.id} is {sub.status} ({sub.last_error})")
        if by_comment[f"opsdeck:{sub.id}"] != 1 or by_name[sub.username] != 1:
            problems.append(
                f"provisioning: subscription {sub.id} has {by_comment[f'opsdeck:{sub.id}']} user(s) on the router"
            )
    upserts = Counter(
        (job.result or {}).get("user")
        for job in db.session.scalars(
            select(Job).where(Job.type == "subscription.provision", Job.status == "succeeded")
        )
    )
    ours = {f"opsdeck:{s.id}" for s in subs}
    strangers = [u["name"] for u in users if u.get("comment") not in ours]
    if strangers:
        problems.append(f"provisioning: the router has {len(strangers)} user(s) no subscription names")
    return {
        "payments": len(payments),
        "payment_status": dict(Counter(p.status for p in payments)),
        "subscriptions": len(subs),
        "subscription_status": dict(Counter(s.status for s in subs)),
        "router_users": len(users),
        "provisioned": dict(upserts),
    }
