"""OpsdeckClient: the signed, retrying API client and its resources."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from opsdeck_client.transport import RetryPolicy, Transport


@dataclass(frozen=True)
class Response:
    """An answer: `status`, `headers` (case-insensitive) and the raw `content`."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def is_json(self) -> bool:
        kind = self.content_type
        return kind == "application/json" or kind.endswith("+json")

    @property
    def replayed(self) -> bool:
        """True when the server answered from an earlier sending of this write."""
        return self.headers.get("Idempotent-Replayed", "").lower() == "true"

    def json(self) -> Any:
        """The decoded JSON body (None for an empty body)."""
        return json.loads(self.content) if self.content else None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # amounts travel as decimal strings, never as floats
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(value: Any) -> bytes:
    """The bytes a JSON body is sent (and signed) as: compact UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_encode).encode()


def segment(value: str) -> str:
    """An id as one path segment (an id holding '/' or '?' cannot reach another route)."""
    return quote(str(value), safe="")


class OpsdeckClient:
    """A client for one Opsdeck API key.

        opsdeck = OpsdeckClient("https://opsdeck.example", key_id="key_…", secret="sk_…")
        job = opsdeck.jobs.submit("system.echo", {"message": "hi"})

    Parameters:
        timeout: seconds to connect and, separately, to wait for each read of the answer.
        retries: tries after the first for connection errors, timeouts, 429 and 5xx but 501 (0: none).
        backoff, max_backoff: the first wait between tries and the longest (doubling, jittered).
        max_retry_after: the longest Retry-After waited out; a longer one raises at once.
        session: a `requests.Session` to send with (proxies, TLS settings, connection pool).

    A client may be shared by threads only if its session is; give each thread its own
    client otherwise (requests' sessions are not documented as thread-safe).
    """

    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        session: requests.Session | None = None,
    ) -> None:
        from opsdeck_client.resources import emails, events, jobs, provisioning, scans

        self.transport = Transport(
            base_url,
            key_id,
            secret,
            timeout=timeout,
            policy=RetryPolicy(retries, backoff, max_backoff, max_retry_after),
            session=session or requests.Session(),
        )
        self.jobs = jobs.Jobs(self)
        self.emails = emails.Emails(self)
        self.events = events.Events(self)
        self.webhook_endpoints = events.WebhookEndpoints(self)
        self.webhook_deliveries = events.WebhookDeliveries(self)
        self.scans = scans.Scans(self)
        self.routers = provisioning.Routers(self)
        self.plans = provisioning.Plans(self)
        self.subscriptions = provisioning.Subscriptions(self)
        self.payments = provisioning.Payments(self)
        self.vouchers = provisioning.Vouchers(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> OpsdeckClient:
        """A client from OPSDECK_URL, OPSDECK_KEY_ID and OPSDECK_SECRET."""
        env = os.environ if environ is None else environ
        missing = [name for name in ("OPSDECK_URL", "OPSDECK_KEY_ID", "OPSDECK_SECRET") if not env.get(name)]
        if missing:
            raise KeyError(f"set {', '.join(missing)}")
        return cls(env["OPSDECK_URL"], env["OPSDECK_KEY_ID"], env["OPSDECK_SECRET"], **options)

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Send any API call, signed and retried; the answer, or an OpsdeckError for 4xx/5xx.

        `body` is sent as JSON, unless it is bytes (sent as they are, with `content_type`,
        default application/octet-stream). `query` values of None are left out. A write
        (POST, PATCH, DELETE) carries `idempotency_key`, or a fresh one, on every try."""
        data, kind = self._body(body, content_type)
        answer = self.transport.send(
            method, path, query=query, body=data, content_type=kind, idempotency_key=idempotency_key, headers=headers
        )
        return Response(answer.status_code, answer.headers, answer.content)

    @contextmanager
    def stream(self, method: str, path: str, *, query: Mapping[str, Any] | None = None) -> Iterator[requests.Response]:
        """A successful answer whose body is not read yet (`iter_content`), closed on exit."""
        answer = self.transport.send(method, path, query=query, stream=True)
        try:
            yield answer
        finally:
            answer.close()

    def close(self) -> None:
        self.transport.session.close()

    def __enter__(self) -> OpsdeckClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @staticmethod
    def _body(body: Any, content_type: str | None) -> tuple[bytes, str | None]:
        if body is None:
            return b"", content_type
        if isinstance(body, bytes | bytearray | memoryview):
            return bytes(body), content_type or "application/octet-stream"
        return encode_json(body), content_type or "application/json"
