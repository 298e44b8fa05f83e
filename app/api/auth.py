"""Request signing (HMAC-SHA256) for the JSON API.

    Opsdeck-Key: <key id>
    Opsdeck-Timestamp: <unix seconds>
    Opsdeck-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path with query}." + body)>

Up to four space-separated `v1=` values may be sent; any valid one passes. Every failure is the
same 401 to the client; the reason is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from datetime import timedelta

from flask import current_app, g, request

from app import metrics
from app.api.errors import ApiProblem
from app.client import signature as sign
from app.extensions import Prepared, core_execute, db
from app.models import SeenSignature
from app.models.base import utcnow
from app.services import tenants

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


def replay_refused() -> AuthFailed:
    """The error for a write whose signature turned out to be recorded already (logged and
    counted like every refusal); the caller raises it."""
    failure = AuthFailed("replayed signature")
    _refused(failure)
    return failure


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
    write = getattr(view, "idempotent", False)
    # A write asks whether its signature was used before with the key lookup (one statement).
    digests = [_digest(key_id, value) for value in candidates] if write and candidates else None
    found = tenants.active_key_secret(key_id, replay_digests=digests)
    if found is None:
        raise AuthFailed("unknown or revoked key")
    key, secret = found
    expected = sign(secret, timestamp, request.method, request_target(), request.get_data(cache=True)).encode()
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
    digest = _digest(key_id, valid)
    if write:
        # A write: its signature goes in with its work, in its one transaction (app/api/writes.py).
        # A replay already recorded is refused now, before the view does anything; one racing
        # its original is refused by the insert.
        if key.replayed:
            raise AuthFailed("replayed signature")
        g.signature_digest = digest
        return
    _reject_replay(digest)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        db.session.commit()  # reads commit nothing else


def record_signature() -> None:
    """For a write: record the request's signature in its transaction, or refuse a replay
    (AuthFailed)."""
    digest = g.get("signature_digest")
    if digest is None:
        return
    try:
        _reject_replay(digest)
    except AuthFailed as failure:
        _refused(failure)
        raise


def record_signature_alone() -> None:
    """For a write whose work was rolled back (an error, or a twin with its Idempotency-Key
    committed first): record its signature in a transaction of its own, so the request cannot
    be replayed. Best effort: when the database is what failed, nothing was done either."""
    digest = g.get("signature_digest")
    if digest is None:
        return
    try:
        core_execute(_RECORD_SIGNATURE, {"digest": digest, "seen_at": utcnow()})
        db.session.commit()
    except Exception as err:  # the request's own error is the one to report
        db.session.rollback()
        log.warning("signature of a failed write not recorded: %s", err)


def record_signatures(digests: list[str]) -> set[str]:
    """Record distinct signature digests in one statement, in the current transaction; returns
    those that were new (the others are replays)."""
    if not digests:
        return set()
    seen_at = utcnow()
    return {row.digest for row in core_execute(_RECORD_SIGNATURE, [{"digest": d, "seen_at": seen_at} for d in digests])}


def _reject_replay(digest: str) -> None:
    """Insert the signature's digest, or raise AuthFailed when it is there already (a second
    use of a signature fails here, or waits for the first request's transaction and then fails)."""
    if core_execute(_RECORD_SIGNATURE, {"digest": digest, "seen_at": utcnow()}).first() is None:
        raise AuthFailed("replayed signature")


def _digest(key_id: str, signature: str) -> str:
    """What is recorded of a used signature."""
    return hashlib.sha256(f"{key_id}:{signature}".encode()).hexdigest()


#: Returns each digest that was new, nothing for one seen before.
_RECORD_SIGNATURE = Prepared(
    lambda insert: insert(SeenSignature).on_conflict_do_nothing().returning(SeenSignature.digest)
)
