"""The API over real HTTP (gunicorn, the production web command): the docs' shell examples
and the Python client."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from opsdeck_client import OpsdeckClient

from tests.fakes.processes import ROOT, free_port
from tests.helpers import job_row, wait_for_status

pytestmark = pytest.mark.slow


def readme_block(marker: str) -> str:
    """The shell example of docs/api.md marked `<!-- example: NAME -->` (`curl-example` names
    `curl`)."""
    name = marker.removesuffix("-example")
    text = (ROOT / "docs" / "api.md").read_text()
    block = re.search(rf"<!-- example: {re.escape(name)}(?: [^>]*)? -->\s*```sh\n(.*?)```", text, re.S)
    assert block, f"docs/api.md has no {name} example"
    return block.group(1)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")), reason="curl and openssl not installed")
def test_readme_curl_example_submits_a_job(app, tenant, workers):
    url = workers.start_web()
    env = {**os.environ, "OPSDECK_URL": url, "OPSDECK_KEY_ID": tenant.key_id, "OPSDECK_SECRET": tenant.secret}
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("curl-example")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    import json

    body = json.loads(out.stdout)
    assert body["type"] == "system.echo" and body["status"] in {"pending", "queued"}
    workers.start()
    assert wait_for_status(body["id"], "succeeded", logs=workers.logs).result == {"message": "hello"}


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")), reason="curl and openssl not installed")
def test_readme_batch_example_submits_two_jobs(app, tenant, workers):
    import json

    url = workers.start_web()
    env = {**os.environ, "OPSDECK_URL": url, "OPSDECK_KEY_ID": tenant.key_id, "OPSDECK_SECRET": tenant.secret}
    runs = []
    for _ in range(2):  # a second apart: the same signature would replay the whole first answer
        runs.append(
            subprocess.run(
                ["bash", "-euo", "pipefail", "-c", readme_block("batch-example")],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
        )
        time.sleep(1.1)
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    first, again = (json.loads(run.stdout)["data"] for run in runs)
    assert [j["payload"]["message"] for j in first] == ["a", "b"] and not any(j["replayed"] for j in first)
    assert again[0]["replayed"] is True and again[0]["id"] == first[0]["id"]  # its idempotency_key


def test_python_client_signs_queries_and_replays_idempotent_posts(app, tenant, workers):
    url = workers.start_web()
    client = OpsdeckClient(url, tenant.key_id, tenant.secret)
    first = client.jobs.submit("system.echo", {"message": "c"}, idempotency_key="k-1")
    again = client.request(
        "POST", "/api/v1/jobs", {"type": "system.echo", "payload": {"message": "c"}}, idempotency_key="k-1"
    )
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first["id"]
    for _ in range(3):  # identical reads in one second: the timestamp window is their only guard
        page = client.request("GET", "/api/v1/jobs?limit=5&status=pending").json()
        assert [j["id"] for j in page["data"]] == [first["id"]]
    assert job_row(first["id"]).status == "pending"  # published; the relay confirms it later


def test_python_client_submits_and_publishes_in_batches(app, tenant, workers):
    url = workers.start_web()
    client = OpsdeckClient(url, tenant.key_id, tenant.secret)
    jobs = [{"type": "system.echo", "payload": {"message": f"m{n}"}, "idempotency_key": f"k{n}"} for n in range(5)]
    first = client.jobs.submit_many(jobs, batch_size=2)
    assert [j["payload"]["message"] for j in first] == [f"m{n}" for n in range(5)]
    assert not any(j["replayed"] for j in first)
    sizes: list[int] = []
    request = client.request
    client.request = lambda method, path, body=None, **kw: (
        sizes.append(len(body["jobs"])) or request(method, path, body, **kw)
    )
    again = client.jobs.submit_many(jobs, batch_bytes=200)  # the whole list again, after a failure
    client.request = request
    assert sizes == [2, 2, 1]  # about 80 bytes a job: two a call
    assert [j["id"] for j in again] == [j["id"] for j in first] and all(j["replayed"] for j in again)
    events = client.events.publish_many([{"type": "order.paid", "payload": {"n": n}, "id": f"o{n}"} for n in range(3)])
    assert [e["client_id"] for e in events] == ["o0", "o1", "o2"]


def test_python_client_retries_connection_errors_without_doubling(app, tenant, workers, tmp_path: Path):
    """The first tries find no server (connection refused); the server comes up; one job."""
    import threading
    import time

    port = free_port()
    client = OpsdeckClient(f"http://127.0.0.1:{port}", tenant.key_id, tenant.secret, retries=6, backoff=0.5, timeout=30)
    result = {}

    def send():
        result["job"] = client.jobs.submit("system.echo", {"message": "late"})

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1.0)  # the client meets a closed port first
    workers.start_web(name="late-web", port=port)
    sender.join(60)
    from app.extensions import db
    from app.models import Job

    db.session.rollback()
    assert db.session.query(Job).count() == 1
    assert result["job"]["status"] in {"pending", "queued"}


def test_python_client_retries_a_timeout_with_the_same_idempotency_key(tenant):
    """A server that got the request but answered too late: the retry carries the same key, so
    the server replays its first answer instead of doing the work twice."""
    from tests.fakes.http_receiver import HttpReceiver, Reply

    receiver = HttpReceiver().start()
    try:
        receiver.script("/api/v1/jobs", Reply(202, delay=3), Reply(202, body=b'{"id": "j1"}'))
        client = OpsdeckClient(receiver.url(""), tenant.key_id, tenant.secret, timeout=0.5, retries=2, backoff=0.1)
        assert client.request("POST", "/api/v1/jobs", {"type": "system.echo"}).json() == {"id": "j1"}
        tries = receiver.on("/api/v1/jobs")
        assert len(tries) == 2 and tries[0].headers["Idempotency-Key"] == tries[1].headers["Idempotency-Key"]
    finally:
        receiver.close()
