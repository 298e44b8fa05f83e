"""Verifying the webhooks Opsdeck sends (Standard Webhooks).

    webhook-id:        the event's id
    webhook-timestamp: unix seconds
    webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}." + body)> [v1,<…> …]

The key is the endpoint's secret without its `whsec_` prefix, base64-decoded. During a secret
rotation a delivery carries one signature per secret; any one that matches passes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

#: How far (seconds) a delivery's timestamp may be from the receiver's clock, either way.
TOLERANCE = 300
PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The delivery is not from Opsdeck as sent (wrong secret, changed, or too old/new)."""


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The `v1,<base64>` signature of one delivery with one secret."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str | list[str],
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: float = TOLERANCE,
    now: float | None = None,
) -> Any:
    """The delivery's decoded JSON payload once its signature and timestamp check out; raises
    WebhookVerificationError otherwise. `headers` may be any mapping (looked up without regard
    to case), `body` the raw bytes received, before any JSON parsing. Several `secret`s may be
    given while the receiver itself switches secrets."""
    found = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, header = (found.get(h, "") for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and header):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("malformed webhook-timestamp") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise WebhookVerificationError("timestamp outside the tolerance (a replay, or a clock far off)")
    raw = body.encode() if isinstance(body, str) else body
    offered = [part for part in header.split() if part.startswith("v1,")]  # other versions: not ours to check
    for one in [secret] if isinstance(secret, str) else secret:
        expected = sign(one, msg_id, stamp, raw)  # the timestamp as sent
        if any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in offered):
            return json.loads(raw) if raw else None
    raise WebhookVerificationError("no signature matches")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:  # a configuration mistake, not a forged delivery
        raise ValueError("the secret is not a whsec_… base64 key") from None
