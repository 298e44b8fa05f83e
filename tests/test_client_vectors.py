"""clients/test-vectors.json, which every client's tests read, holds what the server computes:
each request signature is the one the API verifies, each webhook signature the one deliveries
carry (app/services/webhooks/delivery.sign), and each webhook case is valid exactly when a
Standard Webhooks verifier would pass it."""

from __future__ import annotations

import base64
import json

import pytest

from app.api.auth import signature
from app.services.webhooks.delivery import sign
from tests.fakes.processes import ROOT

VECTORS = json.loads((ROOT / "clients" / "test-vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["requests"], ids=lambda v: v["name"])
def test_request_vector_is_the_servers_signature(vector):
    body = base64.b64decode(vector["body_base64"])
    expected = signature(vector["secret"], str(vector["timestamp"]), vector["method"], vector["path"], body)
    assert vector["signature"] == f"v1={expected}"


def test_request_vectors_cover_what_the_issue_names():
    requests = VECTORS["requests"]
    assert any("?" in v["path"] for v in requests)
    assert any(v["body_base64"] == "" and v["method"] != "GET" for v in requests)
    assert any(v.get("content_type", "").startswith("multipart/form-data") for v in requests)
    assert any(not base64.b64decode(v["body_base64"]).isascii() for v in requests)


def _passes(vector) -> bool:
    """A Standard Webhooks check written from the spec, against the server's own signer."""
    headers, body = vector["headers"], base64.b64decode(vector["body_base64"])
    stamp = int(headers["webhook-timestamp"])
    if abs(vector["now"] - stamp) > vector["tolerance"]:
        return False
    expected = sign(headers["webhook-id"], stamp, body, [vector["secret"]])
    return expected in headers["webhook-signature"].split(" ")


@pytest.mark.parametrize("vector", VECTORS["webhooks"], ids=lambda v: v["name"])
def test_webhook_vector_matches_the_servers_signer(vector):
    assert _passes(vector) is vector["valid"]


def test_rotation_vector_is_what_a_delivery_during_a_grace_carries():
    new, old = (v for v in VECTORS["webhooks"] if "rotation" in v["name"] and v["valid"])
    headers, body = new["headers"], base64.b64decode(new["body_base64"])
    both = sign(headers["webhook-id"], int(headers["webhook-timestamp"]), body, [new["secret"], old["secret"]])
    assert headers["webhook-signature"] == both and len(both.split(" ")) == 2
