"""Prometheus metrics: what a real worker process counts shows up in the web process's scrape
(multiprocess files), queue depths come from the ledger, each family counts its outcomes, the
token guards the scrape, labels never carry ids, and promtool accepts the exposition."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import select

from app import jobtypes
from app.extensions import db
from app.models import Job, Scan, WebhookDelivery
from app.models.base import new_id, utcnow
from app.services import retention
from app.services.email import batches
from app.services.provisioning import subscriptions
from app.telemetry import metrics
from tests.fakes.http_receiver import Reply
from tests.fakes.processes import wait_until
from tests.fakes.routeros import RouterOsServer
from tests.fakes.smtp_sink import SmtpSink
from tests.helpers import (
    LOOPBACK,
    fresh,
    make_endpoint,
    pending_jobs,
    post_event,
    run_attempt,
    run_provisioning_job,
    run_scan_job,
    submit,
    upload,
    wait_for_status,
)

ECHO = {"type": "system.echo", "queue": "default"}
UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)
ROUTER_PASSWORD = "r0uter-secret"
#: The fixed values of the other labels.
CLOSED = {
    "state": {"waiting", "delayed", "running", "retrying", "dead"},
    "reason": {
        "missing_headers",
        "malformed_timestamp",
        "timestamp_outside_tolerance",
        "unknown_or_revoked_key",
        "bad_signature",
        "too_many_signature_values",
        "hard_bounce",
    },
    "outcome": {
        "sent",
        "retrying",
        "failed",
        "deferred",
        "success",
        "http_error",
        "no_response",
        "provisioned",
        "expired",
    },
    "verdict": {"clean", "infected", "error"},
}


@pytest.fixture
def app_config(sink: SmtpSink) -> dict[str, Any]:
    return {
        **LOOPBACK,
        "SMTP_PORT": sink.port,
        "EMAIL_RATE_PER_MINUTE": 0,
        "EMAIL_DELAY": 0,
        "PROVISION_RETRY_SCHEDULE": [1],
        "ROUTER_TIMEOUT": 3.0,
    }


def scrape(client: Any, **headers: str) -> dict[str, list[Sample]]:
    """GET /metrics, parsed by prometheus_client's own parser: samples by name."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.content_type.startswith("text/plain; version=")
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


# -- the job lifecycle, counted in a real worker process ----------------------------------------
@pytest.mark.slow
def test_a_worker_process_counts_its_jobs_and_the_scrape_adds_every_process_up(app, workers):
    directory = app.config["PROMETHEUS_MULTIPROC_DIR"]
    worker = workers.start(["default"], name="counting", PROMETHEUS_MULTIPROC_DIR=directory)
    succeeding = [submit(payload={"message": f"m{i}"}) for i in range(3)]
    failing = submit(payload={"message": "boom", "fail": True}, max_attempts=1)
    submit(payload={"message": "waits"}, priority="low")  # default_low: no worker reads it
    submit(payload={"message": "later"}, delay_seconds=600)  # held in the ledger, not yet on the broker
    for job_id in succeeding:
        wait_for_status(job_id, "succeeded", logs=workers.logs)
    wait_for_status(failing, "dead", logs=workers.logs)

    client = app.test_client()

    def counted() -> dict[str, list[Sample]] | None:
        samples = scrape(client)
        done = value(samples, "opsdeck_jobs_succeeded_total", **ECHO), value(samples, "opsdeck_jobs_dead_total", **ECHO)
        return samples if done == (3, 1) else None

    samples = wait_until(counted, 10, 0.1, what="the worker's counters in the scrape")
    assert value(samples, "opsdeck_jobs_enqueued_total", **ECHO) == 4  # published by this process
    assert value(samples, "opsdeck_jobs_enqueued_total", type="system.echo", queue="default_low") == 1
    assert value(samples, "opsdeck_jobs_started_total", **ECHO) == 4  # counted by the worker
    assert value(samples, "opsdeck_jobs_retried_total") == 0  # max_attempts=1: dead at once
    assert value(samples, "opsdeck_job_duration_seconds_count", type="system.echo") == 4
    assert value(samples, "opsdeck_job_duration_seconds_bucket", type="system.echo", le="+Inf") == 4
    assert value(samples, "opsdeck_job_duration_seconds_sum", type="system.echo") > 0

    # Queue depths, read from the ledger at scrape time.
    assert value(samples, "opsdeck_queue_stats_up") == 1
    depth = {(s.labels["queue"], s.labels["state"]): s.value for s in samples["opsdeck_queue_jobs"]}
    assert depth[("default", "dead")] == 1 and depth[("default", "delayed")] == 1
    assert depth[("default", "waiting")] == 0 and depth[("default", "running")] == 0
    assert depth[("default_low", "waiting")] == 1
    assert 0 <= value(samples, "opsdeck_queue_oldest_waiting_seconds", queue="default_low") < 120
    assert value(samples, "opsdeck_queue_oldest_waiting_seconds", queue="default") == 0
    assert value(samples, "opsdeck_workers_alive") >= 1

    # Two processes wrote files (this one published, the worker ran); one scrape added them up.
    pids = {name.rsplit("_", 1)[1].removesuffix(".db") for name in os.listdir(directory)}
    assert str(os.getpid()) in pids and len(pids) >= 2
    assert_closed_label_sets(app, samples)

    worker.stop()  # a process that exits leaves its counts: counters never go back down
    assert value(scrape(client), "opsdeck_jobs_started_total", **ECHO) == 4


# -- families, through their real service paths in this process ---------------------------------
@pytest.fixture
def mikrotik() -> Iterator[RouterOsServer]:
    with RouterOsServer("opsdeck", ROUTER_PASSWORD) as server:
        yield server


def test_each_family_counts_its_outcomes_where_they_are_known(app, api, receiver, sink, mikrotik):
    # Webhooks: one attempt answered 2xx, one answered 500.
    receiver.script("/failing", Reply(500))
    make_endpoint(api, receiver.url())
    make_endpoint(api, receiver.url("/failing"))
    post_event(api)
    for delivery_id in db.session.scalars(select(WebhookDelivery.id)).all():
        run_attempt(delivery_id)

    # Email: one sent, one refused for good (and its address suppressed).
    sink.script("gone@example.com", "550 5.1.1 No such user")
    mail = {"template": "notification", "context": {"message": "hi"}}
    sent = api.post("/api/v1/emails", [{"to": "ana@example.com", **mail}, {"to": "gone@example.com", **mail}])
    assert sent.status_code == 202, sent.get_json()
    db.session.rollback()
    batches.flush("test-worker", budget=30)

    # Scans: one clean file, its bytes.
    content = b"quarterly figures, nothing to see\n"
    scan = upload(api, "report.txt", content)
    run_scan_job(fresh(Scan, scan["id"]).job_id)

    # Provisioning: a subscription provisioned, then expired.
    router = api.post(
        "/api/v1/routers",
        {
            "name": "lobby",
            "host": "127.0.0.1",
            "port": mikrotik.port,
            "username": "opsdeck",
            "password": ROUTER_PASSWORD,
        },
    ).get_json()
    plan = api.post("/api/v1/plans", {"name": "Hour", "price": "10", "duration": "1h"}).get_json()
    sub = api.post("/api/v1/subscriptions", {"plan_id": plan["id"], "router_id": router["id"]}).get_json()
    for job in pending_jobs(subscriptions.PROVISION.name):
        run_provisioning_job(job.id)
    assert api.post(f"/api/v1/subscriptions/{sub['id']}/expire", {}).status_code == 202
    for job in pending_jobs(subscriptions.DEPROVISION.name):
        run_provisioning_job(job.id)

    # Retention: two succeeded jobs past their day.
    long_ago = utcnow() - timedelta(days=30)
    for _ in range(2):
        db.session.add(
            Job(
                id=new_id(),
                type="system.echo",
                queue="default",
                priority="normal",
                status="succeeded",
                payload={},
                attempts=1,
                max_attempts=1,
                next_attempt_at=long_ago,
                created_at=long_ago,
                updated_at=long_ago,
                finished_at=long_ago,
            )
        )
    db.session.commit()
    retention.run(triggered_by="test", kinds=["jobs_succeeded"])

    samples = scrape(app.test_client())
    assert value(samples, "opsdeck_webhook_attempts_total", outcome="success") == 1
    assert value(samples, "opsdeck_webhook_attempts_total", outcome="http_error") == 1
    assert value(samples, "opsdeck_emails_total", outcome="sent") == 1
    assert value(samples, "opsdeck_emails_total", outcome="failed") == 1
    assert value(samples, "opsdeck_email_suppressions_total", reason="hard_bounce") == 1
    assert value(samples, "opsdeck_scans_total", verdict="clean") == 1
    assert value(samples, "opsdeck_scanned_bytes_total") == len(content)
    assert value(samples, "opsdeck_provisioning_total", outcome="provisioned") == 1
    assert value(samples, "opsdeck_provisioning_total", outcome="expired") == 1
    assert value(samples, "opsdeck_retention_deleted_rows_total", kind="jobs_succeeded") >= 2
    assert value(samples, "opsdeck_http_requests_total", endpoint="metrics") == 0  # counted after its body
    assert_closed_label_sets(app, samples)


# -- the token ------------------------------------------------------------------------------------
def test_a_metrics_token_refuses_scrapes_without_it(app):
    app.config["METRICS_TOKEN"] = "scrape-me-0f3a9c"
    client = app.test_client()
    refusals = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer scrape-me-0f3a9"},
        {"Authorization": "Basic scrape-me-0f3a9c"},
        {"Authorization": "scrape-me-0f3a9c"},
    ]
    for headers in refusals:
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer") and "opsdeck_" not in response.text
    samples = scrape(client, Authorization="Bearer scrape-me-0f3a9c")
    assert value(samples, "opsdeck_http_requests_total", endpoint="metrics", status="401") == len(refusals)


def test_without_a_token_the_scrape_is_open(app):
    assert app.config["METRICS_TOKEN"] == ""
    assert "opsdeck_queue_jobs" in scrape(app.test_client())


# -- labels ----------------------------------------------------------------------------------------
def test_requests_are_labelled_by_endpoint_never_by_path_or_id(app, api, tenant):
    job = api.post("/api/v1/jobs", {"type": "system.echo", "payload": {}}).get_json()
    assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    assert api.get(f"/api/v1/jobs/{uuid.uuid4()}").status_code == 404
    client = app.test_client()
    assert client.get(f"/no/such/page/{job['id']}").status_code == 404
    assert client.open(f"/api/v1/jobs/{job['id']}", method="BREW").status_code == 405
    assert client.get("/api/v1/jobs").status_code == 401  # no signature headers
    assert api.get("/api/v1/jobs", secret="sk_" + "x" * 40).status_code == 401

    samples = scrape(client)
    endpoint = app.url_map.bind("localhost").match(f"/api/v1/jobs/{job['id']}", method="GET")[0]
    assert value(samples, "opsdeck_http_requests_total", endpoint=endpoint, method="GET", status="200") == 1
    assert value(samples, "opsdeck_http_requests_total", endpoint=endpoint, method="GET", status="404") == 1
    assert value(samples, "opsdeck_http_requests_total", endpoint="unmatched", status="404") == 1
    assert value(samples, "opsdeck_http_requests_total", method="other", status="405") == 1
    assert value(samples, "opsdeck_http_request_duration_seconds_count", endpoint=endpoint, status="200") == 1
    assert value(samples, "opsdeck_api_auth_failures_total", reason="missing_headers") == 1
    assert value(samples, "opsdeck_api_auth_failures_total", reason="bad_signature") == 1
    assert value(samples, "opsdeck_jobs_enqueued_total", **ECHO) == 1
    assert_closed_label_sets(app, samples, forbidden={job["id"], tenant.tenant_id, tenant.key_id})


def assert_closed_label_sets(app: Any, samples: dict[str, list[Sample]], forbidden: set[str] = frozenset()) -> None:
    """Every label value comes from a closed set: no path, id, or client-chosen text."""
    allowed = {
        "endpoint": {rule.endpoint for rule in app.url_map.iter_rules()} | {"unmatched"},
        "method": metrics.METHODS | {"other"},
        "type": set(jobtypes.load()),
        "queue": set(jobtypes.all_queue_names()),
        "kind": {kind.name for kind in retention.KINDS},
        **CLOSED,
    }
    for name, found in samples.items():
        for sample in found:
            for label, text in sample.labels.items():
                assert not UUID.search(text) and not any(f in text for f in forbidden), (name, label, text)
                if label == "le":
                    continue
                if label == "status":
                    assert re.fullmatch(r"[1-5]\d\d", text), (name, text)
                else:
                    assert text in allowed[label], (name, label, text)


# -- the exposition and the dashboard ----------------------------------------------------------------
DASHBOARD = Path(__file__).resolve().parents[1] / "supervisor" / "grafana-dashboard.json"
PROMTOOL = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian package `prometheus`, installed by `make test`); the exposition is "
    "still parsed by prometheus_client's parser in every other test here",
)


def every_series(app: Any, api: Any) -> str:
    """The exposition after one request, one published job and one sample of every other series."""
    api.get("/api/v1/jobs")
    submit()
    for event in ("started", "succeeded", "retried", "dead"):
        metrics.job_event(event, "system.echo", "default", 0.01)
    metrics.api_auth_failed("bad signature")
    metrics.email_outcome("sent")
    metrics.email_suppressed("hard_bounce")
    metrics.webhook_attempt("success")
    metrics.scan_verdict("clean", 10)
    metrics.provisioning_outcome("provisioned")
    metrics.retention_deleted("jobs_succeeded", 3, 1024)
    return app.test_client().get("/metrics").text


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


@PROMTOOL
def test_promtool_accepts_the_exposition_of_every_series(app, api):
    text = every_series(app, api)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_has_a_panel_per_family_and_asks_only_for_series_that_exist(app, api):
    names = {family.name for family in text_string_to_metric_families(every_series(app, api))}
    exposed = names | {f"{n}_total" for n in names} | {f"{n}_{s}" for n in names for s in ("bucket", "sum", "count")}
    asked = {name for query in dashboard_queries() for name in re.findall(r"\bopsdeck_\w+", query)}
    assert asked and asked <= exposed, asked - exposed
    for family in ("http_", "jobs_", "queue_", "emails", "webhook_", "scans", "provisioning", "retention_"):
        assert any(name.startswith(f"opsdeck_{family}") for name in asked), family


@PROMTOOL
def test_promtool_accepts_every_dashboard_query(tmp_path):
    rules = [
        {"record": f"dashboard:query{i}", "expr": q.replace("$__rate_interval", "5m")}
        for i, q in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
