"""A small Opsdeck API client: signs requests, sends Idempotency-Keys, retries safely.

Standalone (needs only `requests`): copy this file into a platform's code base.

    client = OpsdeckClient("https://opsdeck.example", key_id="key_…", secret="sk_…")
    job = client.post("/api/v1/jobs", {"type": "system.echo", "payload": {"message": "hi"}})
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests

RETRYABLE_STATUS = {500, 502, 503, 504}


def signature(secret: str, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    """hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path with query}." + body)"""
    message = f"{timestamp}.{method.upper()}.{path_with_query}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    key_id: str, secret: str, method: str, path_with_query: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Opsdeck-Key": key_id,
        "Opsdeck-Timestamp": stamp,
        "Opsdeck-Signature": "v1=" + signature(secret, stamp, method, path_with_query, body),
    }


class OpsdeckError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]):
        super().__init__(f"{status} {problem.get('title')}: {problem.get('detail', '')}")
        self.status, self.problem = status, problem


class OpsdeckClient:
    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret: str,
        *,
        timeout: float = 10,
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_id, self.secret = key_id, secret
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session = session or requests.Session()

    def request(
        self, method: str, path: str, body: Any = None, *, idempotency_key: str | None = None
    ) -> requests.Response:
        """Send a signed request. Writes (POST, PATCH, DELETE) get an Idempotency-Key (generated
        unless given), so a retry after a 5xx, a connection error or a timeout replays the first
        answer instead of doing the work twice. Each try is signed afresh (the timestamp must stay
        within the server's window)."""
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        if method.upper() not in ("GET", "HEAD") and idempotency_key is None:
            idempotency_key = str(uuid.uuid4())
        target = urlsplit(self.base_url + path)
        path_with_query = target.path + (f"?{target.query}" if target.query else "")
        for attempt in range(self.retries + 1):
            headers = signed_headers(self.key_id, self.secret, method, path_with_query, data)
            if data:
                headers["Content-Type"] = "application/json"
            if idempotency_key:
                headers["Idempotency-Key"] = idempotency_key
            try:
                response = self.session.request(
                    method, self.base_url + path, data=data, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout):  # safe: the same Idempotency-Key
                if attempt == self.retries:
                    raise
            else:
                if response.status_code not in RETRYABLE_STATUS or attempt == self.retries:
                    return response
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """Like request(), returning the decoded JSON or raising OpsdeckError."""
        response = self.request(method, path, body, **kwargs)
        payload = response.json() if response.content else None
        if response.status_code >= 400:
            raise OpsdeckError(response.status_code, payload or {})
        return payload

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, body, **kwargs)

    def submit_many(
        self, jobs: list[dict[str, Any]], *, batch_size: int = 1000, batch_bytes: int = 4 << 20
    ) -> list[dict[str, Any]]:
        """Submit jobs through POST /api/v1/jobs/batch, at most `batch_size` jobs and about
        `batch_bytes` of JSON a call (the server's API_BATCH_MAX_ITEMS and API_BATCH_MAX_BYTES
        at most); the answers in order, each with `replayed`. Give each job an
        `idempotency_key` to make the whole list safe to submit again after a failure."""
        return self._in_batches("/api/v1/jobs/batch", "jobs", jobs, batch_size, batch_bytes)

    def publish_many(
        self, events: list[dict[str, Any]], *, batch_size: int = 1000, batch_bytes: int = 4 << 20
    ) -> list[dict[str, Any]]:
        """Publish events through POST /api/v1/events/batch, split as `submit_many` splits;
        the answers in order. An event's own `id` makes it safe to publish again."""
        return self._in_batches("/api/v1/events/batch", "events", events, batch_size, batch_bytes)

    def _in_batches(
        self, path: str, field: str, items: list[dict[str, Any]], size: int, max_bytes: int
    ) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        used = 0
        for item in items:
            length = len(json.dumps(item, separators=(",", ":")).encode()) + 1
            if batch and (len(batch) == size or used + length > max_bytes):
                answers += self.post(path, {field: batch})["data"]
                batch, used = [], 0
            batch.append(item)
            used += length
        if batch:
            answers += self.post(path, {field: batch})["data"]
        return answers


def main(argv: list[str] | None = None) -> int:
    """`python -m app.client METHOD PATH [JSON]` with OPSDECK_URL, OPSDECK_KEY, OPSDECK_SECRET."""
    import os
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(main.__doc__, file=sys.stderr)
        return 2
    client = OpsdeckClient(os.environ["OPSDECK_URL"], os.environ["OPSDECK_KEY"], os.environ["OPSDECK_SECRET"])
    response = client.request(args[0].upper(), args[1], json.loads(args[2]) if len(args) == 3 else None)
    print(response.status_code, json.dumps(response.json() if response.content else None, indent=2))
    return 0 if response.status_code < 400 else 1


if __name__ == "__main__":
    raise SystemExit(main())
