"""Scenarios 2 and 3: Redis stopped while the platform submits through the API, and Redis
restarted under a running workload. Every job the web process accepted (2xx) ends succeeded,
each side effect once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Job
from tests.chaos.conftest import reconcile_traffic, settled, start_all
from tests.chaos.peers import PersistentRedis
from tests.chaos.platform_client import Traffic
from tests.fakes.processes import RedisServer, wait_until

pytestmark = pytest.mark.chaos

#: The app bug the `empty` restart shows (see docs/development.md, Fault suite).


@pytest.fixture
def broker_redis(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """This scenario's Redis: `empty` loses its data when restarted (no persistence, like the
    test fakes' and a failover to an empty replica); `persistent` keeps it (append-only file)."""
    kind = getattr(request, "param", "empty")
    server = (PersistentRedis() if kind == "persistent" else RedisServer()).start()
    yield server
    server.close()


@pytest.fixture
def app_config(broker_redis: RedisServer) -> dict[str, Any]:
    return {
        "REDIS_URL": broker_redis.url,
        "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"],
        "OPSDECK_DISABLED_FAMILIES": ["retention"],
    }


def test_redis_down_while_the_platform_submits(app, stack, tenant_key, broker_redis, sink, hooks, report):
    """Every request answered 202 while Redis was down ends succeeded once Redis is back."""
    shop = start_all(stack, tenant_key, sink, hooks)
    broker_redis.stop()
    ready = requests.get(stack.url + "/readyz", timeout=10)
    report.add("readyz_while_down", {"status": ready.status_code, "down": ready.json().get("down")})
    # Still ready for the load balancer (the web process takes work into the ledger), degraded.
    if ready.status_code != 200 or "redis" not in ready.json().get("down", []):
        report.problems.append(f"readyz did not report Redis down, ready: {ready.status_code} {ready.json()}")
    for i in range(40):
        shop.echo(f"while down {i}", sleep=0.1)
    for i in range(10):
        shop.event(i=i)
    for i in range(3):
        shop.mails(10, f"down{i}")
    refused = {k: v for k, v in shop.accepted.answers.items() if not k.split()[-1].startswith("2")}
    if refused:
        report.problems.append(f"requests not accepted while Redis was down: {refused}")
    db.session.rollback()
    published = db.session.scalar(
        select(func.count()).select_from(Job).where(Job.id.in_(list(shop.accepted.echo)), Job.status != "pending")
    )
    report.add("left_pending_while_down", len(shop.accepted.echo) - published)
    time.sleep(3)  # the workers and the scheduler live through the outage
    broker_redis.start()
    settled(report, stack, 120)
    reconcile_traffic(report, shop, sink, hooks)
    report.check()


@pytest.mark.parametrize(
    "broker_redis",
    ["persistent", "empty"],
    indirect=True,
)
def test_redis_restarted_mid_run(app, stack, tenant_key, broker_redis, sink, hooks, report):
    """Redis restarted twice under load (a backlog queued in Redis, traffic through the API):
    workers, scheduler and web reconnect, and nothing accepted is lost."""
    shop = start_all(stack, tenant_key, sink, hooks)
    traffic = Traffic(shop, echo_sleep=0.2, tag="mid-run")
    traffic.start()
    restarts = []
    for restart in range(2):
        # A backlog the workers cannot take in at once: confirmed `queued` in the ledger, waiting in Redis.
        # Each takes 1 s, so four threads drain 4/s: the backlog waits however slow the posts are.
        backlog = [shop.echo(f"backlog {restart}-{i}", sleep=1.0) for i in range(60)]
        wait_until(lambda b=backlog: _queued(b) >= 20, 30, 0.1, what="the backlog to be queued in Redis")
        queued = _queued(backlog)
        broker_redis.stop()
        time.sleep(1)
        broker_redis.start()
        restarts.append({"backlog_queued_at_restart": queued})
        time.sleep(3)
    traffic.stop()
    report.add("restarts", restarts)
    report.add("traffic_rounds", traffic.rounds)
    settled(report, stack, 90)
    reconcile_traffic(report, shop, sink, hooks)
    report.check()


def _queued(job_ids: list[str | None]) -> int:
    db.session.rollback()
    ids = [i for i in job_ids if i]
    return db.session.scalar(select(func.count()).select_from(Job).where(Job.id.in_(ids), Job.status == "queued"))
