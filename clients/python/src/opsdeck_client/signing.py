"""Request signing: the three headers every Opsdeck API call carries.

    Opsdeck-Key:       <key id>
    Opsdeck-Timestamp: <unix seconds>
    Opsdeck-Signature: v1=<lowercase hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path with query}." + body)>

The body is the exact bytes sent and the path the request target as sent, query included.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(secret: str, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path with query}." + body).

    `path_with_query` is the request target exactly as sent (percent-encoding kept) and `body`
    the exact bytes sent: sign last, never re-serialise after signing."""
    message = f"{timestamp}.{method.upper()}.{path_with_query}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    key_id: str, secret: str, method: str, path_with_query: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The Opsdeck-Key, Opsdeck-Timestamp and Opsdeck-Signature headers for one sending."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Opsdeck-Key": key_id,
        "Opsdeck-Timestamp": stamp,
        "Opsdeck-Signature": "v1=" + signature(secret, stamp, method, path_with_query, body),
    }
