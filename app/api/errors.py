"""One error shape for the API: application/problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any

from flask import Response, json
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

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
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail
        self.type, self.errors, self.headers = type, errors, headers or {}
        #: Extension members (RFC 9457 §3.2), e.g. the id of a rejected upload's record.
        self.extra = extra or {}

    def response(self) -> Response:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + (self.type or self.title.lower().replace(" ", "-")),
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        response = Response(json.dumps(body), status=self.status, mimetype="application/problem+json")
        response.headers.update(self.headers)
        return response


def as_problem(err: Exception) -> ApiProblem | None:
    """The problem the API answers `err` with, or None for an unexpected error (a 500)."""
    if isinstance(err, ApiProblem):
        return err
    if isinstance(err, ValidationError):
        return validation_failed(err.messages if isinstance(err.messages, dict) else {"_schema": err.messages})
    if isinstance(err, HTTPException):
        return from_http(err)
    return None


def from_http(err: HTTPException) -> ApiProblem:
    """A werkzeug error as a problem, keeping its headers (`Allow` on a 405, `Retry-After`)."""
    headers = {name: value for name, value in err.get_headers() if name.lower() != "content-type"}
    return ApiProblem(err.code or 500, err.name, err.description, headers=headers)


def validation_failed(errors: dict[str, Any]) -> ApiProblem:
    return ApiProblem(
        422, "Validation failed", "The request body has invalid fields.", type="validation-failed", errors=errors
    )
