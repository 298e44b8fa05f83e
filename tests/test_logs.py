"""Logs are JSON lines with the request id (taken from X-Request-ID or made, and returned), the
tenant, the job id and actor of the work they describe, and no secret."""

from __future__ import annotations

import io
import json
import logging

import pytest

from app import logs


def test_a_request_gets_an_id_and_one_access_line_with_its_tenant(app, api, tenant):
    handler_stream = io.StringIO()
    handler = logging.StreamHandler(handler_stream)
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger("opsdeck.access").addHandler(handler)
    logging.getLogger("opsdeck.access").setLevel(logging.INFO)
    try:
        given = api.get("/api/v1/jobs", headers={"X-Request-ID": "req-42.abc"})
        made = api.get("/api/v1/jobs", headers={"X-Request-ID": "bad id with spaces; and <markup>"})
        callback = app.test_client().post(
            "/api/v1/payments/mpesa/callback/sk_live_abcdefghijklmnopqrstuvwxyz1234", json={}
        )
    finally:
        logging.getLogger("opsdeck.access").removeHandler(handler)
    assert given.headers["X-Request-ID"] == "req-42.abc"
    assert (
        made.headers["X-Request-ID"] != "bad id with spaces; and <markup>" and len(made.headers["X-Request-ID"]) == 32
    )
    entries = [json.loads(line) for line in handler_stream.getvalue().splitlines()]
    first = entries[0]
    assert first["request_id"] == "req-42.abc" and first["status"] == 200 and first["method"] == "GET"
    assert first["tenant"] == tenant.tenant_id
    assert first["endpoint"] == "api.list_jobs" and first["duration_ms"] >= 0 and first["level"] == "info"
    assert entries[1]["request_id"] == made.headers["X-Request-ID"]
    assert callback.status_code == 404
    assert "sk_live_abcdefghijklmnopqrstuvwxyz1234" not in handler_stream.getvalue()  # the token in the path


def test_bound_context_and_extra_fields_are_in_every_line_and_secrets_are_not(app):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("opsdeck.test")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with logs.bind(job_id="job-1", actor="webhooks_deliver", tenant="t-1"):
            log.info("attempt failed", extra={"duration_ms": 12.5, "secret": "whsec_" + "A" * 32})
            try:
                raise RuntimeError("boom sk_" + "b" * 30)
            except RuntimeError:
                log.exception("crashed")
        log.info("outside")
    finally:
        log.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["job_id"] == "job-1" and first["actor"] == "webhooks_deliver" and first["tenant"] == "t-1"
    assert first["duration_ms"] == 12.5 and first["message"] == "attempt failed"
    assert "RuntimeError" in second["exception"] and "b" * 30 not in second["exception"]
    assert "whsec_" + "A" * 32 not in stream.getvalue()
    assert "job_id" not in third


@pytest.mark.slow
def test_a_worker_writes_one_json_line_per_job_transition(app, workers):
    from tests.fakes.processes import wait_until
    from tests.helpers import submit, wait_for_status

    worker = workers.start(["default"], LOG_FORMAT="json")
    ok = submit(payload={"message": "fine"})
    doomed = submit(payload={"fail": True}, max_attempts=1)
    wait_for_status(ok, "succeeded")
    wait_for_status(doomed, "dead")

    def job_lines() -> list[dict]:
        found = []
        for line in worker.log().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("job_id") in (ok, doomed):
                    found.append(entry)
        return found

    wait_until(lambda: len(job_lines()) >= 4, 20, 0.1, what="the job lines")
    by_job = {
        job: [(e["message"].split(" ")[1], e["level"]) for e in job_lines() if e["job_id"] == job]
        for job in (ok, doomed)
    }
    assert by_job[ok] == [("running", "info"), ("succeeded", "info")]
    assert by_job[doomed][0] == ("running", "info") and by_job[doomed][-1][1] == "error"
    # Once each, as JSON: Dramatiq's own plain handler (which wrote every line again, unscrubbed) is gone.
    assert sum("job succeeded" in line for line in worker.log().splitlines()) == 1
    succeeded = next(e for e in job_lines() if e["message"] == "job succeeded")
    assert (
        succeeded["actor"] == "system_echo" and succeeded["duration_ms"] >= 0 and succeeded["job_type"] == "system.echo"
    )
