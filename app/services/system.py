"""The `system` family: the canary job type `system.echo`."""

from __future__ import annotations

import time
from typing import Any

from marshmallow import Schema, fields, validate

from app.jobtypes import JobType, register


class EchoPayload(Schema):
    message = fields.String(load_default="", validate=validate.Length(max=10_000))
    sleep_seconds = fields.Float(load_default=0, validate=validate.Range(min=0, max=60))
    fail = fields.Boolean(load_default=False)


ECHO = register(
    JobType("system.echo", family="system", queue="default", payload=EchoPayload, max_attempts=3, public=True)
)


class BulkPayload(Schema):
    action = fields.String(required=True, validate=validate.OneOf(["retry", "cancel"]))
    job_ids = fields.List(fields.String(validate=validate.Length(max=36)), load_default=None, allow_none=True)
    filter = fields.Dict(load_default=None, allow_none=True)
    actor = fields.String(required=True, validate=validate.Length(max=200))


BULK = register(JobType("jobs.bulk", family="system", queue="maintenance", payload=BulkPayload, max_attempts=3))


class EchoFailure(RuntimeError):
    """Raised on request by a system.echo job, to exercise failure and alerting paths."""


def echo(message: str = "", sleep_seconds: float = 0, fail: bool = False) -> dict[str, Any]:
    """Return the message; sleep first when asked; raise when `fail` is true."""
    deadline = time.monotonic() + sleep_seconds
    while time.monotonic() < deadline:  # short sleeps: shutdown and time limits can interrupt
        time.sleep(min(0.1, deadline - time.monotonic()))
    if fail:
        raise EchoFailure(f"system.echo failed on request: {message!r}")
    return {"message": message}
