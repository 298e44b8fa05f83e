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

from app.api import PUBLIC_ENDPOINTS, bp

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
#: A route that reads a JSON body: malformed (400), over MAX_CONTENT_LENGTH (413), not JSON (415), invalid (422).
BODY_PROBLEMS = (400, 413, 415, 422)
#: A route that takes an Idempotency-Key: the key malformed or reused with another request (422).
IDEMPOTENCY_PROBLEMS = (422,)
IDEMPOTENCY_KEY = (
    "Your key for this operation (kept IDEMPOTENCY_TTL_HOURS): sent again with the same body, the first "
    "answer is replayed with `Idempotent-Replayed: true`; with another body, 422. Without it, the request's "
    "signature is the key while the signature is valid."
)
DESCRIPTION = (
    "Signed JSON API: every request carries Opsdeck-Key, Opsdeck-Timestamp (unix seconds, within "
    "API_SIGNATURE_TOLERANCE of the server's clock) and Opsdeck-Signature (v1=hex HMAC-SHA256 of "
    "'{timestamp}.{METHOD}.{path with query}.{body}'). A read (GET, HEAD) may be sent any number of times "
    "within the window. A write sent again with the same signature (an automatic retry) is answered as the "
    "first time, refusals included, with `Idempotent-Replayed: true`, and changes nothing a second time; "
    "a repeat racing the first is answered by whichever commits first. Errors are application/problem+json."
)
#: A URL with parameters can outgrow the web server's request line (gunicorn: 4094 bytes), which
#: refuses it before the API sees it, in its own format.
URI_TOO_LONG = "URI too long: refused by the web server in front of the API (not a problem document)"
#: A list's `cursor` parameter: the `next_cursor` of the page before, opaque to clients.
CURSOR = {"format": "cursor", "description": "next_cursor of the previous page"}
#: Any JSON value but null (OpenAPI 3.0 has no type list), for fields taken and returned as they are.
ANY_JSON = {"anyOf": [{"type": t} for t in ("object", "array", "string", "number", "boolean")]}


def doc(
    *,
    status: int = 200,
    also: tuple[int, ...] = (),
    response: type[Schema] | None = None,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    problems: tuple[int, ...] = (),
    many: bool = False,
    batch: int | None = None,
    summary: str | None = None,
    upload: str | None = None,
    binary: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a route for the OpenAPI document (summary: the view's docstring, first line).
    `also`: other success codes answered with the same body (e.g. 200 for a create that found the
    resource); `batch`: the body may also be a list of up to that many, answered as `{data: [...]}`;
    `upload`: the multipart field carrying a file; `binary`: the answer is the file itself.
    The problems every route of its kind can answer (auth, rate limit, body, Idempotency-Key, a
    switched-off family) are added by the document itself."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        view.openapi = {  # type: ignore[attr-defined]
            "status": status,
            "also": also,
            "response": response,
            "body": body,
            "query": query,
            "problems": problems,
            "many": many,
            "batch": batch,
            "upload": upload,
            "binary": binary,
            "summary": summary or (view.__doc__ or view.__name__).strip().splitlines()[0],
        }
        return view

    return decorator


#: What apispec derived for a field that is kept when the field states its own JSON Schema.
_KEPT = ("readOnly", "writeOnly", "nullable", "description", "default")


def _exact_schema(self: Any, field: Any, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """A field whose JSON Schema apispec cannot derive (a number or a numeric string; any JSON but
    null) gives it as `metadata={"json_schema": {...}}`, or a function returning it when it depends
    on the app's configuration; it replaces the derived type and limits."""
    exact = field.metadata.get("json_schema")
    if exact is None:
        return {}
    if callable(exact):
        exact = exact()
    kept = {key: ret[key] for key in _KEPT if key in ret}
    ret.clear()
    return {**exact, **kept}


def _schema_name(schema: type[Schema]) -> str:
    return schema.__name__.removesuffix("Schema")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "array", "items": item}, "next_cursor": {"type": "string", "nullable": True}},
    }


def _problems(view: Any, public: bool) -> set[int]:
    info = view.openapi
    codes = {*info["problems"]}
    if not public:
        codes.update(COMMON_PROBLEMS)
    if info["body"] is not None:
        codes.update(BODY_PROBLEMS)
    if info["upload"] is not None:
        codes.update((400, 413, 422))
    if getattr(view, "idempotent", False):
        codes.update(IDEMPOTENCY_PROBLEMS)
    if getattr(view, "family", None):
        codes.add(404)  # the family switched off (OPSDECK_DISABLED_FAMILIES)
    return codes


def _operation(path_params: list[str], view: Any, body_name: str | None, public: bool, security: Any) -> dict[str, Any]:
    info = view.openapi
    params: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in path_params
    ]
    if getattr(view, "idempotent", False):
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": IDEMPOTENCY_KEY,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if info["query"] is not None:
        params.append({"in": "query", "schema": info["query"]})
    answer: dict[str, Any] = {"description": info["summary"]}
    if info["response"] is not None:
        ref = _ref(_schema_name(info["response"]))
        if info["many"]:
            ref = _page(ref)
        elif info["batch"]:
            ref = {
                "anyOf": [
                    ref,
                    {
                        "type": "object",
                        "required": ["data"],
                        "additionalProperties": False,
                        "properties": {"data": {"type": "array", "items": ref}},
                    },
                ]
            }
        answer["content"] = {"application/json": {"schema": ref}}
    if getattr(view, "idempotent", False):
        answer["headers"] = {
            "Idempotent-Replayed": {
                "description": "`true` on an answer replayed for a repeat",
                "schema": {"type": "string", "enum": ["true"]},
            }
        }
    if info["binary"]:
        # The file's own type, as detected at upload.
        answer["content"] = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    problems = {
        str(c): {"description": PROBLEM_TEXT[c], "content": {"application/problem+json": {"schema": PROBLEM}}}
        for c in sorted(_problems(view, public))
    }
    if path_params or info["query"] is not None:
        problems["414"] = {"description": URI_TOO_LONG}
    op: dict[str, Any] = {
        "summary": info["summary"],
        "security": [] if public else security,
        "parameters": params,
        "responses": {**{str(c): answer for c in (info["status"], *info["also"])}, **dict(sorted(problems.items()))},
    }
    if body_name is not None:
        body: dict[str, Any] = _ref(body_name)
        if info["batch"]:
            body = {"anyOf": [body, {"type": "array", "items": body, "minItems": 1, "maxItems": info["batch"]}]}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if info["upload"] is not None:
        upload = {
            "type": "object",
            "required": [info["upload"]],
            "properties": {info["upload"]: {"type": "string", "format": "binary"}},
        }
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": upload}}}
    return op


def build_spec() -> dict[str, Any]:
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title="Opsdeck API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[marshmallow],
        info={"description": DESCRIPTION},
        servers=[{"url": "/api/v1"}],
    )
    marshmallow.converter.add_attribute_function(_exact_schema)  # type: ignore[union-attr]
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
    security: list[dict[str, list[str]]] = [{"Opsdeck-Key": [], "Opsdeck-Timestamp": [], "Opsdeck-Signature": []}]

    def component(schema: type[Schema], *, partial: bool = False) -> str:
        name = _schema_name(schema) + ("Changes" if partial else "")
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=schema(partial=True) if partial else schema)
        return name

    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        view = current_app.view_functions.get(rule.endpoint)
        info = getattr(view, "openapi", None)
        if not rule.endpoint.startswith("api.") or info is None:
            continue
        if info["response"] is not None:
            component(info["response"])
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        arguments = re.findall(r"\{([a-z_]+)\}", path)  # in the path's order (rule.arguments is a set)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            # A PATCH body is partial: every field optional.
            body = None if info["body"] is None else component(info["body"], partial=method == "PATCH")
            paths.setdefault(path, {})[method.lower()] = _operation(
                arguments, view, body, rule.endpoint in PUBLIC_ENDPOINTS, security
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
