"""A signed request sent again (a client's automatic retry, a poller) is never refused and never
has a second effect: reads pass on the timestamp window alone, a write is answered from the
first sending's outcome (app/api/writes.py)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Event, IdempotencyRecord, Job, WebhookDelivery
from app.models.base import utcnow
from app.services import idempotency, jobs
from app.services.jobs import maintenance
from tests.helpers import LOOPBACK, make_endpoint

JOB = {"type": "system.echo", "payload": {"message": "hi"}}


@pytest.fixture
def app_config():
    return dict(LOOPBACK)  # webhook endpoints on the test receiver


def test_the_same_read_ten_times_in_one_second_is_ten_answers(api):
    job_id = api.post("/api/v1/jobs", JOB).get_json()["id"]
    ts = int(time.time())
    answers = [api.get(f"/api/v1/jobs/{job_id}", timestamp=ts) for _ in range(10)]
    assert [a.status_code for a in answers] == [200] * 10
    assert all("Idempotent-Replayed" not in a.headers for a in answers)
    assert db.session.query(IdempotencyRecord).filter(IdempotencyRecord.key.like("opsdeck-signature:%")).count() == 1


def test_identical_signed_posts_make_one_job(api):
    """With and without an Idempotency-Key: the second is the first's answer, replayed."""
    for n, headers in enumerate(({}, {"Idempotency-Key": "k"})):
        ts = int(time.time()) - n
        first = api.post("/api/v1/jobs", JOB, headers=headers, timestamp=ts)
        again = api.post("/api/v1/jobs", JOB, headers=headers, timestamp=ts)
        assert first.status_code == again.status_code == 202
        assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
        assert again.get_json() == first.get_json()
    assert db.session.query(Job).count() == 2


def test_an_event_with_its_own_id_posted_twice_is_one_event_and_one_fan_out(api, receiver):
    make_endpoint(api, receiver.url("/a"))
    make_endpoint(api, receiver.url("/b"))
    ts = int(time.time())
    body = {"type": "invoice.paid", "payload": {"n": 1}, "id": "order-1"}
    first = api.post("/api/v1/events", body, timestamp=ts)
    again = api.post("/api/v1/events", body, timestamp=ts)
    assert first.status_code == again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert db.session.query(Event).count() == 1 and db.session.query(WebhookDelivery).count() == 2


def test_a_plain_write_sent_again_is_done_once(api):
    """A cancel is not grouped (app/api/grouped.py): sent again, it is not refused with 409
    (the job is cancelled by then) but answered as the first time."""
    job_id = api.post("/api/v1/jobs", {**JOB, "delay_seconds": 60}).get_json()["id"]
    ts = int(time.time())
    first = api.post(f"/api/v1/jobs/{job_id}/cancel", timestamp=ts)
    again = api.post(f"/api/v1/jobs/{job_id}/cancel", timestamp=ts)
    assert first.status_code == again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()


def test_a_repeat_in_flight_is_answered_by_whichever_commits_first(app, api, monkeypatch):
    """The first sending is still running when the repeat arrives: whichever commits first is
    the answer; the other writes nothing and answers as it did, marked replayed."""
    entered, release = threading.Event(), threading.Event()
    real_new_row = jobs.new_row
    calls = []

    def first_call_waits(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            entered.set()
            release.wait(10)
        return real_new_row(*args, **kwargs)

    monkeypatch.setattr(jobs, "new_row", first_call_waits)
    ts = int(time.time())
    answers: dict[str, object] = {}

    def send(name: str) -> None:
        with app.app_context():
            answers[name] = api.post("/api/v1/jobs", JOB, timestamp=ts)

    first = threading.Thread(target=send, args=("first",))
    first.start()
    assert entered.wait(10)
    send("repeat")  # runs while the first is held in its view
    release.set()
    first.join(10)

    one, two = answers["first"], answers["repeat"]
    assert one.status_code == two.status_code == 202 and one.get_json() == two.get_json()
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in (one, two)) == ["", "true"]
    db.session.expire_all()
    assert db.session.query(Job).count() == 1


def test_a_write_that_failed_on_the_server_runs_again(api, monkeypatch):
    """A 500 keeps nothing, its record neither: the same signed request again is a new try."""
    real_new_row = jobs.new_row
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real_new_row(*args, **kwargs)

    monkeypatch.setattr(jobs, "new_row", fails_once)
    ts = int(time.time())
    assert api.post("/api/v1/jobs", JOB, timestamp=ts).status_code == 500
    again = api.post("/api/v1/jobs", JOB, timestamp=ts)
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    assert db.session.query(Job).count() == 1


def test_a_signature_record_keeps_a_secret_encrypted(api, receiver):
    """An endpoint's signing secret is shown once; the answer kept for a repeat holds it sealed."""
    ts = int(time.time())
    body = {"url": receiver.url()}
    first = api.post("/api/v1/webhook-endpoints", body, timestamp=ts)
    again = api.post("/api/v1/webhook-endpoints", body, timestamp=ts)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    stored = json.dumps(db.session.query(IdempotencyRecord).one().response_body)
    assert first.get_json()["secret"] not in stored


def test_signature_records_last_the_signature_window_and_are_pruned(app, api):
    ts = int(time.time())
    api.post("/api/v1/jobs", JOB, timestamp=ts)
    record = db.session.query(IdempotencyRecord).one()
    window = 2 * app.config["API_SIGNATURE_TOLERANCE"]
    assert timedelta(seconds=window - 5) < record.expires_at - utcnow() <= timedelta(seconds=window)
    db.session.query(IdempotencyRecord).update({"expires_at": utcnow() - timedelta(seconds=1)})
    db.session.commit()
    assert maintenance.relay_tick()["records_pruned"] == 1
    assert db.session.query(IdempotencyRecord).count() == 0


def test_an_idempotency_key_may_not_take_the_signature_records_prefix(api):
    key = idempotency.SIGNATURE_KEY_PREFIX + "0" * 64
    response = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": key})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert db.session.query(Job).count() == 0
