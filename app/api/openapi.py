"""OpenAPI 3 document for /api/v1, built from the app's URL map: every API route wears `@doc`
(request/response schemas, status, problem codes), so a route cannot be left out."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Response, current_app, jsonify
from marshmallow import Schema

from app.api import bp

PROBLEM = {"$ref": "#/components/schemas/Problem"}
PROBLEM_TEXT = {
    400: "Malformed request",
    401: "Authentication failed",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Not JSON",
    422: "Validation failed",
    429: "Rate limited",
}
#: Every signed route can answer these.
COMMON_PROBLEMS = (401, 429)


def doc(
    *,
    status: int = 200,
    response: type[Schema] | None = None,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    problems: tuple[int, ...] = (),
    many: bool = False,
    summary: str | None = None,
    upload: str | None = None,
    binary: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a route for the OpenAPI document (summary: the view's docstring, first line).
    `upload`: the multipart field carrying a file; `binary`: the answer is the file itself."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        view.openapi = {  # type: ignore[attr-defined]
            "status": status, "response": response, "body": body, "query": query,
            "problems": problems, "many": many, "upload": upload, "binary": binary,
            "summary": summary or (view.__doc__ or view.__name__).strip().splitlines()[0],
        }  # fmt: skip
        return view

    return decorator


def _schema_name(schema: type[Schema]) -> str:
    return schema.__name__.removesuffix("Schema")


def _operation(method: str, path_params: list[str], info: dict[str, Any], security: Any) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in path_params
    ]
    if method in ("post", "patch", "delete"):
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "maxLength": 255}})  # fmt: skip
    if info["query"] is not None:
        params.append({"in": "query", "schema": info["query"]})
    answer: dict[str, Any] = {"description": info["summary"]}
    if info["response"] is not None:
        ref: dict[str, Any] = {"$ref": f"#/components/schemas/{_schema_name(info['response'])}"}
        if info["many"]:
            ref = {"type": "object", "properties": {"data": {"type": "array", "items": ref},
                                                     "next_cursor": {"type": "string", "nullable": True}}}  # fmt: skip
        answer["content"] = {"application/json": {"schema": ref}}
    if info["binary"]:
        answer["content"] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    op: dict[str, Any] = {
        "summary": info["summary"],
        "security": security,
        "parameters": params,
        "responses": {
            str(info["status"]): answer,
            **{
                str(c): {"description": PROBLEM_TEXT[c], "content": {"application/problem+json": {"schema": PROBLEM}}}
                for c in sorted({*COMMON_PROBLEMS, *info["problems"]})
            },
        },
    }
    if info["body"] is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _schema_name(info["body"])}}}
    if info["upload"] is not None:
        upload = {"type": "object", "required": [info["upload"]],
                  "properties": {info["upload"]: {"type": "string", "format": "binary"}}}  # fmt: skip
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": upload}}}
    return op


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="Opsdeck API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Signed JSON API. See the README for the Opsdeck-Signature scheme."},
        servers=[{"url": "/api/v1"}],
    )
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

    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        view = current_app.view_functions.get(rule.endpoint)
        info = getattr(view, "openapi", None)
        if not rule.endpoint.startswith("api.") or info is None:
            continue
        for schema in (info["response"], info["body"]):
            if schema is not None and _schema_name(schema) not in spec.components.schemas:
                spec.components.schema(_schema_name(schema), schema=schema)
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                method.lower(), list(rule.arguments), info, security
            )
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi() -> Response:
    cached = current_app.extensions.get("opsdeck_openapi")
    if cached is None:
        cached = current_app.extensions["opsdeck_openapi"] = build_spec()
    return jsonify(cached)
