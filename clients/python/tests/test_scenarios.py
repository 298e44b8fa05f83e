"""The ten scenarios of clients/SCENARIOS.md, through the library, against a live Opsdeck."""

from __future__ import annotations

import base64
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsdeck_client import NotFoundError, OpsdeckClient, RateLimitError, ValidationError
from opsdeck_client.webhooks import WebhookVerificationError, verify
from tests.conftest import Live

pytestmark = pytest.mark.integration

#: The EICAR test file, assembled here so that this source file is not itself flagged.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def unique(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}"


def test_1_a_job_submitted_and_awaited(client: OpsdeckClient) -> None:
    message = unique("hello")
    job = client.jobs.submit("system.echo", {"message": message})
    done = client.jobs.wait(job["id"], timeout=60)
    assert done["status"] == "succeeded" and done["result"] == {"message": message}


def test_2_a_retry_with_the_same_idempotency_key(client: OpsdeckClient) -> None:
    key, message = unique("key"), unique("twice")
    first = client.jobs.submit("system.echo", {"message": message}, idempotency_key=key)
    again = client.jobs.submit("system.echo", {"message": message}, idempotency_key=key)
    assert first["id"] == again["id"]
    assert first["replayed"] is False and again["replayed"] is True


def test_3_batches(client: OpsdeckClient) -> None:
    tag = unique("batch")
    jobs = [
        {"type": "system.echo", "payload": {"message": f"{tag} {n}"}, "idempotency_key": f"{tag}-{n}"} for n in range(3)
    ]
    first = client.jobs.submit_many(jobs)  # type: ignore[arg-type]
    assert [j["payload"]["message"] for j in first] == [f"{tag} {n}" for n in range(3)]
    assert not any(j["replayed"] for j in first)
    again = client.jobs.submit_many(jobs)  # type: ignore[arg-type]
    assert [j["id"] for j in again] == [j["id"] for j in first] and all(j["replayed"] for j in again)
    events = client.events.publish_many([{"type": "order.paid", "payload": {"n": n}} for n in range(2)])
    assert len(events) == 2 and [e["payload"] for e in events] == [{"n": 0}, {"n": 1}]


def test_3b_long_lists_are_split_by_count_and_by_size(client: OpsdeckClient) -> None:
    tag = unique("split")
    jobs = [{"type": "system.echo", "payload": {"message": f"{tag} {n}"}} for n in range(5)]
    by_count = client.jobs.submit_many(jobs, batch_size=2)  # type: ignore[arg-type]
    by_size = client.jobs.submit_many(jobs, batch_bytes=200)  # type: ignore[arg-type]
    messages = [job["payload"]["message"] for job in jobs]
    assert [j["payload"]["message"] for j in by_count] == [j["payload"]["message"] for j in by_size] == messages


def test_4_listing_with_the_iterator(client: OpsdeckClient) -> None:
    for n in range(5):
        client.jobs.submit("system.echo", {"message": f"list {n}"})
    pages = list(client.jobs.list(page_size=2).pages())
    seen = [job["id"] for page in pages for job in page]
    assert len(pages) >= 3 and all(len(page) <= 2 for page in pages)
    assert len(seen) == len(set(seen)) >= 5
    created = [job["created_at"] for page in pages for job in page]
    assert created == sorted(created, reverse=True)  # newest first
    assert [job["id"] for job in client.jobs.list(page_size=2)] == seen


def test_5_cancel_and_retry(client: OpsdeckClient) -> None:
    job = client.jobs.submit("system.echo", {"message": "later"}, delay_seconds=3600)
    assert client.jobs.cancel(job["id"])["status"] == "cancelled"
    assert client.jobs.retry(job["id"])["status"] in {"pending", "queued"}


def test_6_scans(client: OpsdeckClient, tmp_path: Path) -> None:
    clean = tmp_path / "report.txt"
    clean.write_bytes(b"quarterly figures\n" + uuid.uuid4().hex.encode())
    infected = client.scans.upload(EICAR, filename="eicar.txt")
    with clean.open("rb") as file:  # a file object; a path and bytes are the other two sources
        file_scan = client.scans.upload(file)
    path_scan = client.scans.upload(clean)
    verdict = client.scans.wait(infected["id"], timeout=120)
    assert verdict["status"] == "infected" and verdict["signature"]
    for scan in (file_scan, path_scan):
        assert client.scans.wait(scan["id"], timeout=120)["status"] == "clean"
    assert client.scans.download(path_scan["id"]) == clean.read_bytes()
    target = tmp_path / "copy.txt"
    assert client.scans.download_to(file_scan["id"], target) == clean.stat().st_size
    assert target.read_bytes() == clean.read_bytes()


class Receiver:
    """A webhook endpoint on loopback: keeps each delivery's headers and raw body."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        deliveries = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                deliveries.put((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def next(self, event_id: str, timeout: float = 60) -> tuple[dict[str, str], bytes]:
        deadline = time.monotonic() + timeout
        while True:
            headers, body = self.deliveries.get(timeout=max(0.1, deadline - time.monotonic()))
            if {k.lower(): v for k, v in headers.items()}.get("webhook-id") == event_id:
                return headers, body

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_7_webhooks_received_and_verified(client: OpsdeckClient) -> None:
    receiver = Receiver()
    event_type = unique("order.paid").replace("-", "_")
    try:
        endpoint = client.webhook_endpoints.create(receiver.url, event_types=[event_type])
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        event = client.events.publish(event_type, {"order": 7})
        headers, body = receiver.next(event["id"])
        assert verify(secret, headers, body)["data"] == {"order": 7}
        other = "whsec_" + base64.b64encode(b"not-this-endpoint-secret!").decode()
        with pytest.raises(WebhookVerificationError):
            verify(other, headers, body)
        with pytest.raises(WebhookVerificationError):
            verify(secret, headers, body.replace(b"7", b"8"))

        rotated = client.webhook_endpoints.rotate_secret(endpoint["id"])
        assert rotated["secret"] != secret and rotated["previous_secret_expires_at"]
        event = client.events.publish(event_type, {"order": 8})
        headers, body = receiver.next(event["id"])
        assert len({k.lower(): v for k, v in headers.items()}["webhook-signature"].split()) == 2
        assert verify(secret, headers, body) == verify(rotated["secret"], headers, body)
        deliveries = list(client.webhook_endpoints.deliveries(endpoint["id"]))
        assert {d["event_id"] for d in deliveries} >= {event["id"]}
    finally:
        receiver.close()


def test_8_errors_as_values(client: OpsdeckClient) -> None:
    with pytest.raises(ValidationError) as invalid:
        client.jobs.submit("no.such.type", {})
    err = invalid.value
    assert err.status == 422 and "type" in err.errors
    assert err.type and err.title and err.detail
    with pytest.raises(NotFoundError) as missing:
        client.jobs.get(str(uuid.uuid4()))
    err = missing.value
    assert err.status == 404 and err.type and err.title and err.detail


def test_9_a_429_is_retried_after_its_retry_after(live: Live) -> None:
    patient = OpsdeckClient(live.limited_url, live.limited_key_id, live.limited_secret, max_retry_after=65)
    impatient = OpsdeckClient(live.limited_url, live.limited_key_id, live.limited_secret, retries=0)
    for _ in range(live.limit):  # spend the minute's requests
        try:
            impatient.jobs.get("spent")
        except NotFoundError:
            pass
        except RateLimitError:
            break
    with pytest.raises(RateLimitError) as limited:
        impatient.jobs.get("spent")
    assert limited.value.status == 429 and limited.value.retry_after is not None
    assert limited.value.retry_after >= 1
    started = time.monotonic()
    with pytest.raises(NotFoundError):  # the answer once the limit allows it again
        patient.jobs.get("spent")
    assert time.monotonic() - started >= limited.value.retry_after - 1.5


def test_10_the_generic_call(client: OpsdeckClient) -> None:
    answer = client.request("GET", "/api/v1/openapi.json")
    assert answer.status == 200 and answer.is_json and answer.json()["openapi"].startswith("3.")
    job = client.request("POST", "/api/v1/jobs", {"type": "system.echo", "payload": {"message": "raw"}})
    assert job.status == 202 and job.headers["Location"].endswith(job.json()["id"])
