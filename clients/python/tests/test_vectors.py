"""Every vector of clients/test-vectors.json, the file all Opsdeck clients and the server share."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from opsdeck_client import signature, signed_headers
from opsdeck_client.multipart import file_body
from opsdeck_client.webhooks import WebhookVerificationError, sign, verify

#: Read at collection time: each vector is a test of its own.
_ALL = json.loads((Path(__file__).resolve().parents[2] / "test-vectors.json").read_text())


@pytest.mark.parametrize("case", _ALL["requests"], ids=lambda c: c["name"])
def test_request_signature(case: dict[str, Any]) -> None:
    body = base64.b64decode(case["body_base64"])
    expected = case["signature"]
    assert "v1=" + signature(case["secret"], str(case["timestamp"]), case["method"], case["path"], body) == expected
    headers = signed_headers(case["key_id"], case["secret"], case["method"], case["path"], body, case["timestamp"])
    assert headers == {
        "Opsdeck-Key": case["key_id"],
        "Opsdeck-Timestamp": str(case["timestamp"]),
        "Opsdeck-Signature": expected,
    }


def test_the_multipart_builder_writes_the_multipart_vector() -> None:
    """The upload body is built by the client itself, byte for byte what the vector signs."""
    (case,) = [c for c in _ALL["requests"] if c.get("content_type", "").startswith("multipart/")]
    sent = base64.b64decode(case["body_base64"])
    boundary = case["content_type"].split("boundary=")[1]
    content = sent.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
    body, content_type = file_body("file", "invoice.pdf", content, boundary=boundary)
    assert (body, content_type) == (sent, case["content_type"])


@pytest.mark.parametrize("case", _ALL["webhooks"], ids=lambda c: c["name"])
def test_webhook_vector(case: dict[str, Any]) -> None:
    body = base64.b64decode(case["body_base64"])
    if case["valid"]:
        payload = verify(case["secret"], case["headers"], body, tolerance=case["tolerance"], now=case["now"])
        assert payload == json.loads(body)
    else:
        with pytest.raises(WebhookVerificationError):
            verify(case["secret"], case["headers"], body, tolerance=case["tolerance"], now=case["now"])


def test_webhook_headers_are_looked_up_whatever_their_case() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    headers = {
        "Webhook-Id": "evt_1",
        "WEBHOOK-TIMESTAMP": "1000",
        "webhook-signature": sign(secret, "evt_1", 1000, b"{}"),
    }
    assert verify(secret, headers, b"{}", now=1000) == {}
    assert verify(["whsec_" + base64.b64encode(b"old").decode(), secret], headers, "{}", now=1000) == {}


def test_a_secret_that_is_not_base64_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        verify(
            "whsec_not base64!", {"webhook-id": "a", "webhook-timestamp": "1", "webhook-signature": "v1,x"}, b"", now=1
        )
