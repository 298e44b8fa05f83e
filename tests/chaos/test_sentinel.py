"""Scenario: Redis behind Sentinel (one master, one replica, three sentinels) loses its master
to SIGKILL while the platform submits jobs, events and mails and an operator watches the live
feed. The sentinels promote the replica; every process follows it. Nothing accepted is lost,
no side effect happens twice, and the feed reaches the operator again soon after the promotion.
The report holds the failover window: kill → promotion → first request whose publish reached
the new master."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import requests
import socketio

from app.services import users
from tests.chaos.conftest import reconcile_traffic, settled, start_all
from tests.chaos.platform_client import Platform, Traffic
from tests.fakes.sentinel import MASTER_NAME, SentinelCluster
from tests.test_live_feed import PASSWORD, browser_login

pytestmark = pytest.mark.chaos

#: The feed must reach an operator again within this long of the promotion.
FEED_BACK_WITHIN_S = 30


@pytest.fixture
def cluster() -> Iterator[SentinelCluster]:
    deployment = SentinelCluster().start()
    yield deployment
    deployment.close()


@pytest.fixture
def app_config(cluster: SentinelCluster) -> dict[str, Any]:
    return {
        "REDIS_URL": cluster.env["REDIS_URL"],
        "REDIS_SENTINELS": cluster.addresses,
        "REDIS_SENTINEL_MASTER": MASTER_NAME,
        "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"],
        "OPSDECK_DISABLED_FAMILIES": ["retention"],
    }


class Operator:
    """An operator's browser on the live feed: a python-socketio client on /admin that keeps
    each event with the time it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[datetime, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record, namespace="/admin")

    def _record(self, event: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((datetime.now(UTC), event, payload))

    def connect(self, url: str, http: requests.Session) -> None:
        cookies = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        self.client.connect(
            url, namespaces=["/admin"], headers={"Cookie": cookies}, transports=["websocket"], wait_timeout=10
        )

    def first_published_after(self, moment: datetime, event_type: str | None = None) -> datetime | None:
        """When the first event (of `event_type`) published after `moment` arrived."""
        with self.lock:
            return min(
                (
                    at
                    for at, event, payload in self.events
                    if datetime.fromisoformat(payload["occurred_at"]) > moment and event_type in (None, event)
                ),
                default=None,
            )


class Probe(threading.Thread):
    """Every 0.2 s one echo job through the API (`sent`: when sent and answered, the job id),
    and in a thread of its own one GET /readyz (`ready`: when answered, the status code and the
    body's status)."""

    def __init__(self, shop: Platform) -> None:
        super().__init__(name="sentinel-probe", daemon=True)
        self.shop = shop
        self.sent: list[tuple[float, float, str | None]] = []
        self.ready: list[tuple[float, int, str]] = []
        self._halt = threading.Event()
        self._readiness = threading.Thread(target=self._ask_ready, name="sentinel-readyz", daemon=True)

    def run(self) -> None:
        self._readiness.start()
        n = 0
        while not self._halt.is_set():
            n += 1
            began = time.monotonic()
            job_id = self.shop.echo(f"probe {n}")
            self.sent.append((began, time.monotonic(), job_id))
            self._halt.wait(0.2)

    def _ask_ready(self) -> None:
        while not self._halt.is_set():
            try:
                answer = requests.get(self.shop.url + "/readyz", timeout=10)
                self.ready.append((time.monotonic(), answer.status_code, answer.json().get("status", "")))
            except (requests.RequestException, ValueError) as err:
                self.ready.append((time.monotonic(), 0, type(err).__name__))
            self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join(60)
        self._readiness.join(60)


def test_master_killed_under_load(app, stack, tenant_key, cluster, sink, hooks, report):
    """SIGKILL the master mid-run: the replica is promoted, web, workers and scheduler follow it,
    the ledger reconciles with no job lost and no side effect twice, and the operator's feed
    comes back within FEED_BACK_WITHIN_S of the promotion."""
    stack.env.update(cluster.env)
    shop = start_all(stack, tenant_key, sink, hooks)
    users.create_user("ops@example.com", PASSWORD, "admin")
    operator = Operator()
    operator.connect(stack.url, browser_login(stack.url, "ops@example.com"))
    traffic, probe = Traffic(shop, echo_sleep=0.2, tag="sentinel"), Probe(shop)
    traffic.start()
    probe.start()
    time.sleep(6)

    old_port = cluster.master_port()
    assert old_port is not None
    killed = cluster.kill_master()
    promoted = cluster.wait_for_promotion(old_port, 60)
    promoted_at = datetime.now(UTC)
    time.sleep(FEED_BACK_WITHIN_S)
    traffic.stop()
    probe.stop()

    new_master = redis.Redis(port=cluster.master_port(), socket_timeout=5)
    window = failover_window(probe, new_master, killed, promoted)
    # Any event, and the workers' steady one (their write-only emitters must follow too).
    for key, event_type in (
        ("feed_back_after_promotion_s", None),
        ("workers_feed_back_after_promotion_s", "jobs.throughput"),
    ):
        back = operator.first_published_after(promoted_at, event_type)
        window[key] = round((back - promoted_at).total_seconds(), 2) if back else None
        if back is None or window[key] > FEED_BACK_WITHIN_S:
            report.problems.append(
                f"live feed: no {event_type or 'event'} reached the operator within {FEED_BACK_WITHIN_S} s of the promotion"
            )
    report.add("failover", window)
    if window["first_publish_after_kill_s"] is None:
        report.problems.append("no request published to the new master after the kill")
    ready = readiness(probe, killed)
    report.add("readyz", ready)
    if ready["answers"].keys() - {"200 ok", "200 degraded"} or not ready["ok_again_after_kill_s"]:
        report.problems.append(f"/readyz: {ready}: a load balancer must keep the web process, and see it ok again")
    operator.client.disconnect()

    settled(report, stack, 120)
    reconcile_traffic(report, shop, sink, hooks)
    report.add("probe", {"accepted": len(probe_ids(probe))})
    report.check()


def readiness(probe: Probe, killed: float) -> dict[str, Any]:
    """What /readyz answered from the kill on, and when it was last degraded and ok again."""
    after = [(at, f"{status} {state}") for at, status, state in probe.ready if at > killed]
    degraded = [at for at, answer in after if answer != "200 ok"]
    ok_again = next((at for at, answer in after if answer == "200 ok" and at > max(degraded, default=killed)), None)
    return {
        "answers": dict(Counter(answer for _, answer in after)),
        "last_degraded_after_kill_s": round(max(degraded) - killed, 2) if degraded else None,
        "ok_again_after_kill_s": round(ok_again - killed, 2) if ok_again else None,
    }


def probe_ids(probe: Probe) -> list[str]:
    return [job_id for _, _, job_id in probe.sent if job_id]


def failover_window(probe: Probe, master: redis.Redis, killed: float, promoted: float) -> dict[str, Any]:
    """Kill → promotion → the first probe request after the kill whose own publish reached the
    new master (its outbox marker is there: the relay's publishes leave none), and the slowest
    answer meanwhile."""
    after = [(began, answered, job_id) for began, answered, job_id in probe.sent if began > killed and job_id]
    first = next(
        (answered for _, answered, job_id in after if master.exists(f"opsdeck:outbox:published:{job_id}")), None
    )
    slowest = max((answered - began for began, answered, _ in after if began < promoted + 5), default=0.0)
    return {
        "promotion_after_kill_s": round(promoted - killed, 2),
        "first_publish_after_kill_s": round(first - killed, 2) if first else None,
        "slowest_answer_in_window_s": round(slowest, 2),
        "probe_requests_after_kill": len(after),
    }
