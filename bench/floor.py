"""The production app plus P1b's floor endpoint, for the benchmark only: gunicorn serves it with
the production web command, `wsgi:app` replaced by `bench.floor:build()`.

    POST /bench/floor/jobs   {"type": "system.echo", "payload": {...}}

The least work any durable submit must do, with the app's own parts: look the API key up
(tenants.active_key_secret), verify the request's HMAC (app.api.auth.signature, the server's
own), insert one job row, commit, and publish the job's Dramatiq message
through the outbox. Nothing else: no replay record, no Idempotency-Key, no validation of the
payload, no rate limit, a short answer.
"""

from __future__ import annotations

import hmac
import json

from flask import Flask, Response, jsonify, request
from sqlalchemy import insert

from app import create_app, jobtypes
from app.api.auth import signature
from app.db.statements import core_execute
from app.extensions import csrf, db
from app.models import Job, JobStatus
from app.models.base import new_id, utcnow
from app.services import tenants
from app.services.jobs import outbox
from app.telemetry import logs

FLOOR_PATH = "/bench/floor/jobs"
_INSERT = insert(Job)


def floor_submit() -> Response | tuple[Response, int]:
    found = tenants.active_key_secret(request.headers.get("Opsdeck-Key", ""))
    if found is None:
        return jsonify({"error": "unknown key"}), 401
    key, secret = found
    timestamp = request.headers.get("Opsdeck-Timestamp", "")
    body = request.get_data()
    expected = "v1=" + signature(secret, timestamp, request.method, request.path, body)
    if not hmac.compare_digest(request.headers.get("Opsdeck-Signature", "").encode(), expected.encode()):
        return jsonify({"error": "bad signature"}), 401
    data = json.loads(body)
    job_type = jobtypes.get(data["type"])
    if job_type is None:
        return jsonify({"error": "unknown type"}), 422
    now = utcnow()
    row = {
        "id": new_id(),
        "tenant_id": key.tenant_id,
        "type": job_type.name,
        "queue": job_type.queue,
        "priority": "normal",
        "status": JobStatus.PENDING.value,
        "payload": data.get("payload") or {},
        "attempts": 0,
        "max_attempts": job_type.max_attempts,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    core_execute(_INSERT, row)
    outbox.publish_row_after_commit(db.session, row)
    db.session.commit()  # the outbox publishes once the transaction has ended
    return jsonify({"id": row["id"]}), 202


def build() -> Flask:
    """The app wsgi.py serves, with the floor endpoint."""
    flask_app = create_app()
    logs.configure(flask_app.config)
    flask_app.add_url_rule(FLOOR_PATH, "bench_floor_submit", floor_submit, methods=["POST"])
    csrf.exempt(floor_submit)
    return flask_app
