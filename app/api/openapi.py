"""OpenAPI 3 document for /api/v1, generated from the marshmallow schemas (apispec)."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Response, current_app, jsonify

from app.api import bp
from app.api.jobs import JobListArgs, JobSchema

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem_responses(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed request",
        401: "Authentication failed",
        404: "Not found",
        409: "Conflict",
        413: "Body too large",
        422: "Validation failed",
        429: "Rate limited",
    }
    return {
        str(c): {"description": text[c], "content": {"application/problem+json": {"schema": PROBLEM}}} for c in codes
    }


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="Opsdeck API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Signed JSON API. See the README for the Opsdeck-Signature scheme."},
        servers=[{"url": "/api/v1"}],
    )
    spec.components.schema("Job", schema=JobSchema)
    spec.components.schema(
        "Problem",
        {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {"type": "object"},
            },
            "required": ["type", "title", "status"],
        },
    )
    for name in ("Opsdeck-Key", "Opsdeck-Timestamp", "Opsdeck-Signature"):
        spec.components.security_scheme(name, {"type": "apiKey", "in": "header", "name": name})
    security = [{"Opsdeck-Key": [], "Opsdeck-Timestamp": [], "Opsdeck-Signature": []}]
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 255},
    }
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    job_response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}
    spec.path(
        path="/jobs",
        operations={
            "post": {
                "summary": "Submit a job",
                "security": security,
                "parameters": [idem],
                "requestBody": {"required": True, "content": {"application/json": {"schema": "Job"}}},
                "responses": {
                    "202": {"description": "Accepted", **job_response},
                    **_problem_responses(400, 401, 409, 413, 422, 429),
                },
            },
            "get": {
                "summary": "List jobs (newest first, cursor pagination)",
                "security": security,
                "parameters": [{"in": "query", "schema": JobListArgs}],
                "responses": {"200": {"description": "A page of jobs"}, **_problem_responses(401, 422, 429)},
            },
        },
    )
    spec.path(
        path="/jobs/{job_id}",
        operations={
            "get": {
                "summary": "Read a job",
                "security": security,
                "parameters": [job_id],
                "responses": {"200": {"description": "The job", **job_response}, **_problem_responses(401, 404)},
            },
        },
    )
    for action, summary, code in (
        ("cancel", "Cancel a job that has not started", "200"),
        ("retry", "Run a dead or cancelled job again", "202"),
    ):
        spec.path(
            path=f"/jobs/{{job_id}}/{action}",
            operations={
                "post": {
                    "summary": summary,
                    "security": security,
                    "parameters": [job_id, idem],
                    "responses": {
                        code: {"description": "The job", **job_response},
                        **_problem_responses(401, 404, 409),
                    },
                },
            },
        )
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi() -> Response:
    cached = current_app.extensions.get("opsdeck_openapi")
    if cached is None:
        cached = current_app.extensions["opsdeck_openapi"] = build_spec()
    return jsonify(cached)
