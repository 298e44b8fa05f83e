"""Helpers for tests that wait on real processes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Job, Scan
from tests.fakes.processes import wait_until


def job_row(job_id: str) -> Job:
    db.session.rollback()  # a fresh snapshot: other processes wrote since
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


def wait_for_status(job_id: str, *statuses: str, timeout: float = 30, logs: Any = None) -> Job:
    try:
        wait_until(lambda: job_row(job_id).status in statuses, timeout, 0.1, what=f"job {job_id} to be {statuses}")
    except TimeoutError:
        job = job_row(job_id)
        detail = f"job is {job.status} (attempts {job.attempts}, error {job.error!r})"
        raise AssertionError(detail + ("\n" + logs() if logs else "")) from None
    return job_row(job_id)


def submit(job_type: str = "system.echo", payload: dict[str, Any] | None = None, **options: Any) -> str:
    from app.services import jobs

    job = jobs.submit(job_type, payload or {}, **options)
    job_id = job.id
    db.session.commit()
    return job_id


# -- admin pages ------------------------------------------------------------------
PASSWORD = "correct horse battery staple"


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


def login(client: Any, email: str, password: str = PASSWORD) -> Any:
    page = client.get("/admin/login")
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": csrf_token(page.text)})


def post(client: Any, url: str, data: dict[str, Any] | None = None, *, token_from: str = "/admin/") -> Any:
    token = csrf_token(client.get(token_from).text)
    return client.post(url, data={"csrf_token": token, **(data or {})})


# -- webhooks ---------------------------------------------------------------------
#: App settings that let webhook tests deliver to receivers on loopback, retrying after 1 s and 2 s.
LOOPBACK = {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "WEBHOOK_RETRY_SCHEDULE": [1, 2], "WEBHOOK_TIMEOUT": 2.0}


def make_endpoint(api: Any, url: str, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/v1/webhook-endpoints", {"url": url, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def post_event(api: Any, event_type: str = "invoice.paid", payload: Any = None, **extra: Any) -> Any:
    return api.post("/api/v1/events", {"type": event_type, "payload": payload or {"amount": 5}, **extra})


def run_attempt(delivery_id: str) -> Any:
    """One attempt of the delivery's current job, through the ledger as a worker makes it:
    claim, the service's attempt, then success (with the attempt's writes), failure or postpone."""
    from app.models import WebhookDelivery
    from app.services.jobs import ledger
    from app.services.webhooks import delivery

    db.session.rollback()
    job_id = db.session.get(WebhookDelivery, delivery_id, populate_existing=True).job_id
    db.session.rollback()
    job = ledger.claim(job_id, "test-worker", 30)
    assert job is not None, f"job {job_id} is not claimable"
    outcome = delivery.attempt(delivery_id, job)
    if isinstance(outcome.retry, ledger.Postpone):
        ledger.postpone(job.id, "test-worker", outcome.retry.seconds)
    elif outcome.retry is not None:
        delay = outcome.retry.seconds if isinstance(outcome.retry, ledger.RetryIn) else None
        ledger.fail(job.id, "test-worker", error=str(outcome.retry), traceback=None, retry_in=delay)
    else:
        assert ledger.succeed(job.id, "test-worker", outcome.result, outcome.writes)
    return outcome


def fresh(model: Any, ident: Any) -> Any:
    """The row as the database has it now (other sessions and processes wrote since)."""
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(model, ident)


# -- scans ------------------------------------------------------------------------
def run_scan_job(job_id: str) -> Any:
    """One attempt of a scans job as a worker makes it: claim, the service, then the ledger."""
    from app.services.jobs import ledger
    from app.services.scans import signatures, verdicts

    db.session.rollback()
    job = ledger.claim(job_id, "test-worker", 30)
    assert job is not None, f"job {job_id} is not claimable"
    if job.type == signatures.RESCAN.name:
        result = signatures.queue_rescans(job.payload["db_version"])
        assert ledger.succeed(job.id, "test-worker", result)
        return result
    outcome = verdicts.run(job.payload["scan_id"], job)
    if outcome.retry is not None:
        delay = outcome.retry.seconds if isinstance(outcome.retry, ledger.RetryIn) else None
        ledger.fail(job.id, "test-worker", error=str(outcome.retry), traceback=None, retry_in=delay)
    else:
        assert ledger.succeed(job.id, "test-worker", outcome.result)
    return outcome


def upload(api: Any, name: str, content: bytes) -> dict[str, Any]:
    response = api.upload("/api/v1/scans", name, content)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def scanned(api: Any, name: str, content: bytes) -> dict[str, Any]:
    """Upload, run the scan job once, return the API's view of the scan."""
    created = upload(api, name, content)
    run_scan_job(fresh(Scan, created["id"]).job_id)
    return api.get(f"/api/v1/scans/{created['id']}").get_json()


def files_in(folder: str | Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.is_file()]


# -- provisioning ----------------------------------------------------------------------
def run_provisioning_job(job_id: str) -> Any:
    """One attempt of a provisioning job as a worker makes it: claim, the service, the ledger."""
    from app.services.jobs import ledger
    from app.services.provisioning import payments, routers, subscriptions

    db.session.rollback()
    job = ledger.claim(job_id, "test-worker", 30)
    assert job is not None, f"job {job_id} is not claimable"
    if job.type == payments.PROCESS.name:
        result = payments.process(job.payload["payment_id"])
        assert ledger.succeed(job.id, "test-worker", {k: v for k, v in result.items() if k != "live"})
        return result
    if job.type == routers.CHECK.name:
        outcome = routers.check(job.payload["router_id"])
        assert ledger.succeed(job.id, "test-worker", outcome.result)
        return outcome
    step = subscriptions.provision if job.type == subscriptions.PROVISION.name else subscriptions.deprovision
    outcome = step(job.payload["subscription_id"], job)
    if outcome.retry is not None:
        delay = outcome.retry.seconds if isinstance(outcome.retry, ledger.RetryIn) else None
        ledger.fail(job.id, "test-worker", error=str(outcome.retry), traceback=None, retry_in=delay)
    else:
        assert ledger.succeed(job.id, "test-worker", outcome.result)
    return outcome


def pending_jobs(job_type: str) -> list[Job]:
    db.session.rollback()
    return list(
        db.session.scalars(
            select(Job)
            .where(Job.type == job_type, Job.status.in_(("pending", "queued", "retrying")))
            .order_by(Job.created_at)
        )
    )
