"""Schemathesis hooks for tests/test_api_fuzz.py (loaded by `st run` through tests/schemathesis.toml):
every request signed as it goes on the wire, valid list cursors to page with, and one check of
our own: an upload sent again is answered as the first time, in the same media type."""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import requests
import schemathesis
from hypothesis import strategies as st
from opsdeck_client import signature

from app.services import pagination


class Signer(requests.auth.AuthBase):
    """Signs the request exactly as it is sent (path with query, body bytes).

    Two more things a real client does and generated data does not:
    - an identical request in the same second is refused as a replay: the timestamp steps back a
      second instead (as tests/conftest.py's SignedClient does);
    - an Idempotency-Key is one operation's: schemathesis draws the same few keys ("0", "a") for
      unrelated requests, which the API rightly refuses (422, key reused), so a valid key gets a
      suffix unique to the request (its length stays within 1–255; an invalid one is sent as drawn).
    """

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret
        self._used: set[tuple[str, str, str, int]] = set()
        self._lock = threading.Lock()
        self._run, self._count = secrets.token_hex(4), itertools.count()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        key = request.headers.get("Idempotency-Key")
        if isinstance(key, str) and 1 <= len(key) <= 255:
            request.headers["Idempotency-Key"] = f"{key}~{self._run}.{next(self._count)}"[-255:]
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        method, target = request.method or "GET", request.path_url
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            timestamp = int(time.time())
            while (method, target, digest, timestamp) in self._used:
                timestamp -= 1
            self._used.add((method, target, digest, timestamp))
        request.headers["Opsdeck-Key"] = self.key_id
        request.headers["Opsdeck-Timestamp"] = str(timestamp)
        request.headers["Opsdeck-Signature"] = "v1=" + signature(self.secret, str(timestamp), method, target, body)
        return request


def _cursor(when: datetime, row_id: str) -> str:
    return pagination.encode_cursor(SimpleNamespace(created_at=when, id=row_id))


#: Sends an upload again, outside schemathesis (whose checks see one answer per request).
_resender = requests.Session()


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip()


@schemathesis.check
def upload_sent_again_is_answered_alike(ctx: Any, response: Any, case: Any) -> None:
    """A multipart upload sent again exactly as it went (a client's automatic retry: the same
    signature, and the same Idempotency-Key when it has one) is answered from the first one's
    record: the same status in the same media type, a refusal as application/problem+json both
    times. The document's own checks see the first answer only; this holds the replayed one to
    it. Uploads only, so that the run stays short: every write sent twice would nearly double
    its requests."""
    sent = response.request
    if not (sent.headers.get("Content-Type") or "").startswith("multipart/form-data"):
        return
    if response.status_code >= 500 or response.status_code in (401, 429):  # no answer is kept for these
        return
    again = _resender.send(sent.copy(), timeout=30)
    first = _media_type((response.headers.get("content-type") or [""])[0])
    second = _media_type(again.headers.get("Content-Type", ""))
    if (again.status_code, second) != (response.status_code, first):
        raise AssertionError(f"sent again, answered {again.status_code} {second}; first {response.status_code} {first}")


# A cursor is opaque: the `next_cursor` of a page, as app/services/pagination.py writes it.
schemathesis.openapi.format("cursor", st.builds(_cursor, st.datetimes(timezones=st.just(UTC)), st.text(max_size=36)))
schemathesis.auth.set_from_requests(Signer(os.environ["OPSDECK_KEY_ID"], os.environ["OPSDECK_SECRET"]))
