"""Opsdeck through Redis Sentinel (REDIS_SENTINELS): one master, one replica and three real
sentinels (tests/fakes/sentinel.py). REDIS_URL points at a port where nothing listens, so
anything that went around the sentinels would fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from opsdeck_client import OpsdeckClient

from app.broker import connection
from app.config import ConfigError
from app.extensions import db, queue
from app.services import ratelimit, tenants, users
from tests.fakes.processes import wait_until
from tests.fakes.sentinel import MASTER_NAME, SentinelCluster
from tests.helpers import PASSWORD, login, submit, wait_for_status
from tests.test_live_feed import Listener, browser_login

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[SentinelCluster]:
    deployment = SentinelCluster().start()
    yield deployment
    deployment.close()


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'opsdeck.db'}"


@pytest.fixture
def app_config(cluster: SentinelCluster) -> dict[str, Any]:
    env = cluster.env
    return {
        "REDIS_URL": env["REDIS_URL"],
        "REDIS_SENTINELS": cluster.addresses,
        "REDIS_SENTINEL_MASTER": MASTER_NAME,
        "ADMIN_LOGIN_LIMIT_PER_IP": "2 per 15 minutes",
    }


def on_master(cluster: SentinelCluster) -> redis.Redis:
    """A plain client of whichever server the sentinels name master now."""
    return redis.Redis(port=cluster.master_port(), socket_timeout=5)


def test_a_redis_url_that_cannot_go_with_sentinels_is_refused_by_name():
    settings = {"REDIS_SENTINELS": ["127.0.0.1:26379"], "REDIS_SENTINEL_MASTER": "m", "REDIS_SENTINEL_PASSWORD": ""}
    for url in ("rediss://:pw@host/0", "unix:///run/redis.sock", "http://host/0"):
        with pytest.raises(ConfigError, match="REDIS_URL"):
            connection.client({**settings, "REDIS_URL": url})
    master = connection.sentinels({**settings, "REDIS_URL": "redis://ops:p%40ss@ignored:1/3"})
    assert master is not None and master.master_options() == {"db": 3, "username": "ops", "password": "p@ss"}


def test_jobs_feed_and_limits_go_through_the_sentinels(app, workers, cluster):
    """Jobs submitted in this process and through the API of a web process run in a worker; an
    event handled by web B reaches an operator on web A; both kinds of rate limit count on the
    master the sentinels name."""
    assert isinstance(queue.redis.connection_pool, redis.sentinel.SentinelConnectionPool)
    users.create_user("admin@example.com", PASSWORD, "admin")
    key = tenants.create_tenant("shop")
    token = _payment_setup(key.tenant_id)
    web_a = workers.start_web(name="web-a", **cluster.env)
    web_b = workers.start_web(name="web-b", **cluster.env)
    listener = Listener()
    listener.connect(web_a, browser_login(web_a, "admin@example.com"))
    workers.start(**cluster.env)

    here = submit(payload={"message": "from the test process"})
    client = OpsdeckClient(web_b, key.key_id, key.secret, retries=0, timeout=10)
    there = client.request("POST", "/api/v1/jobs", {"type": "system.echo", "payload": {"message": "api"}}).json()["id"]
    for job_id in (here, there):
        assert wait_for_status(job_id, "succeeded", logs=workers.logs).status == "succeeded"

    answer = requests.post(f"{web_b}/api/v1/payments/mpesa/callback/{token}", json=_cancelled("ws_S"), timeout=10)
    assert answer.status_code == 200
    wait_until(lambda: listener.named("payment.failed"), 30, 0.1, what="payment.failed at web A")
    listener.client.disconnect()

    assert [ratelimit.hit("sentinel-window", 1, 60).allowed for _ in range(2)] == [True, False]
    browser = app.test_client()
    assert [login(browser, f"u{i}@example.com", "nope").status_code for i in range(3)] == [200, 200, 429]
    master = on_master(cluster)
    assert master.keys("opsdeck:rl:sentinel-window:*") and master.keys("*opsdeck-limiter*")
    assert master.exists("opsdeck:outbox:published:" + here)


def test_a_manual_failover_is_followed_by_every_process(app, workers, cluster):
    """SENTINEL FAILOVER promotes the replica while the old master still runs, every process's
    connections to it open (the sentinels demote it some seconds later, discarding what it took
    meanwhile): writes move to the new master, and jobs submitted after it, here and through
    the web process, run."""
    key = tenants.create_tenant("shop")
    web = workers.start_web(**cluster.env)
    workers.start(**cluster.env)
    workers.start_scheduler(**cluster.env, OUTBOX_RELAY_INTERVAL=0.5, OUTBOX_GRACE_SECONDS=1)
    client = OpsdeckClient(web, key.key_id, key.secret, retries=2, timeout=10)
    before = [client.request("POST", "/api/v1/jobs", _echo("before")).json()["id"] for _ in range(3)]
    before.append(submit(payload={"message": "before, from the test process"}))
    for job_id in before:
        wait_for_status(job_id, "succeeded", logs=workers.logs)
    old = cluster.master_port()
    assert old is not None
    cluster.failover()
    cluster.wait_for_promotion(old, 30)
    time.sleep(connection.MASTER_CHECK_SECONDS + 0.5)  # every process has asked the sentinels again
    after = [client.request("POST", "/api/v1/jobs", _echo("after")).json()["id"] for _ in range(3)]
    after.append(submit(payload={"message": "after, from the test process"}))
    master = on_master(cluster)
    assert master.connection_pool.connection_kwargs["port"] != old
    assert all(master.exists("opsdeck:outbox:published:" + job_id) for job_id in after)
    for job_id in after:
        assert wait_for_status(job_id, "succeeded", logs=workers.logs).status == "succeeded"


def _echo(message: str) -> dict[str, Any]:
    return {"type": "system.echo", "payload": {"message": message}}


def _payment_setup(tenant_id: str) -> str:
    """A payment expected at ws_S; returns the tenant's M-Pesa callback token."""
    from app.services.provisioning import mpesa, payments, routers

    router = routers.create_router(
        tenant_id, {"name": "r", "host": "127.0.0.1", "port": 1, "username": "a", "password": "b"}, actor="test"
    )
    plan = routers.create_plan(
        tenant_id, {"name": "p", "price": 10, "currency": "KES", "duration_seconds": 60, "profile": "p"}, actor="test"
    )
    payments.register_expected(
        tenant_id, checkout_request_id="ws_S", plan=plan, router=router, phone="+254700000009", mac=None
    )
    token = mpesa.token_for(tenant_id)
    db.session.commit()
    return token


def _cancelled(checkout: str) -> dict[str, Any]:
    return {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": "m",
                "CheckoutRequestID": checkout,
                "ResultCode": 1032,
                "ResultDesc": "Request cancelled by user",
            }
        }
    }
