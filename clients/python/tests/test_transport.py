"""Retries against a real HTTP server on loopback: what is retried, how long the client waits,
and that every try is signed afresh with the one Idempotency-Key."""

from __future__ import annotations

import json
import socket
import time

import pytest

from opsdeck_client import (
    ConflictError,
    NotFoundError,
    OpsdeckClient,
    RateLimitError,
    TransportError,
    ValidationError,
    signature,
)
from opsdeck_client.transport import RetryPolicy
from tests.conftest import Received, Reply, ScriptedServer

KEY, SECRET = "key_test", "sk_test"


def client_for(server: ScriptedServer, **options: float) -> OpsdeckClient:
    options = {"backoff": 0.01, **options}
    return OpsdeckClient(server.url, KEY, SECRET, **options)  # type: ignore[arg-type]


def signed_correctly(got: Received) -> bool:
    expected = signature(SECRET, got.headers["Opsdeck-Timestamp"], got.method, got.target, got.body)
    return got.headers["Opsdeck-Signature"] == "v1=" + expected and got.headers["Opsdeck-Key"] == KEY


def test_a_503_then_a_200_is_retried_with_the_same_idempotency_key(server: ScriptedServer) -> None:
    server.script = [Reply(503, b'{"title": "Unavailable"}'), Reply(502, b""), Reply(202, b'{"id": "j1"}')]
    answer = client_for(server).request("POST", "/api/v1/jobs", {"type": "system.echo"})
    assert answer.status == 202 and answer.json() == {"id": "j1"}
    keys = {got.headers["Idempotency-Key"] for got in server.received}
    assert len(server.received) == 3 and len(keys) == 1
    assert all(signed_correctly(got) for got in server.received)
    assert all(got.body == b'{"type":"system.echo"}' for got in server.received)


def test_a_429_waits_its_retry_after(server: ScriptedServer) -> None:
    server.script = [Reply(429, b'{"title": "Too many requests"}', {"Retry-After": "1"}), Reply(200)]
    started = time.monotonic()
    assert client_for(server).request("GET", "/api/v1/jobs").status == 200
    assert time.monotonic() - started >= 1.0
    assert len(server.received) == 2 and "Idempotency-Key" not in server.received[0].headers  # a read
    first, second = (int(got.headers["Opsdeck-Timestamp"]) for got in server.received)
    assert second > first and all(signed_correctly(got) for got in server.received)  # signed afresh


def test_a_retry_after_beyond_the_cap_is_raised_at_once(server: ScriptedServer) -> None:
    server.script = [Reply(429, b'{"title": "Too many requests"}', {"Retry-After": "120"})]
    started = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        client_for(server, max_retry_after=60).request("GET", "/api/v1/jobs")
    assert caught.value.retry_after == 120 and caught.value.status == 429
    assert time.monotonic() - started < 30 and len(server.received) == 1  # not the 120 s asked


def test_retries_off_raises_the_first_429(server: ScriptedServer) -> None:
    server.script = [Reply(429, b'{"type": "x/rate-limited", "title": "Too many requests"}', {"Retry-After": "7"})]
    with pytest.raises(RateLimitError) as caught:
        client_for(server, retries=0).request("GET", "/api/v1/jobs")
    assert caught.value.retry_after == 7 and len(server.received) == 1


def test_the_last_5xx_is_raised_once_the_retries_are_spent(server: ScriptedServer) -> None:
    server.script = [Reply(500, b'{"title": "Internal Server Error", "status": 500}')]
    with pytest.raises(Exception) as caught:
        client_for(server, retries=2).request("POST", "/api/v1/events", {"type": "a", "payload": {}})
    assert getattr(caught.value, "status", None) == 500 and len(server.received) == 3


def test_a_501_is_raised_at_once_not_retried(server: ScriptedServer) -> None:
    """501 Not Implemented is a permanent answer: trying again would get it again."""
    server.script = [Reply(501, b'{"title": "Not Implemented", "status": 501}'), Reply(200)]
    with pytest.raises(Exception) as caught:
        client_for(server).request("GET", "/api/v1/jobs")
    assert getattr(caught.value, "status", None) == 501 and len(server.received) == 1


def test_a_timeout_is_retried_with_the_same_key(server: ScriptedServer) -> None:
    """The server got the request but answered too late: the retry carries the same key, so
    the real server would replay its first answer instead of doing the work twice."""
    server.script = [Reply(202, b'{"id": "late"}', delay=2), Reply(202, b'{"id": "j1"}')]
    answer = client_for(server, timeout=0.3).request("POST", "/api/v1/jobs", {"type": "system.echo"})
    assert answer.json() == {"id": "j1"}
    first, second = server.received
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


def test_a_refused_connection_is_retried_then_a_transport_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpsdeckClient(f"http://127.0.0.1:{port}", KEY, SECRET, retries=2, backoff=0.05)
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        client.jobs.get("j1")
    assert caught.value.status == 0 and caught.value.__cause__ is not None
    assert time.monotonic() - started >= 0.05 / 2 + 0.1 / 2  # two waits, each at least half its step


def test_4xx_other_than_429_are_not_retried_and_map_to_their_classes(server: ScriptedServer) -> None:
    cases = [
        (404, NotFoundError),
        (409, ConflictError),
        (422, ValidationError),
    ]
    for status, cls in cases:
        problem = {"type": "https://opsdeck.dev/problems/x", "title": "T", "status": status, "detail": "D"}
        if status == 422:
            problem["errors"] = {"type": ["Unknown job type."]}
        server.script = [Reply(status, json.dumps(problem).encode())]
        server.received.clear()
        with pytest.raises(cls) as caught:
            client_for(server).request("POST", "/api/v1/jobs", {})
        err = caught.value
        assert (err.status, err.title, err.detail, err.type) == (status, "T", "D", problem["type"])
        assert err.errors == problem.get("errors", {}) and len(server.received) == 1


def test_a_non_json_error_keeps_its_reason_and_text(server: ScriptedServer) -> None:
    server.script = [Reply(414, b"<html>Request-URI Too Long</html>", {"Content-Type": "text/html"})]
    with pytest.raises(Exception) as caught:
        client_for(server).request("GET", "/api/v1/jobs")
    assert getattr(caught.value, "status", None) == 414 and "Too Long" in str(caught.value)


def test_the_query_is_signed_as_sent(server: ScriptedServer) -> None:
    server.script = [Reply(200, b'{"data": [], "next_cursor": null}')]
    list(client_for(server).jobs.list(status="dead", type="email.send", page_size=2))
    (got,) = server.received
    assert got.target == "/api/v1/jobs?status=dead&type=email.send&limit=2" and signed_correctly(got)


def test_pages_are_followed_by_their_cursor(server: ScriptedServer) -> None:
    server.script = [
        Reply(200, b'{"data": [{"id": "3"}, {"id": "2"}], "next_cursor": "c=/1"}'),
        Reply(200, b'{"data": [{"id": "1"}], "next_cursor": null}'),
    ]
    assert [job["id"] for job in client_for(server).jobs.list(page_size=2)] == ["3", "2", "1"]
    assert server.received[1].target == "/api/v1/jobs?limit=2&cursor=c%3D%2F1"
    assert all(signed_correctly(got) for got in server.received)


def test_the_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    policy = RetryPolicy(backoff=1, max_backoff=4)
    for attempt, step in [(0, 1), (1, 2), (2, 4), (5, 4)]:
        waits = [policy.delay(attempt) for _ in range(200)]
        assert all(step / 2 <= w <= step for w in waits) and len(set(waits)) > 1
