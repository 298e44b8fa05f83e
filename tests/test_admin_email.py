"""Admin pages of the email family: mails with filters and a sandboxed preview, the
suppression list (add, remove; audited), batch history; viewers read only."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import AuditEntry, Email, Suppression
from app.services.email import batches
from tests.helpers import post


@pytest.fixture
def app_config(sink):
    return {"SMTP_PORT": sink.port, "EMAIL_RATE_PER_MINUTE": 0, "EMAIL_DELAY": 0}


def queue(api, to="ana@example.com", **extra):
    body = {"to": to, "template": "notification", "context": {"title": "Hi", "message": "<i>shipped</i>"}, **extra}
    return api.post("/api/v1/emails", body).get_json()


def test_mail_pages_filters_preview_and_batches(app, api, admin, sink):
    first = queue(api)
    queue(api, "bo@example.com")
    db.session.rollback()
    batches.flush("test", budget=10)
    listing = admin.get("/admin/emails?to=ana@example.com")
    assert listing.status_code == 200 and first["id"][:8] in listing.text and "bo@example.com" not in listing.text
    assert "bo@example.com" in admin.get("/admin/emails?status=sent").text
    assert admin.get("/admin/emails?status=queued").text.count("data-email-id") == 0
    assert 'href="/admin/emails"' in admin.get("/admin/").text

    detail = admin.get(f"/admin/emails/{first['id']}")
    assert detail.status_code == 200 and first["message_id"].strip("<>") in detail.text
    assert "List-Unsubscribe" in detail.text and "<i>shipped</i>" in detail.text.replace("&lt;", "<").replace(
        "&gt;", ">"
    )
    preview = admin.get(f"/admin/emails/{first['id']}/preview")
    assert preview.status_code == 200 and "&lt;i&gt;shipped&lt;/i&gt;" in preview.text
    assert preview.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "default-src 'none'" in preview.headers["Content-Security-Policy"]

    batches_page = admin.get("/admin/emails/batches")
    assert batches_page.status_code == 200 and batches_page.text.count("<tr>") >= 2
    assert admin.get("/admin/emails/nope").status_code == 404


def test_suppression_list_add_and_remove_are_audited(app, api, admin, tenant):
    add = post(
        admin,
        "/admin/emails/suppressions",
        {"tenant": tenant.tenant_id, "address": "Spam@Example.com", "reason": "complaint"},
    )
    assert add.status_code == 302
    assert db.session.query(Suppression).one().address == "spam@example.com"
    assert queue(api, "spam@example.com")["status"] == "suppressed"
    assert "spam@example.com" in admin.get("/admin/emails/suppressions").text
    remove = post(
        admin,
        "/admin/emails/suppressions",
        {"tenant": tenant.tenant_id, "address": "spam@example.com", "action": "remove"},
    )
    assert remove.status_code == 302 and db.session.query(Suppression).count() == 0
    assert queue(api, "spam@example.com")["status"] == "queued"
    actions = [e.action for e in db.session.query(AuditEntry).filter(AuditEntry.target == "spam@example.com")]
    assert sorted(actions) == ["email.suppress", "email.unsuppress"]
    bad = post(admin, "/admin/emails/suppressions", {"tenant": "nope", "address": "x@example.com"})
    assert bad.status_code == 302 and db.session.query(Suppression).count() == 0


def test_viewers_read_email_pages_but_change_nothing(app, api, viewer, tenant):
    mail = queue(api)
    for url in ("/admin/emails", f"/admin/emails/{mail['id']}", "/admin/emails/suppressions", "/admin/emails/batches"):
        assert viewer.get(url).status_code == 200, url
    data = {"tenant": tenant.tenant_id, "address": "x@example.com"}
    assert post(viewer, "/admin/emails/suppressions", data).status_code == 403
    assert db.session.query(Suppression).count() == 0 and db.session.query(Email).count() == 1
