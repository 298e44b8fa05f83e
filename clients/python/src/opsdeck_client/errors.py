"""The errors the client raises: one tree under OpsdeckError.

An HTTP error answer (4xx, 5xx) becomes the subclass for its status, carrying the
problem+json document's members; a request that got no answer at all is a TransportError.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any


class OpsdeckError(Exception):
    """An error answer from Opsdeck, or (TransportError) no answer.

    `status` is the HTTP status (0 when no answer came); `type`, `title`, `detail` and
    `errors` are the problem document's members (`errors`: field messages, keyed by field, or
    by an item's index inside a bulk call's list); `problem` is the whole document, extension
    members included; `retry_after` is the wait the server asked for, in seconds, if any."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str | None = None,
        errors: dict[str, Any] | None = None,
        problem: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {title}" + (f": {detail}" if detail else ""))
        self.status, self.title, self.detail, self.type = status, title, detail, type
        self.errors: dict[str, Any] = errors or {}
        self.problem: dict[str, Any] = problem or {}
        self.headers: Mapping[str, str] = headers or {}
        self.retry_after = retry_after


class AuthenticationError(OpsdeckError):
    """401: a missing, unknown or revoked key, a bad signature, or a clock off by more than
    the server's tolerance (300 s). The server does not say which, on purpose."""


class NotFoundError(OpsdeckError):
    """404: no such resource for this key's tenant (or its family is switched off)."""


class ConflictError(OpsdeckError):
    """409: the resource's state forbids it (cancelling a finished job, downloading an
    infected file)."""


class ValidationError(OpsdeckError):
    """422: invalid fields (see `errors`), or an upload the pre-checks rejected."""


class RateLimitError(OpsdeckError):
    """429: the tenant's requests per minute are spent; `retry_after` says for how long."""


class TransportError(OpsdeckError):
    """No HTTP answer: connection refused or reset, DNS, TLS, or a timeout (after the retries).
    The original exception is its `__cause__`."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "Transport error", detail, type="transport-error")


_BY_STATUS: dict[int, type[OpsdeckError]] = {
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def from_answer(status: int, reason: str, headers: Mapping[str, str], content: bytes) -> OpsdeckError:
    """The error for an error answer. A problem+json body gives the members; anything else
    (a proxy's HTML page, an empty 502) gives the HTTP reason and the start of the text."""
    problem: dict[str, Any] = {}
    try:
        decoded = json.loads(content) if content else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        problem = decoded
    detail = problem.get("detail")
    if not problem and content:
        detail = content[:500].decode("utf-8", "replace").strip() or None
    cls = _BY_STATUS.get(status, OpsdeckError)
    return cls(
        status,
        str(problem.get("title") or reason or "Error"),
        str(detail) if detail is not None else None,
        type=problem.get("type"),
        errors=problem.get("errors") if isinstance(problem.get("errors"), dict) else None,
        problem=problem,
        headers=headers,
        retry_after=parse_retry_after(headers.get("Retry-After")),
    )
