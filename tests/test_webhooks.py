"""Webhooks through the API and the delivery service, in this process, against real HTTP
receivers on loopback: endpoints, events and fan-out, Standard Webhooks signatures (checked
with the `standardwebhooks` package), every attempt's outcome, resend and recover."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from dramatiq import Message
from standardwebhooks import Webhook

from app.extensions import db, queue
from app.models import Event, Job, WebhookDelivery, WebhookEndpoint
from app.models.base import utcnow
from app.services.jobs import ledger
from app.services.webhooks import delivery
from tests.fakes.http_receiver import Reply
from tests.helpers import LOOPBACK, fresh, make_endpoint, post_event, run_attempt


@pytest.fixture
def app_config():
    return dict(LOOPBACK)


def test_endpoint_secret_is_shown_once_in_standard_form_and_stored_encrypted(app, api, receiver):
    created = make_endpoint(api, receiver.url(), description="billing")
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) in range(24, 65)
    row = db.session.get(WebhookEndpoint, created["id"])
    assert created["secret"].encode() not in row.secret_encrypted
    shown = api.get(f"/api/v1/webhook-endpoints/{created['id']}").get_json()
    assert "secret" not in shown and shown["url"] == receiver.url()
    listed = api.get("/api/v1/webhook-endpoints").get_json()["data"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]


def test_event_is_signed_verifiably_and_fanned_out_by_type(app, api, receiver):
    everything = make_endpoint(api, receiver.url("/all"))
    invoices = make_endpoint(api, receiver.url("/invoices"), event_types=["invoice.paid"])
    make_endpoint(api, receiver.url("/users"), event_types=["user.created"])

    response = post_event(api, payload={"amount": 5, "note": "<b>€</b>"})
    assert response.status_code == 202
    event = response.get_json()
    assert event["type"] == "invoice.paid" and event["payload"] == {"amount": 5, "note": "<b>€</b>"}
    rows = db.session.query(WebhookDelivery).filter_by(event_id=event["id"]).all()
    assert sorted(r.endpoint_id for r in rows) == sorted([everything["id"], invoices["id"]])
    assert all(db.session.get(Job, r.job_id).type == "webhooks.deliver" for r in rows)

    for row in rows:
        outcome = run_attempt(row.id)
        assert outcome.retry is None and outcome.result["status_code"] == 200
    assert receiver.on("/users") == []
    for path, endpoint in (("/all", everything), ("/invoices", invoices)):
        (got,) = receiver.on(path)
        payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "invoice.paid" and payload["data"]["note"] == "<b>€</b>"
        assert got.headers["webhook-id"] == event["id"]
        assert json.loads(got.body)["timestamp"].endswith("Z")
    assert fresh(WebhookDelivery, rows[0].id).status == "succeeded"

    detail = api.get(f"/api/v1/events/{event['id']}").get_json()
    assert {d["status"] for d in detail["deliveries"]} == {"succeeded"}


def test_a_client_event_id_seen_before_returns_the_first_event_without_a_second_fan_out(app, api, receiver):
    make_endpoint(api, receiver.url())
    first = post_event(api, id="order-42-paid")
    again = post_event(api, payload={"amount": 999}, id="order-42-paid")
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"] and again.get_json()["payload"] == {"amount": 5}
    assert db.session.query(Event).count() == 1 and db.session.query(WebhookDelivery).count() == 1
    assert api.get("/api/v1/events/order-42-paid").get_json()["id"] == first.get_json()["id"]


def test_an_event_and_its_fan_out_are_rows_of_the_callers_transaction(app, api, tenant, receiver):
    """events.create inserts the event, one delivery per subscribed endpoint and their jobs at
    once, in the caller's transaction; the event it hands back is held by the session like a
    loaded row (nothing pending, nothing to reload); a rollback leaves none of them."""
    from sqlalchemy import func, inspect, select

    from app.services.webhooks import events

    a, b = make_endpoint(api, receiver.url("/a")), make_endpoint(api, receiver.url("/b"))
    make_endpoint(api, receiver.url("/c"), event_types=["user.created"])
    event, created = events.create(tenant.tenant_id, "invoice.paid", {"n": 1})
    state = inspect(event)
    assert created and state.persistent and not state.expired_attributes and event not in db.session.new
    assert event.payload == {"n": 1} and db.session.get(Event, event.id) is event
    rows = db.session.execute(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.status, Job.type, Job.status)
        .join(Job, Job.id == WebhookDelivery.job_id)
        .where(WebhookDelivery.event_id == event.id)
    ).all()  # no flush needed: the rows are in
    assert sorted(rows) == sorted((e["id"], "pending", "webhooks.deliver", "pending") for e in (a, b))
    db.session.rollback()
    counts = [db.session.scalar(select(func.count()).select_from(m)) for m in (Event, WebhookDelivery, Job)]
    assert counts == [0, 0, 0]
    assert queue.broker.do_qsize("webhooks") == 0  # nothing of the rolled-back fan-out was published


def test_a_fan_outs_jobs_are_published_at_commit(app, api, tenant, receiver):
    """The delivery jobs of a fan-out reach Redis when the transaction commits (not later,
    through the relay), one message per delivery, named by its job id."""
    from sqlalchemy import select

    from app.services.webhooks import events

    make_endpoint(api, receiver.url("/a"))
    make_endpoint(api, receiver.url("/b"))
    event, _ = events.create(tenant.tenant_id, "invoice.paid", {"n": 2})
    assert queue.broker.do_qsize("webhooks") == 0  # in the transaction only
    db.session.commit()
    job_ids = set(db.session.scalars(select(WebhookDelivery.job_id).where(WebhookDelivery.event_id == event.id)))
    queued = {Message.decode(raw).message_id for raw in queue.redis.hvals("dramatiq:webhooks.msgs")}
    assert len(job_ids) == 2 and queued == job_ids


def test_a_client_event_id_committed_by_a_concurrent_request_wins_the_race(app, api, tenant, receiver, monkeypatch):
    """The twin commits just before this request's INSERT: the INSERT skips the row (ON
    CONFLICT DO NOTHING), the first event is returned, nothing is fanned out, and the caller's
    transaction goes on (on PostgreSQL a failed statement would have aborted it)."""
    from sqlalchemy import func, select

    from app.services.webhooks import events

    make_endpoint(api, receiver.url())
    twin = {
        "id": "twin-event",
        "tenant_id": tenant.tenant_id,
        "client_id": "order-7",
        "type": "x.y",
        "body": events.body_for("x.y", utcnow(), {"first": True}),
        "created_at": utcnow(),
    }
    inserts = []
    real_ids = events._INSERT_NEW_EVENT.ids

    def insert_after_the_twin_commits(rows):
        inserts.append(rows)
        with db.engine.begin() as other:
            other.execute(Event.__table__.insert(), twin)
        return real_ids(rows)

    monkeypatch.setattr(events._INSERT_NEW_EVENT, "ids", insert_after_the_twin_commits)
    event, created = events.create(tenant.tenant_id, "x.y", {"first": False}, client_id="order-7")
    assert not created and event.id == "twin-event" and event.payload == {"first": True} and len(inserts) == 1
    assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    db.session.commit()  # the transaction is still usable
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1


def test_event_input_errors(app, api):
    assert post_event(api, event_type="bad type!").status_code == 422
    assert api.post("/api/v1/events", {"type": "x"}).status_code == 422  # no payload
    big = post_event(api, payload={"blob": "x" * (256 * 1024 + 10)})
    assert big.status_code == 413 and big.mimetype == "application/problem+json"
    own = post_event(api, event_type="queue.long_wait")  # Opsdeck's own: a tenant may not send it
    assert own.status_code == 422 and "Opsdeck's own events" in str(own.get_json()["errors"])
    assert db.session.query(Event).count() == 0


def test_endpoints_are_tenant_scoped(app, api, other_api, receiver):
    mine = make_endpoint(api, receiver.url())
    assert other_api.get(f"/api/v1/webhook-endpoints/{mine['id']}").status_code == 404
    assert other_api.post(f"/api/v1/webhook-endpoints/{mine['id']}/rotate-secret").status_code == 404
    post_event(other_api)  # another tenant's event reaches none of my endpoints
    assert db.session.query(WebhookDelivery).count() == 0


def test_patch_delete_and_disabled_endpoints(app, api, receiver):
    endpoint = make_endpoint(api, receiver.url())
    patched = api.patch(f"/api/v1/webhook-endpoints/{endpoint['id']}", {"enabled": False, "description": "paused"})
    assert patched.status_code == 200 and patched.get_json()["enabled"] is False
    assert patched.get_json()["event_types"] is None  # untouched by a partial update
    post_event(api)
    assert db.session.query(WebhookDelivery).count() == 0  # disabled: no fan-out
    assert api.patch(f"/api/v1/webhook-endpoints/{endpoint['id']}", {"url": "ftp://x"}).status_code == 422
    assert api.delete(f"/api/v1/webhook-endpoints/{endpoint['id']}").status_code == 204
    assert api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}").status_code == 404


def test_rotation_sends_both_signatures_during_the_grace(app, api, receiver):
    endpoint = make_endpoint(api, receiver.url())
    rotated = api.post(f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret").get_json()
    assert rotated["secret"] != endpoint["secret"]
    post_event(api)
    run_attempt(db.session.query(WebhookDelivery).one().id)
    (got,) = receiver.on("/hook")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint["secret"]).verify(got.body, got.headers)  # old secret still verifies
    Webhook(rotated["secret"]).verify(got.body, got.headers)  # and the new one

    db.session.query(WebhookEndpoint).update({"previous_secret_expires_at": utcnow() - timedelta(seconds=1)})
    db.session.commit()
    post_event(api, event_type="invoice.void")
    run_attempt(db.session.query(WebhookDelivery).filter(WebhookDelivery.status == "pending").one().id)
    latest = receiver.on("/hook")[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    Webhook(rotated["secret"]).verify(latest.body, latest.headers)


def test_failures_retry_on_schedule_then_die_and_every_attempt_is_recorded(app, api, receiver):
    receiver.script("/hook", Reply(500, body=b"boom"), Reply(500), Reply(500))
    make_endpoint(api, receiver.url())
    post_event(api)
    row_id = db.session.query(WebhookDelivery).one().id
    first = run_attempt(row_id)
    assert isinstance(first.retry, ledger.RetryIn) and 0.8 <= first.retry.seconds <= 1.2  # schedule[0] ± 20%
    second = run_attempt(row_id)
    assert isinstance(second.retry, ledger.RetryIn) and 1.6 <= second.retry.seconds <= 2.4
    third = run_attempt(row_id)  # max_attempts = len(schedule) + 1
    assert isinstance(third.retry, ledger.GiveUp) and third.dead
    row = fresh(WebhookDelivery, row_id)
    assert row.status == "dead" and row.attempts == 3 and row.last_status_code == 500
    detail = api.get(f"/api/v1/webhook-deliveries/{row_id}").get_json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 500, 500]
    assert detail["attempt_log"][0]["response_body"] == "boom"


def test_retry_after_is_honoured_and_bounded(app, api, receiver):
    receiver.script("/hook", Reply(429, {"Retry-After": "7"}), Reply(503, {"Retry-After": "999999"}))
    make_endpoint(api, receiver.url())
    post_event(api)
    row_id = db.session.query(WebhookDelivery).one().id
    assert run_attempt(row_id).retry.seconds == 7
    app.config["WEBHOOK_RETRY_AFTER_MAX"] = 60
    assert run_attempt(row_id).retry.seconds == 60


def test_410_disables_the_endpoint(app, api, receiver):
    receiver.script("/hook", Reply(410))
    endpoint = make_endpoint(api, receiver.url())
    post_event(api)
    outcome = run_attempt(db.session.query(WebhookDelivery).one().id)
    assert outcome.dead and "410" in outcome.disabled_reason and isinstance(outcome.retry, ledger.GiveUp)
    shown = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}").get_json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]


def test_an_endpoint_failing_too_long_is_disabled(app, api, receiver):
    receiver.script("/hook", Reply(500))
    endpoint = make_endpoint(api, receiver.url())
    db.session.query(WebhookEndpoint).update({"failing_since": utcnow() - timedelta(days=6)})
    db.session.commit()
    post_event(api)
    outcome = run_attempt(db.session.query(WebhookDelivery).one().id)
    assert outcome.disabled_reason and "failing without a success" in outcome.disabled_reason
    assert fresh(WebhookEndpoint, endpoint["id"]).enabled is False


def test_a_success_resets_the_failure_clock(app, api, receiver):
    endpoint = make_endpoint(api, receiver.url())
    db.session.query(WebhookEndpoint).update({"failing_since": utcnow() - timedelta(days=1)})
    db.session.commit()
    post_event(api)
    run_attempt(db.session.query(WebhookDelivery).one().id)
    row = fresh(WebhookEndpoint, endpoint["id"])
    assert row.failing_since is None and row.last_success_at is not None


def test_redirects_are_failures_not_followed(app, api, receiver):
    receiver.script("/hook", Reply(302, {"Location": receiver.url("/elsewhere")}))
    make_endpoint(api, receiver.url())
    post_event(api)
    outcome = run_attempt(db.session.query(WebhookDelivery).one().id)
    assert isinstance(outcome.retry, ledger.RetryIn)
    assert receiver.on("/elsewhere") == [] and fresh(WebhookDelivery, outcome.delivery_id).last_status_code == 302


def test_a_slow_receiver_times_out(app, api, receiver):
    receiver.script("/hook", Reply(200, delay=4))
    make_endpoint(api, receiver.url())
    post_event(api)
    outcome = run_attempt(db.session.query(WebhookDelivery).one().id)
    row = fresh(WebhookDelivery, outcome.delivery_id)
    assert row.status == "retrying" and "timed out" in row.last_error and row.last_status_code is None


def test_connection_refused_is_a_recorded_failure(app, api, receiver):
    from tests.fakes.processes import free_port

    make_endpoint(api, f"http://127.0.0.1:{free_port()}/nobody")
    post_event(api)
    outcome = run_attempt(db.session.query(WebhookDelivery).one().id)
    assert isinstance(outcome.retry, ledger.RetryIn)
    assert "refused" in fresh(WebhookDelivery, outcome.delivery_id).last_error


def test_connections_are_reused_across_deliveries(app, api, receiver):
    make_endpoint(api, receiver.url())
    for i in range(5):
        post_event(api, payload={"n": i})
    for row in db.session.query(WebhookDelivery).all():
        run_attempt(row.id)
    assert len(receiver.on("/hook")) == 5 and receiver.connections == 1


def test_resend_and_recover(app, api, receiver):
    receiver.script("/hook", Reply(500), Reply(500), Reply(500))
    endpoint = make_endpoint(api, receiver.url())
    post_event(api)
    row_id = db.session.query(WebhookDelivery).one().id
    for _ in range(3):
        run_attempt(row_id)
    assert fresh(WebhookDelivery, row_id).status == "dead"

    resent = api.post(f"/api/v1/webhook-deliveries/{row_id}/retry")
    assert resent.status_code == 202 and resent.get_json()["status"] == "pending"
    run_attempt(row_id)
    assert fresh(WebhookDelivery, row_id).status == "succeeded"

    # recover: dead deliveries inside the window come back, those outside stay dead
    receiver.script("/hook", *[Reply(500)] * 6)
    post_event(api, payload={"n": 1})
    post_event(api, payload={"n": 2})
    dead = [r.id for r in db.session.query(WebhookDelivery).filter_by(status="pending")]
    for row_id in dead:
        for _ in range(3):
            run_attempt(row_id)
    old = dead[0]
    db.session.query(WebhookDelivery).filter_by(id=old).update({"created_at": utcnow() - timedelta(days=3)})
    db.session.commit()
    since = (utcnow() - timedelta(days=1)).isoformat()
    recovered = api.post(f"/api/v1/webhook-endpoints/{endpoint['id']}/recover", {"since": since})
    assert recovered.status_code == 202 and recovered.get_json() == {"requeued": 1}
    assert fresh(WebhookDelivery, dead[1]).status == "pending" and fresh(WebhookDelivery, old).status == "dead"
    listed = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries?status=dead").get_json()
    assert [d["id"] for d in listed["data"]] == [old]


def test_a_superseded_job_sends_nothing(app, api, receiver):
    make_endpoint(api, receiver.url())
    post_event(api)
    row = db.session.query(WebhookDelivery).one()
    old_job = db.session.get(Job, row.job_id)
    api.post(f"/api/v1/webhook-deliveries/{row.id}/retry")
    stale = ledger.ClaimedJob(old_job.id, old_job.type, old_job.tenant_id, old_job.payload, 1, 3)
    assert "superseded" in delivery.attempt(row.id, stale).result["skipped"]
    assert receiver.received == []


def test_per_endpoint_rate_limit_postpones_instead_of_failing(app, api, receiver):
    make_endpoint(api, receiver.url(), rate_limit_per_second=1)
    for i in range(4):
        post_event(api, payload={"n": i})
    outcomes = [run_attempt(r.id) for r in db.session.query(WebhookDelivery).order_by(WebhookDelivery.created_at)]
    postponed = [o for o in outcomes if isinstance(o.retry, ledger.Postpone)]
    # One send a second: four attempts made in a moment send one (two if a second ticks over
    # between them); the others wait, and none fails.
    assert len(receiver.on("/hook")) + len(postponed) == 4 and len(postponed) >= 2
    assert all(o.retry is None or isinstance(o.retry, ledger.Postpone) for o in outcomes)
    for outcome in postponed:
        assert 0 < outcome.retry.seconds <= 2  # the window (1 s) left, times 1 to 2 (jitter)


@pytest.mark.parametrize("app_config", [{**LOOPBACK, "OPSDECK_DISABLED_FAMILIES": ["webhooks"]}])
def test_the_family_can_be_switched_off(app, api, app_config):
    response = post_event(api)
    assert response.status_code == 404 and "switched off" in response.get_json()["detail"]
    assert api.get("/api/v1/webhook-endpoints").status_code == 404


def test_a_disabled_endpoint_is_mailed_to_the_tenants_contact(app, api, tenant, receiver):
    from app.models import Email, Tenant
    from app.services import tenants

    tenants.set_contact(db.session.get(Tenant, tenant.tenant_id), "Ops@Acme.example", actor="test")
    receiver.script("/hook", Reply(410))
    make_endpoint(api, receiver.url())
    post_event(api)
    run_attempt(db.session.query(WebhookDelivery).one().id)
    db.session.rollback()
    (mail,) = db.session.query(Email).all()
    assert mail.to == "ops@acme.example" and mail.template == "notification" and mail.digest_key is None
    assert receiver.url() in mail.context["message"] and "410" in mail.context["message"]


def test_odd_retry_after_values_fall_back_to_the_schedule(app):
    assert delivery._retry_after({"Retry-After": "²"}) is None
    assert delivery._retry_after({"Retry-After": "soon"}) is None
    assert delivery._retry_after({"retry-after": "12"}) == 12


def test_internal_jobs_cannot_be_cancelled_by_the_tenant_and_orphans_settle(app, api, receiver):
    make_endpoint(api, receiver.url())
    post_event(api)
    row = db.session.query(WebhookDelivery).one()
    response = api.post(f"/api/v1/jobs/{row.job_id}/cancel")
    assert response.status_code == 409 and response.get_json()["type"].endswith("job-managed")
    from app.services import jobs

    jobs.cancel_many([row.job_id])  # an operator, or a worker that died on the last attempt
    db.session.commit()
    assert delivery.settle_orphans() == 1
    assert fresh(WebhookDelivery, row.id).status == "dead"


def test_a_replayed_endpoint_creation_keeps_its_secret_encrypted_at_rest(app, api, receiver):
    from app.models import IdempotencyRecord

    body = {"url": receiver.url()}
    first = api.post("/api/v1/webhook-endpoints", body, headers={"Idempotency-Key": "ep-1"})
    again = api.post("/api/v1/webhook-endpoints", body, headers={"Idempotency-Key": "ep-1"})
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["secret"] == first.get_json()["secret"]
    stored = json.dumps(db.session.query(IdempotencyRecord).one().response_body)
    assert first.get_json()["secret"] not in stored and first.get_json()["id"] not in stored
