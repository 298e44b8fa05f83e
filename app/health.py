"""/healthz (process up) and /readyz (can this process serve the API; every dependency's state)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.services import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """For load balancers: 200 while this process can serve the API, i.e. its database answers,
    with `status` `degraded` and the rest listed under `down` when Redis, clamd or the SMTP
    relay is away (work waits in the ledger for them); 503 when the database does not answer.

    `?deep=1`, for monitoring: a canary job through the workers too, and 503 when anything is
    down. Not for a load balancer: a peer's outage would take every web process out."""
    deep = request.args.get("deep") in {"1", "true"}
    report = health.readiness(deep=deep)
    body: dict[str, object] = {"status": report.status, "checks": report.checks}
    if report.down:
        body["down"] = report.down
    failed = report.status == "unavailable" or (deep and bool(report.down))
    return jsonify(body), 503 if failed else 200
