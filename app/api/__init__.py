"""The signed JSON API at /api/v1: its own blueprint, auth, rate limit and error shape."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, g, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from app.api import errors
from app.api.auth import authenticate
from app.api.validation import NUL
from app.services import ratelimit

bp = Blueprint("api", __name__, url_prefix="/api/v1")

#: Endpoints reachable without a signature.
PUBLIC_ENDPOINTS = {"api.openapi", "api.mpesa_callback"}
#: Bulk calls: their own body limit, and each item counts against the rate limit (`charge`).
BATCH_ENDPOINTS = {"api.create_jobs", "api.create_events"}


@bp.before_request
def _authenticate_and_limit() -> None:
    if NUL in request.path:  # no id or token holds one (and PostgreSQL text cannot)
        raise errors.ApiProblem(404, "Not found", "No such resource.", type="not-found")
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    if request.endpoint == "api.create_scan":  # uploads: their own limit, refused before reading
        from app.api.scans import too_large, upload_limit

        limit = upload_limit()
        if request.content_length is not None and request.content_length > limit:
            raise too_large(current_app.config["SCAN_MAX_BYTES"])
        request.max_content_length = limit
    elif request.endpoint in BATCH_ENDPOINTS:
        request.max_content_length = current_app.config["API_BATCH_MAX_BYTES"]
    authenticate()
    if request.endpoint not in BATCH_ENDPOINTS:
        charge(1)
    for name, value in request.args.items(multi=True):
        if NUL in name or NUL in value:
            raise errors.validation_failed({name.replace(NUL, ""): ["Must not contain NUL characters (U+0000)."]})


def charge(cost: int) -> None:
    """Count `cost` against the tenant's rate limit (a bulk call: one per item), or 429."""
    limit = current_app.config["API_RATE_LIMIT_PER_MINUTE"]
    decision = ratelimit.hit(f"api:{g.tenant_id}", limit, 60, cost=cost)
    if not decision.allowed:
        raise errors.ApiProblem(
            429,
            "Too many requests",
            f"Rate limit of {limit} requests (or bulk items) per minute exceeded.",
            type="rate-limited",
            headers={"Retry-After": str(decision.retry_after)},
        )


def family(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A family's routes answer 404 while the family is switched off (OPSDECK_DISABLED_FAMILIES)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name in current_app.config.get("OPSDECK_DISABLED_FAMILIES", []):
                raise errors.ApiProblem(
                    404, "Not found", f"The {name} family is switched off on this server.", type="family-disabled"
                )
            return view(*args, **kwargs)

        wrapper.family = name  # type: ignore[attr-defined]  # the OpenAPI document declares its 404
        return wrapper

    return decorator


@bp.errorhandler(errors.ApiProblem)
@bp.errorhandler(ValidationError)
@bp.errorhandler(HTTPException)
def _problem(err: Exception):
    problem = errors.as_problem(err)
    assert problem is not None  # the three kinds registered here
    return problem.response()


class ItemId(BaseConverter):
    """An id in a collection that also has a bulk call: any path segment but `batch`, so that
    /jobs/batch is the bulk call alone (its `Allow` does not offer the item's GET)."""

    regex = r"(?!batch$)[^/]+"


def register(app: Flask) -> None:
    from app.api import email, jobs, openapi, provisioning, scans, webhooks  # noqa: F401  (routes attach to bp)

    app.url_map.converters["item"] = ItemId
    app.register_blueprint(bp)
