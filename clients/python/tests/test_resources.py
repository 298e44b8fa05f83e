"""The typed calls the scenarios do not reach, each once against the live Opsdeck's routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from opsdeck_client import NotFoundError, OpsdeckClient

pytestmark = pytest.mark.integration


def unique(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}"


def test_emails_and_events(client: OpsdeckClient) -> None:
    to = unique("py") + "@example.com"
    mail = client.emails.send(to, subject="Hi", text="Body")
    (more,) = client.emails.send_many([{"to": to, "subject": "Again", "text": "Body"}])
    own = unique("evt")
    event = client.events.publish("py.resource", {"n": 1}, id=own)
    again = client.events.publish("py.resource", {"n": 1}, id=own)

    assert client.emails.get(mail["id"])["to"] == to
    assert {m["id"] for m in client.emails.list(to=to)} == {mail["id"], more["id"]}
    assert (again["id"], event["replayed"], again["replayed"]) == (event["id"], False, True)
    assert client.events.get(own)["id"] == event["id"]
    assert "deliveries" in client.events.get(event["id"])


def test_webhook_endpoints_and_deliveries(client: OpsdeckClient) -> None:
    event_type = unique("py.unreached")
    # Nothing listens on port 9 (discard): the delivery fails, and is there to read and retry.
    endpoint = client.webhook_endpoints.create("http://127.0.0.1:9/hook", event_types=[event_type])
    changed = client.webhook_endpoints.update(endpoint["id"], {"description": "changed"})
    client.events.publish(event_type, {"n": 1})
    (listed,) = list(client.webhook_endpoints.deliveries(endpoint["id"]))
    delivery = client.webhook_deliveries.get(listed["id"])
    retried = client.webhook_deliveries.retry(delivery["id"])
    requeued = client.webhook_endpoints.recover(endpoint["id"], datetime.now(UTC) - timedelta(hours=1))
    endpoints = [e["id"] for e in client.webhook_endpoints.list()]
    rotated = client.webhook_endpoints.rotate_secret(endpoint["id"])
    client.webhook_endpoints.delete(endpoint["id"])

    assert changed["description"] == "changed" and endpoint["id"] in endpoints
    assert "attempt_log" in delivery and retried["id"] == delivery["id"] and isinstance(requeued, int)
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    with pytest.raises(NotFoundError):
        client.webhook_endpoints.get(endpoint["id"])


def test_provisioning(client: OpsdeckClient) -> None:
    router = client.routers.create("py-test", "127.0.0.1", "admin", "secret", port=9)
    plan = client.plans.create("Day pass", "50", "1d")
    renamed = client.routers.update(router["id"], {"name": "py-test-2"})
    shared = client.plans.update(plan["id"], {"shared_users": 2})
    subscription = client.subscriptions.create(plan["id"], router["id"])
    extended = client.subscriptions.extend(subscription["id"], "1h")
    client.subscriptions.reprovision(subscription["id"])
    expired = client.subscriptions.expire(subscription["id"])
    vouchers = client.vouchers.create(plan["id"], router["id"], 2, prefix="py")
    payment = client.payments.create(unique("ws_CO"), plan["id"], router["id"], "0712 345 678")

    assert renamed["name"] == "py-test-2" and shared["shared_users"] == 2
    assert client.plans.get(plan["id"])["duration_seconds"] == 86400
    assert plan["id"] in [p["id"] for p in client.plans.list()]
    assert router["id"] in [r["id"] for r in client.routers.list()]
    moments = [datetime.fromisoformat(s["expires_at"]) for s in (subscription, extended, expired)]
    assert moments[1] > moments[0] and moments[2] < moments[1]  # extended by an hour, then ended
    assert client.subscriptions.get(subscription["id"])["id"] == subscription["id"]
    assert subscription["id"] in [s["id"] for s in client.subscriptions.list()]
    assert len(vouchers) == 2 and vouchers[0]["username"].startswith("py")
    assert payment["phone"] == "+254712345678"
    assert client.payments.get(payment["id"])["amount_expected"] == "50.00"
    assert payment["id"] in [p["id"] for p in client.payments.list(status="expected")]
    assert "/api/v1/payments/mpesa/callback/" in client.payments.callback_url()
    client.routers.delete(router["id"])
    with pytest.raises(NotFoundError):
        client.routers.get(router["id"])
