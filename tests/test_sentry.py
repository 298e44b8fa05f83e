"""Sentry, for real: a loopback HTTP server is the DSN host, and the tests read back the
envelopes the SDK sends — from a real `dramatiq workers` process and from the web app in this
process — asserting what is there (exception, tags, environment, release) and that no secret
is anywhere in the bytes."""

from __future__ import annotations

import base64
import gzip
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from opsdeck_client import signature
from sentry_sdk.integrations.dramatiq import SentryMiddleware

from app import create_app
from app.config import ROOT
from app.extensions import db, queue
from app.services import system, tenants
from app.telemetry import sentry
from tests.conftest import ENCRYPTION_KEY, SignedClient, make_config
from tests.fakes.http_receiver import HttpReceiver
from tests.fakes.processes import wait_until
from tests.helpers import submit, wait_for_status

FILTERED = sentry.FILTERED


# -- the DSN host and what it received ------------------------------------------------
def dsn(host: HttpReceiver) -> str:
    return f"http://public@127.0.0.1:{host.port}/1"


def raw_envelopes(host: HttpReceiver) -> list[bytes]:
    """Every envelope received, decompressed."""
    bodies = []
    for received in host.on("/api/1/envelope/"):
        encoding = {k.lower(): v for k, v in received.headers.items()}.get("content-encoding", "")
        assert encoding in ("", "identity", "gzip"), f"unexpected encoding {encoding}"
        bodies.append(gzip.decompress(received.body) if encoding == "gzip" else received.body)
    return bodies


def parse_envelope(raw: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """(envelope header, [(item header, item payload)]), per Sentry's envelope format."""
    header_line, _, rest = raw.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length + 1 :]
        items.append((item_header, payload))
    return json.loads(header_line), items


def events(host: HttpReceiver) -> list[dict[str, Any]]:
    found = []
    for raw in raw_envelopes(host):
        header, items = parse_envelope(raw)
        for item_header, payload in items:
            if item_header.get("type") == "event":
                event = json.loads(payload)
                assert event["event_id"] == header["event_id"]
                found.append(event)
    return found


def exception_types(event: dict[str, Any]) -> list[str]:
    return [value["type"] for value in event.get("exception", {}).get("values", [])]


def assert_nowhere(host: HttpReceiver, *needles: str) -> None:
    everything = b"\n".join(raw_envelopes(host))
    assert everything, "nothing was received"
    for needle in needles:
        assert needle.encode() not in everything, f"{needle[:12]}… left the process"


def sentry_off() -> None:
    """Back to no Sentry for the rest of the session (sentry_sdk is process-global)."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=5)
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def sentry_host() -> Iterator[HttpReceiver]:
    host = HttpReceiver().start()
    yield host
    host.close()


@pytest.fixture
def sentry_config(app_config: dict[str, Any], sentry_host: HttpReceiver) -> Iterator[dict[str, Any]]:
    """The test app reports to `sentry_host` (request this before `app`)."""
    app_config.update(SENTRY_DSN=dsn(sentry_host), SENTRY_RELEASE="opsdeck@web-test")
    yield app_config
    sentry_off()


@pytest.fixture
def sentry_app(sentry_config: dict[str, Any], app: Any) -> Any:
    assert sentry_sdk.get_client().is_active()
    return app


def fake_api_secret() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def fake_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


# -- a worker process ---------------------------------------------------------------
@pytest.mark.slow
def test_failing_job_on_a_worker_is_reported_with_job_tags_and_no_secret(app, workers, sentry_host):
    """Two failing jobs run one after the other on the same worker thread: each event carries
    its own job's tags (the second, tenant-less job has no tenant tag left over from the first),
    the environment and release, and the secrets in the payload are nowhere in what was sent."""
    api_secret, webhook_secret = fake_api_secret(), fake_webhook_secret()
    workers.start(["default"], threads=1, SENTRY_DSN=dsn(sentry_host), SENTRY_RELEASE="opsdeck@1.2.3")
    tenant = tenants.create_tenant("acme")
    payload = {"message": f"charge {api_secret} and sign with {webhook_secret}", "fail": True}
    first = submit(payload=payload, tenant_id=tenant.tenant_id, max_attempts=1)
    wait_for_status(first, "dead", logs=workers.logs)
    second = submit(payload={"message": "no tenant", "fail": True}, max_attempts=1)
    wait_for_status(second, "dead", logs=workers.logs)

    def crash_events() -> dict[str, dict[str, Any]]:
        by_job = {}
        for event in events(sentry_host):
            if "EchoFailure" in exception_types(event):
                by_job[event.get("tags", {}).get("job_id")] = event
        return by_job if {first, second} <= by_job.keys() else {}

    reported = wait_until(crash_events, 30, 0.2, what="both job failures at the DSN host")
    assert isinstance(reported, dict)
    for job_id, tenant_tag in ((first, tenant.tenant_id), (second, None)):
        event = reported[job_id]
        assert event["tags"]["actor"] == system.ECHO.actor_name
        assert event["tags"]["job_type"] == "system.echo"
        assert event["tags"].get("tenant") == tenant_tag
        assert event["environment"] == "test"  # OPSDECK_ENV of the worker process
        assert event["release"] == "opsdeck@1.2.3"
        assert event["contexts"]["dramatiq"]["data"]["message_id"] == job_id  # the integration's message scope
    crash = reported[first]["exception"]["values"][-1]
    assert crash["value"].startswith("system.echo failed on request:") and FILTERED in crash["value"]
    assert any(frame["function"] == "echo" for frame in crash["stacktrace"]["frames"])
    # The ledger's "job … is dead" log line ran inside the job too: same tags.
    dead_lines = [e for e in events(sentry_host) if "is dead" in e.get("logentry", {}).get("message", "")]
    assert dead_lines and all(e["tags"].get("job_id") in (first, second) for e in dead_lines)
    assert_nowhere(sentry_host, api_secret, api_secret[3:], webhook_secret, webhook_secret[6:], ENCRYPTION_KEY)


@pytest.mark.slow
@pytest.mark.parametrize("report_retries", [False, True], ids=["dead-only", "every-attempt"])
def test_a_job_is_reported_once_when_it_dies_unless_every_attempt_is_asked_for(
    app, workers, sentry_host, report_retries
):
    workers.start(["default"], threads=1, SENTRY_DSN=dsn(sentry_host), SENTRY_REPORT_RETRIES=int(report_retries))
    job_id = submit(payload={"message": "flaky", "fail": True}, max_attempts=3)
    assert wait_for_status(job_id, "dead", logs=workers.logs).attempts == 3

    def crashes() -> list[dict[str, Any]]:
        found = [
            e
            for e in events(sentry_host)
            if "EchoFailure" in exception_types(e) and e.get("tags", {}).get("job_id") == job_id
        ]
        return found if any(e["tags"].get("job_outcome") == "dead" for e in found) else []

    # One transport queue per process, sent in order: the retried attempts' events, had they been
    # sent, arrive before the dead one.
    reported = wait_until(crashes, 30, 0.2, what="the dead job's event at the DSN host")
    outcomes = [e["tags"]["job_outcome"] for e in reported]
    assert outcomes == (["retrying", "retrying", "dead"] if report_retries else ["dead"])
    # Dramatiq's own "Failed to process message" line is not a second event for the same failure.
    assert not [e for e in events(sentry_host) if "Failed to process message" in json.dumps(e.get("logentry", {}))]


@pytest.mark.parametrize("report_retries", [False, True])
def test_only_the_dramatiq_capture_of_an_attempt_that_is_not_the_end_is_dropped(report_retries):
    sent: list[dict[str, Any]] = []
    keep = sentry._unless_not_the_end(lambda event, hint: sent.append(event) or event, report_retries)

    def captured(outcome: str, mechanism: str = "dramatiq") -> dict[str, Any]:
        return {"tags": {"job_outcome": outcome}, "exception": {"values": [{"mechanism": {"type": mechanism}}]}}

    # A postponement (rate limit) or a release at shutdown is not a failure: never reported.
    assert keep(captured("postponed")) is None and keep(captured("released")) is None
    assert (keep(captured("retrying")) is not None) is report_retries
    assert keep(captured("dead"))
    assert keep(captured("retrying", mechanism="logging"))  # an error logged during the attempt still goes
    assert keep({"tags": {"job_outcome": "retrying"}, "logentry": {"message": "pool error"}})
    assert keep({"message": "a request failed"})
    assert len(sent) == 4 + report_retries


# -- the web app, in this process -------------------------------------------------------
def test_failing_requests_are_reported_without_signature_cookie_token_or_secrets(sentry_app, sentry_host, monkeypatch):
    """A signed API request (signature, cookie, bearer token, CSRF header, a token in the query
    string, an API secret and a router password in the body) and an M-Pesa callback (its token in
    the path) both hit a failing service: both are reported, with the request but none of it."""
    from app.services import jobs
    from app.services.provisioning import mpesa, payments

    tenant = tenants.create_tenant("acme")
    callback_token = mpesa.token_for(tenant.tenant_id)
    db.session.commit()
    webhook_secret = fake_webhook_secret()

    def failing_submit(*args: Any, **kwargs: Any) -> None:
        router_password = "hunter2-router-pass"  # a local variable in the reported frame
        raise RuntimeError(f"could not store job ({webhook_secret}, {len(router_password)})")

    def failing_callback(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("callback store failed")

    monkeypatch.setattr(jobs, "new_row", failing_submit)
    monkeypatch.setattr(payments, "handle_callback", failing_callback)

    api = SignedClient(sentry_app, tenant.key_id, tenant.secret)
    path = "/api/v1/jobs?access_token=query-secret-value"
    body = {"type": "system.echo", "payload": {"message": tenant.secret, "router_password": "hunter2-router-pass"}}
    ts = int(time.time())
    signed = signature(tenant.secret, str(ts), "POST", path, json.dumps(body).encode())
    headers = {
        "Cookie": "session=cookie-secret-value; theme=dark",
        "Authorization": "Bearer bearer-secret-value",
        "X-CSRFToken": "csrf-secret-value",
    }
    assert api.post(path, body, timestamp=ts, headers=headers).status_code == 500
    callback = sentry_app.test_client().post(
        f"/api/v1/payments/mpesa/callback/{callback_token}", json={"Body": {}}, headers={"Cookie": "a=cookie-two"}
    )
    assert callback.status_code == 500
    sentry_sdk.flush(timeout=10)

    reported = wait_until(lambda: len(events(sentry_host)) >= 2, 10, 0.1, what="two events")
    assert reported
    by_path = {e["request"]["url"].split("/api/v1/", 1)[1]: e for e in events(sentry_host)}
    assert set(by_path) == {"jobs", f"payments/mpesa/callback/{FILTERED}"}
    for event in by_path.values():
        assert exception_types(event) == ["RuntimeError"]
        assert event["environment"] == "test" and event["release"] == "opsdeck@web-test"
        assert event["request"]["method"] == "POST"
    job_request = by_path["jobs"]["request"]
    assert job_request["headers"]["Opsdeck-Key"] == tenant.key_id  # a key id, kept
    assert job_request["headers"].get("Opsdeck-Signature", FILTERED) == FILTERED
    assert job_request["query_string"] == f"access_token={FILTERED}"
    assert "cookies" not in job_request
    assert job_request["data"]["payload"]["router_password"] == FILTERED
    assert job_request["data"]["payload"]["message"] == FILTERED
    frames = by_path["jobs"]["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "failing_submit" and frames[-1]["vars"]["router_password"] == FILTERED
    assert_nowhere(
        sentry_host,
        signed,
        tenant.secret,
        tenant.secret[3:],
        callback_token,
        webhook_secret,
        "cookie-secret-value",
        "cookie-two",
        "bearer-secret-value",
        "csrf-secret-value",
        "query-secret-value",
        "hunter2-router-pass",
        "test-secret-key",  # SECRET_KEY
        ENCRYPTION_KEY,
    )


def test_sentry_is_initialised_once_per_process_and_before_the_broker(sentry_app, sentry_host, monkeypatch):
    """create_app runs many times in one process: Sentry starts again only when a setting
    changes, and every broker made after it has Sentry's middleware first."""
    assert isinstance(queue.broker.middleware[0], SentryMiddleware)
    calls: list[dict[str, Any]] = []
    real_init = sentry_sdk.init
    monkeypatch.setattr(sentry_sdk, "init", lambda *a, **kw: calls.append(kw) or real_init(*a, **kw))
    config = dict(SENTRY_DSN=dsn(sentry_host), SENTRY_RELEASE="opsdeck@web-test")
    create_app(make_config(sentry_app.config["SQLALCHEMY_DATABASE_URI"], sentry_app.config["REDIS_URL"], **config))
    assert calls == []
    config["SENTRY_DSN"] = dsn(sentry_host).replace("/1", "/2")
    create_app(make_config(sentry_app.config["SQLALCHEMY_DATABASE_URI"], sentry_app.config["REDIS_URL"], **config))
    assert [c["dsn"] for c in calls] == [config["SENTRY_DSN"]]
    assert sentry_sdk.get_client().should_send_default_pii() is False
    assert sentry_sdk.get_client().options["trace_propagation_targets"] == []  # no headers to customers
    assert isinstance(queue.broker.middleware[0], SentryMiddleware)


def test_no_dsn_means_no_sentry_at_all(redis_server, tmp_path, monkeypatch):
    """With SENTRY_DSN empty, sentry_sdk.init is never called and brokers get no Sentry middleware."""
    sentry_off()
    calls: list[Any] = []
    monkeypatch.setattr(sentry_sdk, "init", lambda *a, **kw: calls.append(kw))
    app = create_app(make_config(f"sqlite:///{tmp_path / 'opsdeck.db'}", redis_server.url, SENTRY_DSN=""))
    assert calls == [] and not sentry_sdk.get_client().is_active()
    assert not any(isinstance(m, SentryMiddleware) for m in queue.broker.middleware)
    assert app.config["SENTRY_DSN"] == ""


# -- the scrubber on its own ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failed: 'sk_abcdefghijklmnopqrstuvwxyz0123'", f"failed: '{FILTERED}'"),
        ("sign with whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVg==", f"sign with {FILTERED}"),
        (
            "http://h/api/v1/payments/mpesa/callback/AbC-12_z?x=1",
            f"http://h/api/v1/payments/mpesa/callback/{FILTERED}?x=1",
        ),
        ("{'router_password': 'hunter2', 'host': 'r1'}", f"{{'router_password': '{FILTERED}', 'host': 'r1'}}"),
        ('{"api_key": "abc def", "n": 1}', f'{{"api_key": "{FILTERED}", "n": 1}}'),
        ("a=1&access_token=abc&b=2", f"a=1&access_token={FILTERED}&b=2"),
        ("login password=hunter2 user=bob", f"login password={FILTERED} user=bob"),
        ("Authorization: Bearer abc.def\nHost: h", f"Authorization: {FILTERED}\nHost: h"),
        ("postgresql://opsdeck:pw123@db/opsdeck", f"postgresql://opsdeck:{FILTERED}@db/opsdeck"),
        ("keys 7Hq0J2mXo1uWbYtI6f3KcZ8aLrVn5pSdE9gQxB4hNjA=", f"keys {FILTERED}"),  # Fernet-shaped
        ("'Opsdeck-Key': 'key_123', 'Idempotency-Key': 'k1'", "'Opsdeck-Key': 'key_123', 'Idempotency-Key': 'k1'"),
    ],
)
def test_scrubber_removes_secret_shaped_text(text, expected):
    assert sentry.Scrubber().text(text) == expected


def test_scrubber_filters_sensitive_keys_and_configured_secrets():
    config = {
        "SECRET_KEY": "flask-session-key",
        "OPSDECK_ENCRYPTION_KEYS": ["old-fernet-key-1"],
        "SMTP_PASSWORD": "smtp-pass-9",
        "WTF_CSRF_HEADERS": ["X-CSRFToken"],
        "PORT": 5000,
    }
    scrubber = sentry.Scrubber(sentry.config_secrets(config))
    event = {
        "request": {
            "headers": {"Opsdeck-Signature": "v1=ab", "Opsdeck-Key": "key_1", "Set-Cookie": "s=1", "X-CSRFToken": "t"},
            "data": {"webhook": {"signing_secret": "x", "url": "https://c.example/hook"}},
        },
        "extra": {"note": "uses flask-session-key", "password_hash": "h", "empty_token": None},
        "logentry": {"formatted": "decrypt with old-fernet-key-1 failed; smtp login smtp-pass-9 refused"},
        "breadcrumbs": {"values": [{"data": {"url": "/api/v1/payments/mpesa/callback/tok123"}}]},
        "transaction": "/api/v1/payments/mpesa/callback/tok123",
    }
    assert scrubber.event(event) == {
        "request": {
            "headers": {
                "Opsdeck-Signature": FILTERED,
                "Opsdeck-Key": "key_1",
                "Set-Cookie": FILTERED,
                "X-CSRFToken": FILTERED,
            },
            "data": {"webhook": {"signing_secret": FILTERED, "url": "https://c.example/hook"}},
        },
        "extra": {"note": f"uses {FILTERED}", "password_hash": FILTERED, "empty_token": None},
        "logentry": {"formatted": f"decrypt with {FILTERED} failed; smtp login {FILTERED} refused"},
        "breadcrumbs": {"values": [{"data": {"url": f"/api/v1/payments/mpesa/callback/{FILTERED}"}}]},
        "transaction": f"/api/v1/payments/mpesa/callback/{FILTERED}",
    }


def test_release_defaults_to_the_checked_out_commit(tmp_path: Path):
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
        if head.returncode == 0:
            assert sentry.git_commit(ROOT) == head.stdout.strip()
    assert sentry.git_commit(tmp_path) is None
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "packed-refs").write_text("# pack-refs\n" + "a" * 40 + " refs/heads/main\n")
    assert sentry.git_commit(repo) == "a" * 40
