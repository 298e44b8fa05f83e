"""Long-wait alerts: raised once per episode (feed, dashboard partial, operators' mail, webhook
event, metric), cleared once when the queue recovers."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import live
from app.extensions import db
from app.models import Event, Job, QueueAlert, WebhookDelivery
from app.models.base import utcnow
from app.services import alerts, tenants, users
from tests.helpers import LOOPBACK, PASSWORD, make_endpoint, run_attempt, submit


@pytest.fixture
def app_config(app_config, sink):
    app_config.update(
        LOOPBACK, SMTP_PORT=sink.port, QUEUE_LONG_WAIT_SECONDS=300, QUEUE_LONG_WAIT_OVERRIDES=["email:60"]
    )
    return app_config


def waiting_since(seconds: float, job_type: str = "system.echo", **options) -> str:
    """A job due `seconds` ago and still waiting."""
    job_id = submit(job_type, {"message": "late"}, **options)
    db.session.query(Job).filter_by(id=job_id).update({"next_attempt_at": utcnow() - timedelta(seconds=seconds)})
    db.session.commit()
    return job_id


def deliveries(event_type: str) -> list[WebhookDelivery]:
    db.session.rollback()
    return (
        db.session.query(WebhookDelivery)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .filter(Event.type == event_type)
        .all()
    )


def metric(client, name: str, **labels) -> float | None:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_a_long_wait_is_raised_once_and_cleared_once(app, api, receiver, sink):
    users.create_user("ops@example.com", PASSWORD, "admin")
    users.create_user("watcher@example.com", PASSWORD, "viewer")  # operators are admins
    make_endpoint(api, receiver.url(), event_types=["queue.long_wait", "queue.long_wait_cleared"])
    make_endpoint(api, receiver.url("/all-of-the-same-tenant"))  # every type: not for it either
    other = tenants.create_tenant("every-type")  # subscribed to everything: not an operator event's audience
    from tests.conftest import SignedClient

    make_endpoint(SignedClient(app, other.key_id, other.secret), receiver.url("/all"))
    job_id = waiting_since(400)

    assert alerts.check() == {"raised": ["default"], "cleared": []}
    # The mail, to the admins only.
    assert len(sink.received) == 1
    mail = sink.received[0]
    assert mail.rcpt_tos == ["ops@example.com"] and "queue default" in mail.message["Subject"]
    # The webhook event, to the subscribed tenant only; delivered for real.
    (delivery,) = deliveries("queue.long_wait")
    assert run_attempt(delivery.id)
    (got,) = receiver.on("/hook")
    body = json.loads(got.body)
    assert body["type"] == "queue.long_wait" and body["data"]["queue"] == "default"
    assert body["data"]["threshold_seconds"] == 300 and body["data"]["waited_seconds"] >= 400
    # The feed and the dashboard's partial.
    assert [e["subject"] for e in live.recent() if e["type"] == "queue.long_wait"] == ["default"]
    assert [a.queue for a in alerts.active()] == ["default"]
    # The metric.
    client = app.test_client()
    assert metric(client, "opsdeck_queue_long_wait", queue="default") == 1
    assert metric(client, "opsdeck_queue_long_wait", queue="email") == 0
    assert metric(client, "opsdeck_queue_long_waits_total", queue="default") == 1

    # Still waiting at the next check: nothing new.
    assert alerts.check() == {"raised": [], "cleared": []}
    assert len(sink.received) == 1 and len(deliveries("queue.long_wait")) == 1
    assert len([e for e in live.recent() if e["type"] == "queue.long_wait"]) == 1

    # The job is taken: the episode ends, once.
    db.session.query(Job).filter_by(id=job_id).update({"status": "succeeded"})
    db.session.commit()
    assert alerts.check() == {"raised": [], "cleared": ["default"]}
    assert alerts.check() == {"raised": [], "cleared": []}
    (cleared,) = deliveries("queue.long_wait_cleared")
    assert run_attempt(cleared.id)
    assert json.loads(receiver.on("/hook")[-1].body)["type"] == "queue.long_wait_cleared"
    assert [e["type"] for e in live.recent(2)] == ["queue.long_wait_cleared", "queue.long_wait"]
    assert metric(client, "opsdeck_queue_long_wait", queue="default") == 0
    assert receiver.on("/all") == [] and receiver.on("/all-of-the-same-tenant") == []


def test_two_checks_at_the_same_moment_raise_one_episode(app, api, receiver, sink, monkeypatch):
    """Two schedulers' checks, each in its own app context and session, that both found no open
    episode: one raises it (one feed event, one webhook event, one mail), the other nothing."""
    users.create_user("ops@example.com", PASSWORD, "admin")
    make_endpoint(api, receiver.url(), event_types=["queue.long_wait"])
    waiting_since(400)
    # Both checks read the open episodes before either raises, and both reach the mail together.
    both_read, both_mail = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30)
    active, mail = alerts.active, alerts._mail

    def active_then_wait() -> list[alerts.Alert]:
        found = active()
        both_read.wait()
        return found

    def wait_then_mail(row: alerts.Alert) -> bool:
        both_mail.wait()
        return mail(row)

    monkeypatch.setattr(alerts, "active", active_then_wait)
    monkeypatch.setattr(alerts, "_mail", wait_then_mail)
    results: list[dict[str, list[str]] | BaseException] = []

    def scheduler() -> None:
        with app.app_context():
            try:
                results.append(alerts.check())
            except BaseException as exc:  # reported by the assertion below
                results.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    monkeypatch.undo()  # /metrics reads alerts.active too

    assert sorted(r["raised"] for r in results) == [[], ["default"]], results  # type: ignore[index]
    assert [e["subject"] for e in live.recent() if e["type"] == "queue.long_wait"] == ["default"]
    assert len(deliveries("queue.long_wait")) == 1
    assert db.session.query(Event).filter_by(type="queue.long_wait").count() == 1
    assert len(sink.received) == 1 and sink.received[0].rcpt_tos == ["ops@example.com"]
    assert metric(app.test_client(), "opsdeck_queue_long_waits_total", queue="default") == 1


def test_a_queue_override_applies_to_its_priorities_and_the_default_to_others(app, sink):
    waiting_since(90, priority="high")  # default_high: 300 s, not late
    email_job = submit("system.echo", {"message": "x"})
    db.session.query(Job).filter_by(id=email_job).update(
        {"queue": "email_high", "next_attempt_at": utcnow() - timedelta(seconds=90)}
    )
    db.session.commit()
    assert alerts.check()["raised"] == ["email_high"]  # email:60 covers email_high


def test_a_mail_the_relay_refused_is_sent_at_the_next_check_and_only_then(app, sink):
    users.create_user("ops@example.com", PASSWORD, "admin")
    waiting_since(400)
    app.config["SMTP_PORT"] = 1  # nothing listens
    assert alerts.check()["raised"] == ["default"]
    assert db.session.get(QueueAlert, "default").emailed_at is None and sink.received == []
    app.config["SMTP_PORT"] = sink.port
    assert alerts.check()["raised"] == []
    assert len(sink.received) == 1
    alerts.check()
    assert len(sink.received) == 1


def test_the_dashboard_partial_shows_open_alerts(app):
    def partial() -> str:
        return app.jinja_env.from_string('{% include "admin/_alerts.html" %}').render(utc=str)

    assert "data-queue" not in partial()
    waiting_since(400)
    alerts.check()
    html = partial()
    assert 'data-queue="default"' in html and "300 s threshold" in html


def test_an_alert_of_a_queue_no_longer_configured_is_cleared(app):
    db.session.add(
        QueueAlert(
            queue="retired", oldest_waiting_at=utcnow() - timedelta(hours=1), threshold_seconds=300, emailed_at=utcnow()
        )
    )
    db.session.commit()
    assert alerts.check() == {"raised": [], "cleared": ["retired"]}
    assert alerts.active() == []
