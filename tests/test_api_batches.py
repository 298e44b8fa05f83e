"""Bulk calls: POST /api/v1/jobs/batch and /api/v1/events/batch (app/api/batches.py)."""

from __future__ import annotations

import time

import pytest
from dramatiq import Message

from app.extensions import db, queue
from app.models import Event, Job, WebhookDelivery
from app.services.jobs import outbox
from tests.helpers import LOOPBACK, make_endpoint


def job(n: int, **extra) -> dict:
    return {"type": "system.echo", "payload": {"message": f"m{n}"}, **extra}


def _published(queue_name: str = "default") -> list[str]:
    return [Message.decode(raw).message_id for raw in queue.redis.hvals(f"dramatiq:{queue_name}.msgs")]


@pytest.fixture
def app_config(request):
    return {**LOOPBACK, "OUTBOX_GRACE_SECONDS": 0, **getattr(request, "param", {})}


def test_a_batch_of_jobs_is_accepted_in_order_and_published(api):
    response = api.post(
        "/api/v1/jobs/batch", {"jobs": [job(n, priority="high" if n == 1 else "normal") for n in range(3)]}
    )
    assert response.status_code == 202
    data = response.get_json()["data"]
    assert [d["payload"]["message"] for d in data] == ["m0", "m1", "m2"]
    assert [d["replayed"] for d in data] == [False] * 3 and data[1]["priority"] == "high"
    assert {j.id for j in db.session.query(Job)} == {d["id"] for d in data}
    queues = {j.queue for j in db.session.query(Job)}
    assert len(queues) == 2 and sorted(sum((_published(q) for q in queues), [])) == sorted(d["id"] for d in data)


@pytest.mark.parametrize("app_config", [{"API_BATCH_MAX_ITEMS": 5, "API_BATCH_MAX_BYTES": 4096}], indirect=True)
def test_a_batch_past_its_limits_is_refused(api, app_config):
    too_many = api.post("/api/v1/jobs/batch", {"jobs": [job(n) for n in range(6)]})
    assert too_many.status_code == 422 and "6" in too_many.get_json()["errors"]["jobs"][0]
    empty = api.post("/api/v1/jobs/batch", {"jobs": []})
    assert empty.status_code == 422
    not_a_list = api.post("/api/v1/events/batch", {"events": {"type": "a.b"}})
    assert not_a_list.status_code == 422
    too_large = api.post("/api/v1/jobs/batch", {"jobs": [job(0, payload={"message": "x" * 5000})]})
    assert too_large.status_code == 413 and too_large.mimetype == "application/problem+json"
    assert db.session.query(Job).count() == 0


def test_the_default_limits_are_a_thousand_items_and_five_mib(app, api):
    assert app.config["API_BATCH_MAX_ITEMS"] == 1000 and app.config["API_BATCH_MAX_BYTES"] == 5 * 1024 * 1024
    response = api.post("/api/v1/jobs/batch", {"jobs": [job(n) for n in range(1001)]})
    assert response.status_code == 422 and db.session.query(Job).count() == 0


def test_one_invalid_item_refuses_the_whole_batch_with_errors_by_index(api):
    items = [job(0), {"type": "nope"}, job(2, priority="urgent"), job(3), "job 4"]
    response = api.post("/api/v1/jobs/batch", {"jobs": items})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert set(response.get_json()["errors"]["jobs"]) == {"1", "2", "4"}
    assert "type" in response.get_json()["errors"]["jobs"]["1"]
    assert db.session.query(Job).count() == 0 and _published() == []


def test_items_with_a_known_idempotency_key_are_answered_with_their_job(api, other_api):
    first = api.post("/api/v1/jobs/batch", {"jobs": [job(0, idempotency_key="a"), job(1)]}).get_json()["data"]
    again = api.post(
        "/api/v1/jobs/batch",
        {"jobs": [job(2, idempotency_key="b"), job(0, idempotency_key="a"), job(3, idempotency_key="b")]},
    ).get_json()["data"]
    assert [d["replayed"] for d in again] == [False, True, True]
    assert again[1]["id"] == first[0]["id"] and again[1]["payload"]["message"] == "m0"
    assert again[2]["id"] == again[0]["id"]  # a key twice in one batch: one job
    assert db.session.query(Job).count() == 3
    theirs = other_api.post("/api/v1/jobs/batch", {"jobs": [job(0, idempotency_key="a")]}).get_json()["data"]
    assert theirs[0]["replayed"] is False and theirs[0]["id"] != first[0]["id"]  # keys are per tenant
    assert db.session.query(Job).count() == 4
    assert sorted(_published()) == sorted(j.id for j in db.session.query(Job))  # each published once


def test_a_single_job_with_an_idempotency_key_is_answered_with_the_first(api):
    first = api.post("/api/v1/jobs", job(0, idempotency_key="order-7"))
    again = api.post("/api/v1/jobs", job(0, idempotency_key="order-7"))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["id"] == first.get_json()["id"] and again.get_json()["idempotency_key"] == "order-7"
    assert db.session.query(Job).count() == 1


def test_a_batch_sent_again_with_the_same_signature_is_replayed_whole(api):
    ts = int(time.time())
    body = {"jobs": [job(0), job(1)]}
    first = api.post("/api/v1/jobs/batch", body, timestamp=ts)
    again = api.post("/api/v1/jobs/batch", body, timestamp=ts)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert db.session.query(Job).count() == 2


@pytest.mark.parametrize("app_config", [{"API_RATE_LIMIT_PER_MINUTE": 5}], indirect=True)
def test_a_batch_counts_its_items_against_the_rate_limit(api, app_config):
    if time.time() % 60 > 55:  # the limit's window is the minute: do not straddle its end
        time.sleep(61 - time.time() % 60)
    assert api.post("/api/v1/jobs/batch", {"jobs": [job(n) for n in range(3)]}).status_code == 202
    ts = int(time.time())
    refused = api.post("/api/v1/jobs/batch", {"jobs": [job(n) for n in range(3, 6)]}, timestamp=ts)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert db.session.query(Job).count() == 3
    assert api.post("/api/v1/jobs", job(9)).status_code == 202  # the refused batch counted nothing
    for key in queue.redis.scan_iter("opsdeck:rl:*"):  # the next minute
        queue.redis.delete(key)
    later = api.post("/api/v1/jobs/batch", {"jobs": [job(n) for n in range(3, 6)]}, timestamp=ts)
    assert later.status_code == 202 and "Idempotent-Replayed" not in later.headers  # a 429 is not kept
    too_big = api.post("/api/v1/jobs/batch", {"jobs": [job(n) for n in range(6)]})
    assert too_big.status_code == 422 and "rate limit" in too_big.get_json()["errors"]["jobs"][0]


def test_a_batch_is_accepted_while_redis_is_down_and_published_when_it_is_back(app, api, private_redis):
    app.config["REDIS_URL"] = private_redis.url
    queue.init_app(app)
    private_redis.stop()
    response = api.post("/api/v1/jobs/batch", {"jobs": [job(n) for n in range(4)]})
    assert response.status_code == 202
    db.session.expire_all()
    assert {j.status for j in db.session.query(Job)} == {"pending"}
    private_redis.start()
    assert outbox.relay() == 4
    db.session.expire_all()
    assert {j.status for j in db.session.query(Job)} == {"queued"}


def test_a_batch_of_events_fans_each_out_once(api, receiver):
    make_endpoint(api, receiver.url("/all"))
    make_endpoint(api, receiver.url("/refunds"), event_types=["invoice.refunded"])
    items = [
        {"type": "invoice.paid", "payload": {"n": 0}, "id": "ev-0"},
        {"type": "invoice.refunded", "payload": {"n": 1}},
        {"type": "invoice.paid", "payload": {"n": 2}, "id": "ev-0"},  # the first item's id again
    ]
    data = api.post("/api/v1/events/batch", {"events": items}).get_json()["data"]
    assert [d["replayed"] for d in data] == [False, False, True] and data[2]["id"] == data[0]["id"]
    assert data[2]["payload"] == {"n": 0}
    again = api.post("/api/v1/events/batch", {"events": [items[0]]}).get_json()["data"]
    assert again[0]["replayed"] is True and again[0]["id"] == data[0]["id"] and again[0]["payload"] == {"n": 0}
    assert db.session.query(Event).count() == 2
    deliveries = db.session.query(WebhookDelivery).all()
    by_event = sorted((d.event_id, d.endpoint_id) for d in deliveries)
    assert len(by_event) == 3 and len(set(by_event)) == 3  # paid → 1 endpoint, refunded → 2
    assert sorted(_published("webhooks")) == sorted(d.job_id for d in deliveries)


def test_an_invalid_event_refuses_its_batch(api, receiver):
    make_endpoint(api, receiver.url())
    response = api.post("/api/v1/events/batch", {"events": [{"type": "a.b", "payload": 1}, {"type": "", "payload": 2}]})
    assert response.status_code == 422 and set(response.get_json()["errors"]["events"]) == {"1"}
    assert db.session.query(Event).count() == 0 and db.session.query(WebhookDelivery).count() == 0


def test_a_full_batch_sent_again_is_answered_from_its_jobs(api):
    """A platform resubmits a whole list after a failure: every item is found by its key."""
    items = [job(n, idempotency_key=f"order-{n}") for n in range(1000)]
    first = api.post("/api/v1/jobs/batch", {"jobs": items}).get_json()["data"]
    again = api.post("/api/v1/jobs/batch", {"jobs": items})
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers  # a new request
    assert [d["id"] for d in again.get_json()["data"]] == [d["id"] for d in first]
    assert all(d["replayed"] for d in again.get_json()["data"])
    assert db.session.query(Job).count() == 1000


def test_overlapping_batches_at_once_make_each_job_once(app, api):
    """Batches sharing keys in opposite orders, at once: each key one job, every answer the
    same job for a key. (The keys go in sorted so that two such inserts cannot deadlock on
    PostgreSQL; this test does not make them interleave finely enough to prove that.)"""
    import threading

    keys = [f"k{n:03}" for n in range(300)]
    answers: dict[int, object] = {}

    def send(n: int) -> None:
        order = keys if n % 2 == 0 else keys[::-1]
        with app.app_context():
            answers[n] = api.post("/api/v1/jobs/batch", {"jobs": [job(n, idempotency_key=k) for k in order]})

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [answers[n].status_code for n in range(4)] == [202] * 4
    by_key = [{d["idempotency_key"]: d["id"] for d in answers[n].get_json()["data"]} for n in range(4)]
    assert all(ids == by_key[0] for ids in by_key)
    db.session.expire_all()
    assert db.session.query(Job).count() == 300
