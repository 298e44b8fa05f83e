"""Request signing (HMAC-SHA256) for the JSON API.

    Opsdeck-Key: <key id>
    Opsdeck-Timestamp: <unix seconds>
    Opsdeck-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path with query}." + body)>

Up to four space-separated `v1=` values may be sent; any valid one passes. Every failure is the
same 401 to the client; the reason is logged. The timestamp window is the only guard of a read;
a write sent again with the same signature is answered as the first time (app/api/writes.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from datetime import timedelta

from flask import current_app, g, request

from app.api.errors import ApiProblem
from app.models.base import utcnow
from app.services import tenants
from app.services.idempotency import SIGNATURE_KEY_PREFIX
from app.telemetry import metrics

log = logging.getLogger("opsdeck.api.auth")

KEY_HEADER = "Opsdeck-Key"
TIMESTAMP_HEADER = "Opsdeck-Timestamp"
SIGNATURE_HEADER = "Opsdeck-Signature"
#: A signature value: lowercase hex HMAC-SHA256.
SIGNATURE_VALUE = re.compile(r"[0-9a-f]{64}")
#: The most `v1=` values one request may carry (a client rotating its secret sends two).
MAX_SIGNATURE_VALUES = 4
#: API keys' last_used_at is kept to this resolution.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class AuthFailed(ApiProblem):
    def __init__(self, reason: str) -> None:
        super().__init__(401, "Unauthorized", "Request authentication failed.", type="unauthorized")
        self.reason = reason


def signature(secret: str, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path with query}." + body)."""
    message = f"{timestamp}.{method.upper()}.{path_with_query}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request_target() -> str:
    """The path and query exactly as the client sent them (percent-encoding kept)."""
    env = request.environ
    raw = env.get("RAW_URI") or env.get("REQUEST_URI") or (request.script_root + request.path)
    path = raw.split("?", 1)[0]
    query = env.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def authenticate() -> None:
    """Verify the signature headers; sets g.tenant_id and g.api_key_id. Raises AuthFailed."""
    try:
        _authenticate()
    except AuthFailed as failure:
        _refused(failure)
        raise


def _refused(failure: AuthFailed) -> None:
    log.warning("api auth failed: %s", failure.reason, extra={"reason": failure.reason})
    metrics.api_auth_failed(failure.reason)


def _authenticate() -> None:
    key_id = request.headers.get(KEY_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    header = request.headers.get(SIGNATURE_HEADER, "")
    if not key_id or not timestamp or not header:
        raise AuthFailed("missing headers")
    if not timestamp.isdigit():
        raise AuthFailed("malformed timestamp")
    tolerance = current_app.config["API_SIGNATURE_TOLERANCE"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise AuthFailed("timestamp outside tolerance")
    # The distinct well-formed v1= values (any other cannot match), a few at most: each is
    # looked up before the signature is verified.
    values = (value.lower() for scheme, _, value in (c.partition("=") for c in header.split()) if scheme == "v1")
    candidates = list(dict.fromkeys(v for v in values if SIGNATURE_VALUE.fullmatch(v)))
    if len(candidates) > MAX_SIGNATURE_VALUES:
        raise AuthFailed("too many signature values")
    view = current_app.view_functions.get(request.endpoint or "")
    # A write without an Idempotency-Key is keyed by its signature (app/api/writes.py): it asks
    # whether a record holds that key with the key lookup (one statement).
    implicit = getattr(view, "idempotent", False) and "Idempotency-Key" not in request.headers
    keys = [SIGNATURE_KEY_PREFIX + _digest(key_id, value) for value in candidates] if implicit else None
    found = tenants.active_key_secret(key_id, replay_keys=keys or None)
    if found is None:
        raise AuthFailed("unknown or revoked key")
    key, secret = found
    expected = signature(secret, timestamp, request.method, request_target(), request.get_data(cache=True)).encode()
    valid = None
    for value in candidates:
        if hmac.compare_digest(value.encode(), expected):
            valid = value
    if valid is None:
        raise AuthFailed("bad signature")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        tenants.mark_key_used(key.id, now)  # at most one write a minute
    g.tenant_id = key.tenant_id
    g.api_key_id = key.id
    if implicit:
        g.signature_digest = _digest(key_id, valid)
        g.signature_seen = key.replayed


def signature_window() -> timedelta:
    """How long a signature is accepted from its first use: a timestamp passes from `tolerance`
    before it to `tolerance` after."""
    return timedelta(seconds=2 * current_app.config["API_SIGNATURE_TOLERANCE"])


def _digest(key_id: str, value: str) -> str:
    """What is recorded of a used signature."""
    return hashlib.sha256(f"{key_id}:{value}".encode()).hexdigest()
