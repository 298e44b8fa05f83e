"""One error shape for the API: application/problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any

from flask import Response, json

PROBLEM_BASE = "https://opsdeck.dev/problems/"


class ApiProblem(Exception):
    """Raise from a view to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str | None = None,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail
        self.type, self.errors, self.headers = type, errors, headers or {}


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (type or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_exception(err: ApiProblem) -> Response:
    return problem(err.status, err.title, err.detail, type=err.type, errors=err.errors, headers=err.headers)


def validation_failed(errors: dict[str, Any]) -> ApiProblem:
    return ApiProblem(
        422, "Validation failed", "The request body has invalid fields.", type="validation-failed", errors=errors
    )
