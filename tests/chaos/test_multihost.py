"""Scenario: every role on its own host. Network namespaces made here stand for the machines of
a deployment (docs/deployment.md draws it):

- data: PostgreSQL (a cluster made with initdb), Redis, the S3-compatible store;
- web: two gunicorn processes;
- worker1, worker2: `dramatiq workers` on every queue and a scheduler each, every one in its
  own working directory with its own metrics and temp folders;
- the test's own side of the bridge: the platform, and the peers Opsdeck calls (SMTP relay,
  webhook receiver, router, clamd over TCP).

Every family runs end to end across them; worker2 is powered off mid-run (everything on it
SIGKILLed, its link down); then every job is final and each side effect happened once.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.jobtypes import all_queue_names
from app.models import Job
from app.services import tenants
from tests.chaos import reconcile
from tests.chaos.conftest import ROUTER_PASSWORD, Report, reconcile_traffic, settled
from tests.chaos.hosts import Host, Network, unavailable
from tests.chaos.peers import PrivatePostgres, Receiver, Sink, SlowRouter
from tests.chaos.platform_client import Platform, Traffic
from tests.chaos.stack import CHAOS_ENV
from tests.conftest import ENCRYPTION_KEY, make_config
from tests.fakes.clamav import EICAR, ClamdServer
from tests.fakes.processes import (
    BIN,
    free_port,
    scheduler_command,
    wait_for_web,
    wait_until,
    web_command,
    worker_command,
)

pytestmark = pytest.mark.chaos

BUCKET = "opsdeck-files"
REDIS_PASSWORD = "multihost-redis"
S3_KEYS = {"S3_ACCESS_KEY_ID": "multihost", "S3_SECRET_ACCESS_KEY": "multihost-secret", "S3_REGION": "us-east-1"}


@pytest.fixture
def network() -> Iterator[Network]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"multi-host scenario needs network namespaces: {reason}")
    net = Network(["data", "web", "worker1", "worker2"])
    try:
        yield net
    finally:
        net.close()


class Deployment:
    """The data host's services, the peers on the test's side, and the settings every
    Opsdeck process gets (each host adds its own folders)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        data = net["data"]
        self.postgres = PrivatePostgres(data.address, ["ip", "netns", "exec", data.netns], str(net.subnet))
        self.postgres.initdb().start()
        self.database_url = self.postgres.create_database("opsdeck")
        redis_port, s3_port = free_port(), free_port()
        data.spawn(
            "redis",
            [
                "redis-server",
                "--bind",
                data.address,
                "--port",
                str(redis_port),
                "--requirepass",
                REDIS_PASSWORD,
                "--save",
                "",
                "--appendonly",
                "no",
            ],  # fmt: skip
            {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        )
        # Off loopback Redis serves only clients that authenticate (its protected mode), as in production.
        self.redis_url = f"redis://:{REDIS_PASSWORD}@{data.address}:{redis_port}/0"
        data.spawn("s3", [str(BIN / "moto_server"), "-H", data.address, "-p", str(s3_port)], {})
        self.s3_url = f"http://{data.address}:{s3_port}"
        gateway = net.gateway
        self.sink = Sink(host=gateway).start()
        self.hooks = Receiver(host=gateway).start()
        self.router = SlowRouter("opsdeck", ROUTER_PASSWORD, host=gateway).start()
        clamd_port = free_port()
        self.clamd = ClamdServer(extra_config=f"TCPSocket {clamd_port}\nTCPAddr {gateway}\n").start()
        self.settings: dict[str, Any] = {
            **CHAOS_ENV,
            **S3_KEYS,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "S3_ENDPOINT_URL": self.s3_url,
            "SCAN_STORAGE_URL": f"s3://{BUCKET}/files",
            "SCAN_QUARANTINE_URL": f"s3://{BUCKET}/quarantine",
            "CLAMD_URL": f"tcp://{gateway}:{clamd_port}",
            "CLAMD_FDPASS": "0",
            "SMTP_HOST": gateway,
            "SMTP_PORT": self.sink.port,
            "WEBHOOK_ALLOWED_NETWORKS": str(net.subnet),
            "SECRET_KEY": "multihost-secret-key",
            "OPSDECK_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "OPSDECK_ENV": "test",
            "PYTHONUNBUFFERED": "1",
        }
        wait_until(self._s3_up, 30, 0.2, what="the S3 store on the data host")
        self.s3().create_bucket(Bucket=BUCKET)

    def _s3_up(self) -> bool:
        import requests

        with contextlib.suppress(requests.RequestException):
            return requests.get(self.s3_url, timeout=1).status_code < 500
        return False

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id=S3_KEYS["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["S3_SECRET_ACCESS_KEY"],
            region_name=S3_KEYS["S3_REGION"],
        )

    def env(self, host: Host, **extra: Any) -> dict[str, str]:
        """A process's environment on `host`: nothing but what it is given (no test variables)."""
        own = {
            "PATH": str(BIN) + ":/usr/bin:/bin:/usr/sbin:/sbin",
            "OPSDECK_VAR_DIR": str(host.dir / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(host.dir / "metrics"),
        }
        (host.dir / "metrics").mkdir(exist_ok=True)
        return {k: str(v) for k, v in {**self.settings, **own, **extra}.items()}

    def close(self) -> None:
        for closing in (self.sink.close, self.hooks.close, self.router.close, self.clamd.close, self.postgres.close):
            with contextlib.suppress(Exception):
                closing()


def test_every_role_on_its_own_host(network: Network, report: Report) -> None:
    net = network
    site = Deployment(net)
    storage = {k: v for k, v in site.settings.items() if k.startswith(("SCAN_", "S3_"))}
    app = create_app(make_config(site.database_url, site.redis_url, **storage))  # the test's reading
    ctx = app.app_context()
    ctx.push()
    try:
        _run(net, site, report)
    except BaseException:
        print(_Logs(net).logs())  # shown with the failure
        raise
    finally:
        db.session.remove()
        ctx.pop()
        site.close()


def _run(net: Network, site: Deployment, report: Report) -> None:
    web = net["web"]
    # The deploy step: migrations from the web host, as `flask db upgrade` in a release.
    migrate = web.spawn("migrate", [str(BIN / "flask"), "--app", "wsgi.py", "db", "upgrade"], site.env(web))
    assert migrate.proc is not None and migrate.proc.wait(120) == 0, migrate.log()[-3000:]
    urls = []
    for n in (1, 2):
        port = free_port()
        proc = web.spawn(f"web{n}", web_command(port, web.address), site.env(web))
        urls.append(wait_for_web(proc, port, f"web{n} on the web host", host=web.address))
    for name in ("worker1", "worker2"):
        host = net[name]
        host.spawn("workers", worker_command(all_queue_names(), 1, 4), site.env(host))
        host.spawn("scheduler", scheduler_command(), site.env(host))

    key = tenants.create_tenant("multihost")
    db.session.commit()
    shop = Platform(urls[0], key.key_id, key.secret)
    other = Platform(urls[1], key.key_id, key.secret)
    shop.endpoint(site.hooks.url("/multihost"))
    router_id, plan_id = other.shop(site.router.port, ROUTER_PASSWORD, router_host=net.gateway)

    traffic = Traffic(shop, echo_sleep=0.3, tag="mh")
    traffic.start()
    sent = 0

    def more(tag: str, count: int) -> None:
        nonlocal sent
        for _ in range(count):
            sent += 1
            other.upload(f"{tag}-{sent}.txt", f"{tag} {sent}\n".encode() * 200, "clean")
            if sent % 3 == 0:
                other.upload(f"{tag}-{sent}-bad.txt", EICAR, "infected")
            other.pay(router_id, plan_id, sent, tag)

    more("before", 6)
    # Both worker hosts take work; worker2 dies in the middle of some.
    wait_until(lambda: _finished_on().get("worker2", 0) >= 20, 90, 0.2, what="worker2 to finish 20 jobs")
    wait_until(lambda: _running_on("worker2"), 60, 0.05, what="worker2 to be running jobs")
    net["worker2"].power_off()
    running = _running_on("worker2")  # nobody told the ledger: its rows still say running
    if not running:
        report.problems.append("the power-off caught no job mid-run on worker2: the scenario proved less than it says")
    report.add(
        "before_power_off", {"finished_on": _finished_on(), "running_on_worker2": dict(Counter(running.values()))}
    )
    more("after", 6)
    time.sleep(3)
    traffic.stop()

    settled(report, _Logs(net), 180)
    report.add("hosts", {h.name: h.address for h in net.hosts.values()})
    # A batch of mail or a delivery cut mid-send may go again (the documented windows).
    in_flight = Counter(running.values())
    reconcile_traffic(
        report,
        shop,
        site.sink,
        site.hooks,
        resend_window=in_flight["email.flush"],
        resend_allowed=in_flight["webhooks.deliver"],
    )
    kept, held = reconcile.stored("files"), reconcile.stored("quarantine")
    report.add("scans", reconcile.scans(other.accepted.scans, kept, held, report.problems))
    report.add("provisioning", reconcile.provisioning(site.router, other.accepted.payments, report.problems))
    lost = [job_id for job_id in running if _status(job_id) != "succeeded"]
    if lost:
        report.problems.append(f"jobs running on worker2 when it died did not finish elsewhere: {lost}")
    report.add("finished_on", _finished_on())
    report.check()


class _Logs:
    """`settled` asks a stack for its logs: here, every host's."""

    def __init__(self, net: Network) -> None:
        self.net = net

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-3000:]}" for h in self.net.hosts.values() for p in h.processes)


def _host_of(worker_id: str | None) -> str:
    return (worker_id or "").rpartition(":")[0] or "(none)"


def _finished_on() -> dict[str, int]:
    """Jobs each host finished (a job run again keeps the host of its last run)."""
    reconcile.fresh()
    rows = db.session.scalars(select(Job.worker_id).where(Job.status == "succeeded"))
    return dict(Counter(_host_of(w) for w in rows))


def _status(job_id: str) -> str | None:
    reconcile.fresh()
    return db.session.scalar(select(Job.status).where(Job.id == job_id))


def _running_on(hostname: str) -> dict[str, str]:
    reconcile.fresh()
    rows = db.session.execute(select(Job.id, Job.type, Job.worker_id).where(Job.status == "running")).all()
    return {r.id: r.type for r in rows if _host_of(r.worker_id) == hostname}
