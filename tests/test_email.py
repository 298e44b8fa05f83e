"""Email through the API and the batch service, in this process, against a real SMTP server
(aiosmtpd): batches over one session each, digests, 4xx retry, 5xx suppression, connection
errors, templates that escape, the relay pace, and one-click unsubscribe."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Email, EmailBatch, Job, Suppression
from app.models.base import utcnow
from app.services import ratelimit
from app.services.email import batches, outcomes, render
from tests.helpers import fresh


@pytest.fixture
def app_config(sink):
    return {
        "SMTP_PORT": sink.port,
        "EMAIL_RATE_PER_MINUTE": 0,
        "EMAIL_DELAY": 0,
        "EMAIL_DIGEST_WINDOW": 60,
        "EMAIL_RETRY_SCHEDULE": [1, 2],
        "OPSDECK_PUBLIC_URL": "https://ops.example.com",
    }


def mail(to="ana@example.com", **extra):
    return {
        "to": to,
        "template": "notification",
        "context": {"title": "Hello", "message": "Your order shipped."},
        **extra,
    }


def make_due() -> None:
    db.session.query(Email).filter(Email.status.in_(("queued", "retrying"))).update(
        {"next_attempt_at": utcnow() - timedelta(seconds=1)}
    )
    db.session.commit()


def flush() -> list[outcomes.BatchResult]:
    db.session.rollback()
    return batches.flush("test-worker", budget=30)


def test_one_mail_or_a_list_is_queued_with_its_message_id(app, api):
    one = api.post("/api/v1/emails", mail())
    assert one.status_code == 202, one.get_json()
    body = one.get_json()
    assert body["status"] == "queued" and re.fullmatch(r"<[0-9a-f-]{36}@localhost>", body["message_id"])
    assert one.headers["Location"] == f"/api/v1/emails/{body['id']}"
    many = api.post("/api/v1/emails", [mail(f"u{i}@example.com") for i in range(3)])
    assert many.status_code == 202 and len(many.get_json()["data"]) == 3
    shown = api.get(f"/api/v1/emails/{body['id']}").get_json()
    assert shown["to"] == "ana@example.com" and shown["attempts"] == 0
    listed = api.get("/api/v1/emails?to=u1@example.com").get_json()["data"]
    assert [m["to"] for m in listed] == ["u1@example.com"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "not an address", "template": "notification"}, "to"),
        ({"to": "a@example.com", "template": "no_such_template"}, "template"),
        ({"to": "a@example.com", "subject": "only a subject"}, "template"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "headers": {"Bcc": "x@example.com"}}, "headers"),
        (
            {"to": "a@example.com", "subject": "s", "text": "t", "headers": {"X-Tag": "a\r\nBcc: x@example.com"}},
            "headers",
        ),
    ],
)
def test_bad_mails_are_422_with_field_errors_and_nothing_is_queued(app, api, body, field):
    response = api.post("/api/v1/emails", body)
    assert response.status_code == 422 and field in response.get_json()["errors"], response.get_json()
    assert db.session.query(Email).count() == 0


def test_an_unknown_template_is_refused_naming_the_templates_that_exist(app, api):
    response = api.post("/api/v1/emails", {"to": "a@example.com", "template": "kyc_approved"})
    (message,) = response.get_json()["errors"]["template"]
    assert response.status_code == 422 and "'kyc_approved'" in message
    assert "the templates are: notification." in message and "templates/email/" not in message


def test_the_internal_digest_template_is_refused_like_an_unknown_one(app, api):
    """`digest` is the batcher's, filled with its own context: a mail naming it would fail when sent."""
    response = api.post("/api/v1/emails", {"to": "a@example.com", "template": "digest", "context": {"message": "x"}})
    (message,) = response.get_json()["errors"]["template"]
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert message == "Unknown template 'digest'; the templates are: notification."
    batch = api.post("/api/v1/emails", [mail("a@example.com"), {"to": "b@example.com", "template": "digest"}])
    assert batch.status_code == 422 and list(batch.get_json()["errors"]) == ["1"]
    assert db.session.query(Email).count() == 0


def test_a_list_over_the_limit_is_refused(app, api):
    response = api.post("/api/v1/emails", [mail(f"u{i}@example.com") for i in range(1001)])
    assert response.status_code == 422 and db.session.query(Email).count() == 0


def test_mails_are_tenant_scoped(app, api, other_api):
    mine = api.post("/api/v1/emails", mail()).get_json()
    assert other_api.get(f"/api/v1/emails/{mine['id']}").status_code == 404
    assert other_api.get("/api/v1/emails").get_json()["data"] == []


@pytest.mark.parametrize("app_config", [{"EMAIL_BATCH_SIZE": 100, "EMAIL_RATE_PER_MINUTE": 0, "EMAIL_DELAY": 0}])
def test_250_mails_go_out_in_3_batches_over_3_smtp_sessions(app, api, sink, app_config):
    app.config["SMTP_PORT"] = sink.port
    for start in (0, 125):
        assert (
            api.post("/api/v1/emails", [mail(f"u{i}@example.com") for i in range(start, start + 125)]).status_code
            == 202
        )
    results = flush()
    assert [r.size for r in results] == [100, 100, 50] and sum(r.sent for r in results) == 250
    assert sink.sessions == 3 and len(sink.received) == 250
    assert len(set(sink.message_ids())) == 250
    assert db.session.query(Email).filter_by(status="sent").count() == 250
    batch_rows = db.session.query(EmailBatch).order_by(EmailBatch.created_at).all()
    assert [b.sent for b in batch_rows] == [100, 100, 50] and all(b.duration_ms is not None for b in batch_rows)


def test_five_mails_with_one_digest_key_arrive_as_one_digest(app, api, sink):
    subjects = [f"New bid #{i}" for i in range(5)]
    for subject in subjects:
        api.post(
            "/api/v1/emails",
            {"to": "ana@example.com", "subject": subject, "text": f"{subject} details", "digest_key": "bids"},
        )
    api.post(
        "/api/v1/emails",
        {
            "to": "ana@example.com",
            "subject": "Password reset",
            "text": "code 1234",
            "digest_key": "bids",
            "critical": True,
        },
    )
    rows = db.session.query(Email).filter_by(digest_key="bids").all()
    assert len({r.next_attempt_at for r in rows}) == 1  # one window for all five
    assert [r.sent for r in flush()] == [1]  # the window is open: only the critical mail is due
    assert [r.message["Subject"] for r in sink.received] == ["Password reset"]
    make_due()
    flush()
    assert len(sink.received) == 2
    digest = sink.received[1].message
    assert digest["Subject"] == "New bid #0 and 4 more"
    text = digest.get_body(("plain",)).get_content()
    assert all(subject in text for subject in subjects)
    digested = db.session.query(Email).filter_by(status="digested").all()
    assert len(digested) == 5 and len({r.digest_id for r in digested}) == 1


def test_templates_escape_context_in_html(app, api, sink):
    api.post("/api/v1/emails", mail(context={"title": "<b>Hi</b>", "message": "<script>alert(1)</script>"}))
    flush()
    message = sink.received[0].message
    html = message.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "<script>alert(1)</script>" in message.get_body(("plain",)).get_content()  # text is not HTML
    assert message["Subject"] == "<b>Hi</b>"


def test_subject_is_one_line(app):
    shown = render.render(None, None, subject="Hi\r\nBcc: x@example.com", text="t")
    assert shown.subject == "Hi Bcc: x@example.com"


@pytest.mark.parametrize(
    "subject",
    ["word " * 199 + "end", "x" * 998, "Habari " * 120],
    ids=["long-with-spaces", "998-without-spaces", "long-not-ascii"],
)
def test_long_headers_are_folded_and_arrive_whole(app, api, sink, subject):
    """Subjects and X- headers may be 998 characters (the API's limit): on the wire every line
    stays within RFC 5322's 998, and the receiving side reads the same values back."""
    subject = subject.replace("Habari", "Habari\u0169")
    tag = "tag-" + "t" * 990
    body = mail(
        template=None,
        context=None,
        subject=subject,
        text="Hello",
        headers={"X-Campaign": tag, "Reply-To": "support@example.com"},
    )
    answer = api.post("/api/v1/emails", body)
    assert answer.status_code == 202, answer.get_json()
    flush()
    received = sink.received[0]
    assert max(len(line) for line in received.data.split(b"\r\n")) <= 998
    assert received.message["Subject"] == subject.strip() and received.message["X-Campaign"] == tag


def test_a_4xx_is_retried_then_sent_with_the_same_message_id(app, api, sink):
    sink.script("busy@example.com", "450 4.2.0 Mailbox busy")
    email_id = api.post("/api/v1/emails", mail("busy@example.com")).get_json()["id"]
    flush()
    row = fresh(Email, email_id)
    assert row.status == "retrying" and "450" in row.last_error and row.attempts == 1
    assert row.next_attempt_at > utcnow()
    make_due()
    flush()
    row = fresh(Email, email_id)
    assert row.status == "sent" and row.attempts == 2 and sink.message_ids() == [row.message_id]


def test_a_5xx_fails_and_suppresses_the_address(app, api, sink):
    sink.script("gone@example.com", "550 5.1.1 No such user")
    email_id = api.post("/api/v1/emails", mail("gone@example.com")).get_json()["id"]
    other = api.post("/api/v1/emails", mail("ok@example.com")).get_json()["id"]
    results = flush()
    assert fresh(Email, email_id).status == "failed" and fresh(Email, other).status == "sent"
    assert results[0].failures[0]["id"] == email_id
    assert db.session.query(Suppression).filter_by(address="gone@example.com").count() == 1
    later = api.post("/api/v1/emails", mail("GONE@example.com")).get_json()
    assert later["status"] == "suppressed"
    flush()
    assert len(sink.received) == 1


def test_retries_end_in_failed(app, api, sink):
    sink.script("busy@example.com", *["451 4.3.0 Try later"] * 3)
    email_id = api.post("/api/v1/emails", mail("busy@example.com")).get_json()["id"]
    for _ in range(3):  # EMAIL_RETRY_SCHEDULE [1, 2]: three attempts
        make_due()
        flush()
    row = fresh(Email, email_id)
    assert row.status == "failed" and row.attempts == 3 and sink.received == []
    assert db.session.query(Suppression).count() == 0  # a temporary failure suppresses nothing


def test_a_connection_error_retries_the_whole_batch(app, api, sink):
    from tests.fakes.processes import free_port

    app.config["SMTP_PORT"] = free_port()  # nothing listens
    ids = [api.post("/api/v1/emails", mail(f"u{i}@example.com")).get_json()["id"] for i in range(3)]
    results = flush()
    assert results[0].error and results[0].retrying == 3
    assert {fresh(Email, i).status for i in ids} == {"retrying"}
    app.config["SMTP_PORT"] = sink.port
    make_due()
    flush()
    assert {fresh(Email, i).status for i in ids} == {"sent"}


def test_one_click_unsubscribe(app, api, sink):
    api.post("/api/v1/emails", mail())
    flush()
    message = sink.received[0].message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://ops.example.com/unsubscribe/")
    path = url.removeprefix("https://ops.example.com")
    client = app.test_client()
    page = client.get(path)
    assert page.status_code == 200 and "ana@example.com" in page.text
    assert db.session.query(Suppression).count() == 0  # a GET never unsubscribes
    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "Unsubscribed" in done.text
    row = db.session.query(Suppression).one()
    assert row.address == "ana@example.com" and row.by_recipient
    assert client.post("/unsubscribe/forged-token").status_code == 404
    assert api.post("/api/v1/emails", mail()).get_json()["status"] == "suppressed"


def test_the_relay_pace_is_shared_and_bounded(app):
    waits = [ratelimit.reserve("test-pace", 600, max_wait=5) for _ in range(5)]  # one slot per 0.1 s
    assert waits[0] == pytest.approx(0, abs=0.02)
    assert all(b - a == pytest.approx(0.1, abs=0.03) for a, b in zip(waits, waits[1:], strict=False))
    assert ratelimit.reserve("test-pace", 600, max_wait=0.2) is None  # would wait ~0.5 s: no slot taken
    assert ratelimit.reserve("test-pace", 0, max_wait=0) == 0


def test_a_flush_keeps_the_relay_pace(app, api, sink):
    """EMAIL_RATE_PER_MINUTE through the send path: 5 mails at 600 a minute take at least the
    four 0.1 s gaps between them (a lower bound: a slow machine only adds to it)."""
    app.config["EMAIL_RATE_PER_MINUTE"] = 600
    api.post("/api/v1/emails", [mail(f"u{i}@example.com") for i in range(5)])
    started = time.monotonic()
    flush()
    assert len(sink.received) == 5 and time.monotonic() - started >= 0.4


def test_mail_the_pace_cannot_reach_within_the_lease_is_given_back(app, api, sink):
    """Other processes hold the next 3 s of a 60-a-minute pace; waiting for it would pass half
    the batch's lease (2 s): the batch's mails go back to the queue untouched, none is sent.
    (One batch: the flush's budget ends before its next round.)"""
    app.config.update(EMAIL_RATE_PER_MINUTE=60, EMAIL_LEASE_SECONDS=4, EMAIL_DELAY=0.5)
    for _ in range(3):
        ratelimit.reserve(batches.PACE, 60, max_wait=60)
    ids = [
        row["id"]
        for row in api.post("/api/v1/emails", [mail("a@example.com"), mail("b@example.com")]).get_json()["data"]
    ]
    db.session.rollback()
    results = batches.flush("test-worker", budget=0.3)
    assert len(results) == 1 and sink.received == []
    rows = [fresh(Email, email_id) for email_id in ids]
    assert all(r.status == "queued" and r.last_error == "waiting for the relay rate limit" for r in rows)
    assert all(r.attempts == 0 for r in rows)


def test_batches_are_email_delay_apart(app, api, sink):
    """EMAIL_DELAY between batches: 4 mails in batches of 2 take at least one delay."""
    app.config.update(EMAIL_BATCH_SIZE=2, EMAIL_DELAY=0.5)
    api.post("/api/v1/emails", [mail(f"u{i}@example.com") for i in range(4)])
    started = time.monotonic()
    results = flush()
    assert len(results) == 2 and len(sink.received) == 4 and time.monotonic() - started >= 0.5


def _flush_jobs() -> list[Job]:
    db.session.rollback()
    return list(db.session.scalars(select(Job).where(Job.type == batches.FLUSH.name)))


def test_a_kick_that_rolled_back_does_not_hold_the_next_one_back(app, monkeypatch):
    assert batches.submit_flush() is True
    db.session.rollback()  # the request that kicked failed: no flush job, but its guard is in Redis
    assert batches.submit_flush() is False  # within the grace its transaction might still commit
    db.session.rollback()
    monkeypatch.setattr(batches, "FLUSH_GUARD_GRACE_SECONDS", 0)
    assert batches.submit_flush() is True  # past it, the guard names a job that never was
    db.session.commit()
    assert len(_flush_jobs()) == 1
    assert batches.submit_flush() is False  # that flush is pending: no second one
    db.session.commit()
    assert len(_flush_jobs()) == 1


def test_a_flush_that_ended_without_clearing_its_guard_does_not_hold_the_next_one_back(app):
    assert batches.submit_flush() is True
    db.session.commit()
    (job,) = _flush_jobs()
    job.status = "succeeded"  # it finished, and the guard's delete never reached Redis
    db.session.commit()
    assert batches.submit_flush() is True
    db.session.commit()
    assert len(_flush_jobs()) == 2


@pytest.mark.parametrize("app_config", [{"OPSDECK_DISABLED_FAMILIES": ["email"]}])
def test_the_family_can_be_switched_off(app, api, app_config):
    assert api.post("/api/v1/emails", mail()).status_code == 404


def unrenderable(api, to: str, **fields) -> str:
    """A queued mail whose template cannot render its context (as a platform's own template
    changed after its mails were queued): here the digest template, which wants `items`."""
    email_id = api.post("/api/v1/emails", mail(to, **fields)).get_json()["id"]
    db.session.query(Email).filter_by(id=email_id).update({"template": "digest", "context": {}})
    db.session.commit()
    return email_id


def test_a_mail_whose_template_cannot_render_fails_alone(app, api, sink):
    broken = unrenderable(api, "a@example.com")
    fine = api.post("/api/v1/emails", mail("b@example.com")).get_json()
    flush()
    assert fresh(Email, broken).status == "failed" and "render" in fresh(Email, broken).last_error
    assert fresh(Email, fine["id"]).status == "sent" and len(sink.received) == 1


@pytest.mark.parametrize(
    "app_config", [{"EMAIL_RATE_PER_MINUTE": 0, "EMAIL_DELAY": 0, "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]}]
)
def test_failures_and_unsubscribes_reach_the_tenants_webhooks(app, api, sink, receiver, app_config):
    from app.models import Event, WebhookDelivery

    app.config["SMTP_PORT"] = sink.port
    api.post(
        "/api/v1/webhook-endpoints", {"url": receiver.url(), "event_types": ["email.failed", "email.unsubscribed"]}
    )
    sink.script("gone@example.com", "550 5.1.1 No such user")
    failed_id = api.post("/api/v1/emails", mail("gone@example.com")).get_json()["id"]
    api.post("/api/v1/emails", mail("ana@example.com"))
    flush()
    path = sink.received[0].message["List-Unsubscribe"].strip("<>").split("/unsubscribe/")[1]
    app.test_client().post(f"/unsubscribe/{path}")
    db.session.rollback()
    emitted = {e.type: e.payload for e in db.session.query(Event)}
    assert emitted["email.failed"]["id"] == failed_id and "550" in emitted["email.failed"]["error"]
    assert emitted["email.unsubscribed"] == {"address": "ana@example.com"}
    assert db.session.query(WebhookDelivery).count() == 2


def test_a_digest_item_that_cannot_render_fails_alone(app, api, sink):
    unrenderable(api, "ana@example.com", digest_key="k")
    for i in range(2):
        api.post("/api/v1/emails", {"to": "ana@example.com", "subject": f"Bid {i}", "text": "x", "digest_key": "k"})
    make_due()
    flush()
    statuses = sorted(r.status for r in db.session.query(Email).filter(Email.digest_key == "k"))
    assert statuses == ["digested", "digested", "failed"]
    assert [r.message["Subject"] for r in sink.received] == ["Bid 0 and 1 more"]


@pytest.mark.parametrize(
    "body",
    [
        {"to": "ü@example.com", "subject": "s", "text": "t"},
        {"to": "a@example.com", "subject": "s", "text": "t", "headers": {"X-Tag\n": "v"}},
        {"to": "a@example.com", "subject": "s", "text": "t", "send_after": "9999-12-31T23:59:00Z"},
    ],
)
def test_addresses_headers_and_times_smtp_cannot_carry_are_422(app, api, body):
    assert api.post("/api/v1/emails", body).status_code == 422
    assert db.session.query(Email).count() == 0


def test_a_forged_cursor_is_422_not_500(app, api):
    import base64

    forged = base64.urlsafe_b64encode(b"2024-01-01T00:00:00|x").decode()
    assert api.get(f"/api/v1/emails?cursor={forged}").status_code == 422
    assert api.get(f"/api/v1/jobs?cursor={forged}").status_code == 422
