"""Scenario 6: a burst of 10,000 pieces of work across families at once, then the ledger and the
side effects agree. Most of it is system.echo jobs and webhook deliveries; the heavier families
(mail, scans, router work) are scaled down."""

from __future__ import annotations

import time

import pytest

from app.extensions import db
from app.services import jobs
from app.services.webhooks import events
from tests.chaos import reconcile
from tests.chaos.conftest import ROUTER_PASSWORD, platform, settled
from tests.chaos.stack import Stack, queues_of
from tests.fakes.clamav import EICAR

pytestmark = pytest.mark.chaos

#: The burst: 6,000 echo jobs, 1,750 events to 2 endpoints (3,500 deliveries), 400 mails, 50 scans, 50 payments.
ECHO_API, ECHO_BULK = 200, 5_800
EVENTS_API, EVENTS_BULK = 50, 1_700
MAILS, SCANS, PAYMENTS = 400, 50, 50
#: Rows per transaction when the burst is written through the services (as the API would, in bulk).
CHUNK = 500


def test_ten_thousand_jobs_across_families(app, stack: Stack, tenant_key, sink, hooks, router, report):
    stack.env.update(SMTP_PORT=sink.port)
    stack.web()
    stack.scheduler()
    stack.group("system", queues_of("system"), 8)
    stack.group("webhooks", queues_of("webhooks"), 8)
    stack.group("others", queues_of("email", "scans", "provisioning"), 4)
    shop = platform(stack, tenant_key)
    shop.endpoint(hooks.url("/a"))
    shop.endpoint(hooks.url("/b"))
    router_id, plan_id = shop.shop(router.port, ROUTER_PASSWORD)

    began = time.monotonic()
    # Through the web process: every family's own API.
    for start in range(0, MAILS, 200):
        shop.mails(200, f"burst{start}")
    for i in range(SCANS):
        infected = i % 10 == 0
        shop.upload(
            f"burst-{i}.txt",
            EICAR if infected else f"burst file {i}\n".encode() * 50,
            "infected" if infected else "clean",
        )
    for i in range(PAYMENTS):
        shop.pay(router_id, plan_id, i, "burst")
    for i in range(ECHO_API):
        shop.echo(f"api {i}")
    for i in range(EVENTS_API):
        shop.event(api=i)
    # The bulk through the services, CHUNK per transaction, published to Redis after each commit.
    for start in range(0, ECHO_BULK, CHUNK):
        for i in range(start, min(start + CHUNK, ECHO_BULK)):
            job = jobs.submit("system.echo", {"message": f"bulk {i}"}, tenant_id=tenant_key.tenant_id, max_attempts=10)
            shop.accepted.echo[job.id] = f"bulk {i}"
        db.session.commit()
    for start in range(0, EVENTS_BULK, CHUNK):
        for i in range(start, min(start + CHUNK, EVENTS_BULK)):
            event, _ = events.create(tenant_key.tenant_id, "chaos.ping", {"bulk": i})
            shop.accepted.events.add(event.id)
        db.session.commit()
    submitted = time.monotonic() - began

    settled(report, stack, 300)
    problems = report.problems
    deliveries = 2 * len(shop.accepted.events)
    units = (
        len(shop.accepted.echo)
        + deliveries
        + len(shop.accepted.mails)
        + len(shop.accepted.scans)
        + len(shop.accepted.payments)
    )
    report.add(
        "submitted",
        {
            "work": units,
            "echo": len(shop.accepted.echo),
            "deliveries": deliveries,
            "mails": len(shop.accepted.mails),
            "scans": len(shop.accepted.scans),
            "payments": len(shop.accepted.payments),
            "answers": dict(shop.accepted.answers),
            "seconds": round(submitted, 1),
        },
    )
    report.add("ledger", reconcile.ledger(problems))
    report.add("echo", reconcile.echo(shop.accepted.echo, problems))
    report.add("email", reconcile.email(sink, shop.accepted.mails, problems))
    report.add("webhooks", reconcile.webhooks(hooks, shop.accepted.events, problems, resend_allowed=0))
    report.add(
        "scans",
        reconcile.scans(shop.accepted.scans, reconcile.stored("files"), reconcile.stored("quarantine"), problems),
    )
    report.add("provisioning", reconcile.provisioning(router, shop.accepted.payments, problems))
    if units != 10_000:
        problems.append(f"the burst was {units} pieces of work, not 10,000 (some requests were refused)")
    report.check()
