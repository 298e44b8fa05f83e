"""Sending one API call: sign, send, and retry what is safe to retry.

Every try is signed afresh (a timestamp must stay within the server's window) and carries the
same Idempotency-Key, so a write retried after a timeout or a 5xx is answered from the first
sending's outcome instead of being done twice. Reads need no key: the server checks a read's
timestamp alone.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

from opsdeck_client._version import __version__
from opsdeck_client.errors import TransportError, from_answer, parse_retry_after
from opsdeck_client.signing import signed_headers

log = logging.getLogger("opsdeck_client")

#: Methods that change nothing: sent without an Idempotency-Key.
READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Failures after which nothing (or an unknown part) reached the server: safe to send again.
RETRYABLE_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending again.

    `retries` is the number of tries after the first (0: none). Between tries the wait grows
    as `backoff * 2**n` up to `max_backoff`, half of it random so that many clients failing
    together do not come back together. A 429's (or 503's) Retry-After is waited out instead,
    as long as it is at most `max_retry_after` seconds; a longer one is raised at once."""

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int) -> float:
        """The wait before try `attempt + 1`: between half and all of the exponential step."""
        step = min(self.max_backoff, self.backoff * 2.0**attempt)
        return step / 2 + random.uniform(0, step / 2)


def retryable(status: int) -> bool:
    """429 and 5xx, except 501 Not Implemented: a permanent answer, the same at every try."""
    return status == 429 or (status >= 500 and status != 501)


@dataclass
class Transport:
    base_url: str
    key_id: str
    secret: str
    timeout: float = 10.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    def send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """The answer to `method path?query` with `body`, after the retries; raises the
        OpsdeckError for an error answer (its body read), TransportError for no answer.
        With `stream`, the body of a successful answer is left to the caller to read."""
        method = method.upper()
        if method not in READS and idempotency_key is None:
            idempotency_key = str(uuid.uuid4())
        url = self.base_url + path
        pairs = {k: v for k, v in (query or {}).items() if v is not None}
        if pairs:
            url += ("&" if "?" in path else "?") + urlencode(pairs)
        extra = {
            "User-Agent": f"opsdeck-client-python/{__version__}",
            "Accept": "application/json, application/problem+json, */*",
            **(headers or {}),
        }
        if content_type:
            extra["Content-Type"] = content_type
        if idempotency_key:
            extra["Idempotency-Key"] = idempotency_key
        attempt = 0
        while True:
            # Prepared first, signed second: requests may re-quote the URL, and the signature
            # must cover the target exactly as it goes on the wire.
            prepared = self.session.prepare_request(requests.Request(method, url, data=body or None, headers=extra))
            prepared.headers.update(signed_headers(self.key_id, self.secret, method, prepared.path_url, body))
            try:
                answer = self.session.send(prepared, timeout=self.timeout, stream=stream, allow_redirects=False)
            except RETRYABLE_ERRORS as err:
                if attempt >= self.policy.retries:
                    raise TransportError(f"{method} {path}: {err}") from err
                wait = self.policy.delay(attempt)
                log.info("retrying %s %s in %.2fs after %s", method, path, wait, type(err).__name__)
            except requests.RequestException as err:  # an invalid URL or the like: no retry helps
                raise TransportError(f"{method} {path}: {err}") from err
            else:
                if answer.status_code < 400:
                    return answer
                if not retryable(answer.status_code) or attempt >= self.policy.retries:
                    raise _error(answer)
                told = parse_retry_after(answer.headers.get("Retry-After"))
                if told is not None and told > self.policy.max_retry_after:
                    raise _error(answer)
                wait = self.policy.delay(attempt) if told is None else told
                answer.close()
                log.info("retrying %s %s in %.2fs after %s", method, path, wait, answer.status_code)
            time.sleep(wait)
            attempt += 1


def _error(answer: requests.Response) -> Exception:
    content = answer.content  # an error body is small; a streamed one is read here
    return from_answer(answer.status_code, answer.reason or "", answer.headers, content)
