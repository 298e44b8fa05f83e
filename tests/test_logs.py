"""Logs are JSON lines with the request id (taken from X-Request-ID or made, and returned), the
tenant, the job id and actor of the work they describe, and no secret."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from app.telemetry import logs, sentry


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


#: What must never reach a log, whatever its format, and the lines that carry it.
CALLBACK_TOKEN = "cbtok" + "Z" * 27
BEARER = "Bearer " + "t0ken" * 8
SIGNATURE = "v1=" + "ab" * 32
WEBHOOK_SECRET = "whsec_" + "Q" * 32
PASSWORD = "hunter2-but-longer"
SMTP_PASSWORD = "relay-password-from-the-settings"
SECRETS = (CALLBACK_TOKEN, BEARER.split()[1], SIGNATURE.removeprefix("v1="), WEBHOOK_SECRET, PASSWORD, SMTP_PASSWORD)


def _log_every_kind_of_secret(log: logging.Logger) -> int:
    """Log lines carrying SECRETS as code does; returns how many lines."""
    log.info("POST %s 404", f"/api/v1/payments/mpesa/callback/{CALLBACK_TOKEN}")
    log.info("request headers %s", {"Authorization": BEARER, "Opsdeck-Signature": SIGNATURE})
    log.warning("raw headers:\r\nAuthorization: %s\r\nOpsdeck-Signature: %s", BEARER, SIGNATURE)
    log.info("endpoint created with %s", WEBHOOK_SECRET)
    log.info("router login user=admin password=%s", PASSWORD)
    log.info("relay refused %s", SMTP_PASSWORD)
    try:
        raise RuntimeError(f"signing with {WEBHOOK_SECRET} failed")
    except RuntimeError:
        log.exception("crashed")
    return 7


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_format_logs_a_secret(log_format):
    stream = io.StringIO()
    handler = logs.LineHandler(stream)
    handler.setFormatter(logs.formatter({"LOG_FORMAT": log_format, "SMTP_PASSWORD": SMTP_PASSWORD}))
    log = logging.getLogger("opsdeck.test.secrets")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with logs.bind(request_id="req-1"):
            lines = _log_every_kind_of_secret(log)
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert written.count("req-1") == lines and "[Filtered]" in written, written  # every line is there
    assert [s for s in SECRETS if s in written] == [], written
    if log_format == "json":
        assert all(json.loads(line) for line in written.splitlines())


def test_scrubbed_text_scrubbed_again_is_unchanged():
    """gunicorn's access line is scrubbed twice: its atoms, then the line."""
    scrubber = sentry.Scrubber()
    for text in (
        f"POST /api/v1/payments/mpesa/callback/{CALLBACK_TOKEN} HTTP/1.1",
        f"password={PASSWORD}",
        f"{{'token': '{PASSWORD}'}}",
        BEARER,
        f"https://user:{PASSWORD}@relay/",
        WEBHOOK_SECRET,
    ):
        once = scrubber.line(text)
        assert once != text and scrubber.line(once) == once, once


def test_the_text_access_line_hides_the_callback_token(app):
    """What `make run` shows (LOG_FORMAT=text): the request's access line, token scrubbed."""
    stream = io.StringIO()
    handler = logs.LineHandler(stream)
    handler.setFormatter(logs.formatter({"LOG_FORMAT": "text"}))
    logging.getLogger("opsdeck.access").addHandler(handler)
    logging.getLogger("opsdeck.access").setLevel(logging.INFO)
    try:
        answer = app.test_client().post(f"/api/v1/payments/mpesa/callback/{CALLBACK_TOKEN}", json={})
    finally:
        logging.getLogger("opsdeck.access").removeHandler(handler)
    assert answer.status_code == 404
    assert "POST /api/v1/payments/mpesa/callback/[Filtered] 404" in stream.getvalue()
    assert CALLBACK_TOKEN not in stream.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logging does not depend on it
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_gunicorn_logs_no_secret_in_either_format(app, workers, log_format):
    """The production web command with gunicorn's access log on, printing headers, and its error
    log at debug level (which names every request's path): gunicorn's lines come out in
    LOG_FORMAT, scrubbed like the app's."""
    import requests

    access_format = "%(r)s %(s)s auth=%({authorization}i)s sig=%({opsdeck-signature}i)s"
    url = workers.start_web(
        LOG_FORMAT=log_format,
        SMTP_PASSWORD=SMTP_PASSWORD,
        GUNICORN_CMD_ARGS=f"--access-logfile - --log-level debug --access-logformat '{access_format}'",
    )
    callback = requests.post(f"{url}/api/v1/payments/mpesa/callback/{CALLBACK_TOKEN}", json={}, timeout=10)
    signed = requests.get(
        f"{url}/healthz?password={PASSWORD}",
        timeout=10,
        headers={"Authorization": BEARER, "Opsdeck-Signature": SIGNATURE},
    )
    assert (callback.status_code, signed.status_code) == (404, 200)
    web = workers.started[-1]
    web.wait_for_log("GET /healthz?password=[Filtered] HTTP/1.1 200 auth=[Filtered] sig=[Filtered]")  # access lines
    web.wait_for_log("POST /api/v1/payments/mpesa/callback/[Filtered] HTTP/1.1 404 auth=- sig=-")
    web.stop()
    written = web.log()
    assert [s for s in SECRETS if s in written] == [], written
    if log_format == "json":
        said = {(e["logger"], e["message"]) for e in map(json.loads, written.splitlines())}
    else:  # time, level, logger, message (lines that do not start with a date continue the one before)
        said = {tuple(line.split(" ", 4)[3:]) for line in written.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)}
    assert ("gunicorn.error", "POST /api/v1/payments/mpesa/callback/[Filtered]") in said  # the debug line
    assert any(logger == "gunicorn.error" and message.startswith("Booting worker") for logger, message in said)
