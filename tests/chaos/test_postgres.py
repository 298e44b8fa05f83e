"""Scenario 4: PostgreSQL restarted under a running workload (a private server started for this
module, never the machine's shared one): requests that fail during the restart are retried by
the client, jobs whose writes failed are retried by the ledger, and nothing accepted is lost."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.chaos.conftest import reconcile_traffic, settled, start_all
from tests.chaos.peers import PrivatePostgres
from tests.chaos.platform_client import Traffic

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    try:
        server = PrivatePostgres()
    except RuntimeError as err:
        pytest.skip(f"no private PostgreSQL on this machine: {err}")
    try:
        server.initdb().start()
    except (subprocess.SubprocessError, OSError, TimeoutError) as err:
        server.close()
        pytest.skip(f"could not start a private PostgreSQL: {err}")
    yield server
    server.close()


@pytest.fixture
def database_url(private_pg: PrivatePostgres) -> str:
    return private_pg.create_database(f"opsdeck_chaos_{uuid.uuid4().hex[:8]}")


def test_postgres_restarted_mid_run(app, stack, tenant_key, private_pg, sink, hooks, report):
    """A `pg_ctl restart -m fast` (connections cut, transactions rolled back) and a crash
    (`stop -m immediate`, 3 s down, recovery at start) while the platform sends echo jobs, events
    and mails through the web process."""
    shop = start_all(stack, tenant_key, sink, hooks)
    traffic = Traffic(shop, echo_sleep=0.3, tag="pg")
    traffic.start()
    restarts = []
    for mode, restart in (
        ("restart -m fast", lambda: private_pg.restart("fast")),
        ("crash, down 3 s", lambda: private_pg.crash(3)),
    ):
        time.sleep(4)
        began = time.monotonic()
        restart()
        restarts.append({"how": mode, "seconds": round(time.monotonic() - began, 1)})
    time.sleep(4)
    traffic.stop()
    report.add("restarts", restarts)
    report.add("traffic_rounds", traffic.rounds)
    settled(report, stack, 120)
    # At least once: a write lost with the connection re-runs its job (a mail batch's last
    # unrecorded chunk, a delivery whose success was not recorded). One window per restart.
    reconcile_traffic(report, shop, sink, hooks, resend_window=len(restarts), resend_allowed=None)
    report.check()
