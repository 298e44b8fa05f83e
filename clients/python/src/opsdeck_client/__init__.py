"""Opsdeck's Python client: signed requests, safe retries, typed calls, webhook verification.

    from opsdeck_client import OpsdeckClient

    opsdeck = OpsdeckClient.from_env()  # OPSDECK_URL, OPSDECK_KEY_ID, OPSDECK_SECRET
    job = opsdeck.jobs.submit("system.echo", {"message": "hi"})

See clients/python/README.md for errors, retries, webhooks and the `opsdeck` CLI.
"""

from __future__ import annotations

from opsdeck_client._version import __version__
from opsdeck_client.client import OpsdeckClient, Response
from opsdeck_client.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    OpsdeckError,
    RateLimitError,
    TransportError,
    ValidationError,
)
from opsdeck_client.pagination import Pager
from opsdeck_client.signing import signature, signed_headers
from opsdeck_client.webhooks import WebhookVerificationError

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "OpsdeckClient",
    "OpsdeckError",
    "Pager",
    "RateLimitError",
    "Response",
    "TransportError",
    "ValidationError",
    "WebhookVerificationError",
    "__version__",
    "signature",
    "signed_headers",
]
