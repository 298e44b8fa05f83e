"""Scenario 1: SIGKILL worker groups mid-job, 20 times across families, while the platform keeps
sending work through the web process; then every job is final and each side effect happened
once, or within its family's documented duplicate window."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Email
from tests.chaos import reconcile
from tests.chaos.conftest import ROUTER_PASSWORD, platform, settled
from tests.chaos.platform_client import Platform
from tests.chaos.stack import Stack, queues_of
from tests.fakes.clamav import EICAR
from tests.fakes.http_receiver import Reply
from tests.fakes.processes import wait_until

pytestmark = pytest.mark.chaos

#: Tries per planned kill (a try misses when the job finished before the signal landed).
TRIES = 3
#: The job a kill of each group waits for (provisioning: the router step, so the upsert is tested).
FAMILY_TYPES = {
    "system": {"system.echo"},
    "email": {"email.flush"},
    "webhooks": {"webhooks.deliver"},
    "scans": {"scans.scan"},
    "provisioning": {"subscription.provision"},
}
#: 20 kills, 4 per family. Provisioning first: a worker killed mid-provision leaves the (router,
#: user) Redis lock to expire after its full 120 s, so the retries that outlast it start early.
PLAN = ["provisioning"] * 4 + ["system", "email", "webhooks", "scans"] * 4
THREADS = {"system": 4, "email": 2, "webhooks": 4, "scans": 2, "provisioning": 4}


def sending() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Email).where(Email.status == "sending"))


def test_twenty_sigkills_across_families(app, stack: Stack, tenant_key, sink, hooks, router, clamd_proxy, report):
    # Every side effect takes long enough for a kill to land in the middle of it.
    sink.data_delay = 0.03  # a batch of 60 mails: ~2 s
    hooks.default = Reply(200, delay=1.0)  # each delivery: 1 s at the receiver
    router.delay = 0.5  # each RouterOS command: 0.5 s (an add still lands after its worker is killed)
    clamd_proxy.set("slow", 1.0)  # each clamd answer: 1 s late
    # Retries every ~2 s for long enough to outlast the 120 s (router, user) lock a killed worker leaves.
    stack.env.update(SMTP_PORT=sink.port, CLAMD_URL=clamd_proxy.url, PROVISION_RETRY_SCHEDULE=",".join(["2"] * 24))
    stack.web()
    stack.scheduler()
    for family in THREADS:
        stack.group(family, queues_of(family), THREADS[family])
    shop = platform(stack, tenant_key)
    shop.endpoint(hooks.url("/a"))
    shop.endpoint(hooks.url("/b"))
    router_id, plan_id = shop.shop(router.port, ROUTER_PASSWORD)

    waves = itertools.count()
    feed: dict[str, Callable[[int], None]] = {
        "system": lambda n: [shop.echo(f"echo {n}-{i}", sleep=2) for i in range(8)],
        "email": lambda n: shop.mails(60, f"wave{n}"),
        "webhooks": lambda n: [shop.event(wave=n, i=i) for i in range(8)],
        "scans": lambda n: (
            [shop.upload(f"doc{n}-{i}.txt", f"wave {n} file {i}\n".encode() * 2000, "clean") for i in range(3)]
            + [shop.upload(f"bad{n}.txt", EICAR, "infected")]
        ),
        "provisioning": lambda n: [shop.pay(router_id, plan_id, n * 10 + i, f"w{n}") for i in range(4)],
    }

    def ready(family: str, mails_before: int, adds_before: int) -> bool:
        running = set(stack.running_in(family).values()) & FAMILY_TYPES[family]
        if family == "email":  # mid-batch: the sink has some of this wave and some are still being sent
            return bool(running) and len(sink.received) > mails_before and sending() > 0
        if family == "provisioning":  # mid-add: the router has read an add it has not answered yet
            return bool(running) and len(router.received("/ip/hotspot/user/add")) > adds_before
        return bool(running)

    mid_job: Counter[str] = Counter()
    misses: Counter[str] = Counter()
    for family in PLAN:
        for _ in range(TRIES):
            mails_before, adds_before = len(sink.received), len(router.received("/ip/hotspot/user/add"))
            feed[family](next(waves))
            try:
                wait_until(
                    lambda f=family, m=mails_before, a=adds_before: ready(f, m, a),
                    60,
                    0.02,
                    what=f"{family} work to be running",
                )
            except TimeoutError:
                misses[family] += 1
                continue
            kill = stack.kill(family)
            if set(kill.running.values()) & FAMILY_TYPES[family]:
                mid_job[family] += 1
                break
            misses[family] += 1

    settled(report, stack, 240)
    in_flight = Counter(t for kill in stack.kills for t in kill.running.values())
    report.add(
        "kills",
        {
            "sigkills": len(stack.kills),
            "mid_job": dict(mid_job),
            "missed": dict(misses),
            "jobs_interrupted": dict(in_flight),
        },
    )
    report.add(
        "submitted",
        {
            "echo": len(shop.accepted.echo),
            "events": len(shop.accepted.events),
            "mails": len(shop.accepted.mails),
            "scans": len(shop.accepted.scans),
            "payments": len(shop.accepted.payments),
            "answers": dict(shop.accepted.answers),
        },
    )
    _reconcile(report, shop, stack, sink, hooks, router, app)
    if sum(mid_job.values()) != len(PLAN):
        report.problems.append(f"only {sum(mid_job.values())} of {len(PLAN)} kills landed mid-job: {dict(mid_job)}")
    report.check()


def _reconcile(report, shop: Platform, stack: Stack, sink, hooks, router, app) -> None:
    problems = report.problems
    email_kills = sum(1 for kill in stack.kills if "email.flush" in kill.running.values())
    deliveries_in_flight = sum(1 for kill in stack.kills for t in kill.running.values() if t == "webhooks.deliver")
    report.add("ledger", reconcile.ledger(problems))
    report.add("echo", reconcile.echo(shop.accepted.echo, problems))
    report.add("email", reconcile.email(sink, shop.accepted.mails, problems, resend_window=email_kills))
    report.add(
        "webhooks", reconcile.webhooks(hooks, shop.accepted.events, problems, resend_allowed=deliveries_in_flight)
    )
    report.add(
        "scans",
        reconcile.scans(shop.accepted.scans, reconcile.stored("files"), reconcile.stored("quarantine"), problems),
    )
    report.add("provisioning", reconcile.provisioning(router, shop.accepted.payments, problems))
