"""/healthz (process up) and /readyz (dependencies reachable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.services import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Database and Redis; with ?deep=1 also a canary job through the workers."""
    report = health.readiness(deep=request.args.get("deep") in {"1", "true"})
    down = sorted(name for name, state in report.items() if state != "ok")
    body = {"status": "ok" if not down else "unavailable", "checks": report}
    if down:
        body["down"] = down
    return jsonify(body), 503 if down else 200
