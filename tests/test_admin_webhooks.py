"""Admin pages of the webhooks family: endpoints, deliveries with attempts, events; enable,
disable, rotate (secret shown once), recover and resend, all audited; viewers read only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import AuditEntry, WebhookDelivery, WebhookEndpoint
from app.models.base import utcnow
from tests.fakes.http_receiver import Reply
from tests.helpers import LOOPBACK, fresh, make_endpoint, post, post_event, run_attempt


@pytest.fixture
def app_config():
    return dict(LOOPBACK)


def test_pages_show_endpoints_deliveries_attempts_and_events(app, api, admin, receiver):
    receiver.script("/hook", Reply(500, body=b"upstream <down>"))
    endpoint = make_endpoint(api, receiver.url(), description="billing hooks")
    event = post_event(api, payload={"amount": 7}).get_json()
    row_id = db.session.query(WebhookDelivery).one().id
    run_attempt(row_id)

    listing = admin.get("/admin/webhooks")
    assert listing.status_code == 200 and receiver.url() in listing.text and "billing hooks" in listing.text
    assert 'href="/admin/webhooks"' in admin.get("/admin/").text  # in the navigation
    detail = admin.get(f"/admin/webhooks/endpoints/{endpoint['id']}")
    assert detail.status_code == 200 and row_id[:8] in detail.text and "1 retrying" in detail.text
    assert admin.get(f"/admin/webhooks/endpoints/{endpoint['id']}?status=succeeded").text.count("data-delivery-id") == 0
    page = admin.get(f"/admin/webhooks/deliveries/{row_id}")
    assert page.status_code == 200 and "upstream &lt;down&gt;" in page.text and "HTTP 500" in page.text
    events_page = admin.get("/admin/webhooks/events?type=invoice.paid")
    assert event["id"][:8] in events_page.text
    assert event["id"][:8] not in admin.get("/admin/webhooks/events?type=other").text
    body_shown = admin.get(f"/admin/webhooks/events/{event['id']}").text.replace("&#34;", '"')
    assert '"data":{"amount":7}' in body_shown
    assert admin.get("/admin/webhooks/endpoints/nope").status_code == 404


def test_admin_disables_enables_rotates_recovers_and_resends(app, api, admin, receiver):
    receiver.script("/hook", Reply(500), Reply(500), Reply(500))
    endpoint = make_endpoint(api, receiver.url())
    post_event(api)
    row_id = db.session.query(WebhookDelivery).one().id
    for _ in range(3):
        run_attempt(row_id)
    assert fresh(WebhookDelivery, row_id).status == "dead"
    base = f"/admin/webhooks/endpoints/{endpoint['id']}"

    assert post(admin, f"{base}/disable").status_code == 302
    assert fresh(WebhookEndpoint, endpoint["id"]).enabled is False
    post(admin, f"{base}/recover", {"since": (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")})
    assert fresh(WebhookDelivery, row_id).status == "dead"  # refused while disabled
    assert post(admin, f"{base}/enable").status_code == 302
    assert fresh(WebhookEndpoint, endpoint["id"]).enabled is True

    rotated = post(admin, f"{base}/rotate")
    secret = re.search(r'id="webhook-secret">([^<]+)<', rotated.text).group(1)
    assert secret.startswith("whsec_") and rotated.headers["Cache-Control"] == "no-store"
    assert secret not in admin.get(base).text

    post(admin, f"{base}/recover", {"since": "not a date"})
    assert fresh(WebhookDelivery, row_id).status == "dead"
    post(admin, f"{base}/recover", {"since": (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")})
    assert fresh(WebhookDelivery, row_id).status == "pending"
    run_attempt(row_id)
    assert fresh(WebhookDelivery, row_id).status == "succeeded"
    assert post(admin, f"/admin/webhooks/deliveries/{row_id}/resend").status_code == 302
    assert fresh(WebhookDelivery, row_id).status == "pending"

    actions = {e.action for e in db.session.query(AuditEntry).filter(AuditEntry.actor == "user:admin@example.com")}
    assert {
        "webhook_endpoint.disable",
        "webhook_endpoint.enable",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint.recover",
        "webhook_delivery.resend",
    } <= actions


def test_viewers_see_webhook_pages_but_change_nothing(app, api, viewer, receiver):
    endpoint = make_endpoint(api, receiver.url())
    post_event(api)
    row_id = db.session.query(WebhookDelivery).one().id
    base = f"/admin/webhooks/endpoints/{endpoint['id']}"
    for url in ("/admin/webhooks", base, f"/admin/webhooks/deliveries/{row_id}", "/admin/webhooks/events"):
        assert viewer.get(url).status_code == 200, url
    assert "Rotate secret" not in viewer.get(base).text
    for url in (f"{base}/disable", f"{base}/rotate", f"{base}/recover", f"/admin/webhooks/deliveries/{row_id}/resend"):
        assert post(viewer, url).status_code == 403, url
    assert fresh(WebhookEndpoint, endpoint["id"]).enabled is True
