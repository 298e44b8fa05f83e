"""Group commit of job submissions (app/api/grouped.py): concurrent requests' writes in one
transaction, each request's rows in or out together."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from dramatiq import Message

from app.api import grouped
from app.api.grouped import Outcome, Submission
from app.extensions import db, queue
from app.models import IdempotencyRecord, Job, SeenSignature
from app.models.base import utcnow
from app.services import idempotency, jobs
from tests.helpers import LOOPBACK, make_endpoint, post_event

JOB = {"type": "system.echo", "payload": {"message": "hi"}}


def _submission(app, tenant, n: int, *, digest: str | None = None, key: str | None = None) -> Submission:
    row = jobs.new_row("system.echo", {"message": f"m{n}"}, tenant_id=tenant.tenant_id)
    record = None
    if key is not None:
        claim = idempotency.Claim(tenant.tenant_id, key, f"hash-{n}")
        record = idempotency.new_record(claim, 202, {"id": row["id"]}, {})
    return Submission(digest or f"{n:064x}", record, {Job: [row]})


def _published(app) -> set[str]:
    return {Message.decode(raw).message_id for raw in queue.redis.hvals("dramatiq:default.msgs")}


def test_a_batch_keeps_each_requests_rows_together(app, tenant):
    """One batch: a new request, a replay of it, a signature recorded before, a twin by key and
    a key a record holds. Only the new request's job is written and published; every
    signature is recorded; each refusal writes nothing else."""
    db.session.add(SeenSignature(digest="e" * 64, seen_at=utcnow()))
    held = _submission(app, tenant, 9, key="held")
    assert grouped.write_batch([held]) == [Outcome.COMMITTED]

    fresh = _submission(app, tenant, 1, key="k1")
    replay = _submission(app, tenant, 2, digest=fresh.digest)
    seen = _submission(app, tenant, 3, digest="e" * 64, key="k3")
    twin = _submission(app, tenant, 4, key="k1")
    again = _submission(app, tenant, 5, key="held")
    outcomes = grouped.write_batch([fresh, replay, seen, twin, again])

    assert outcomes == [Outcome.COMMITTED, Outcome.REPLAYED, Outcome.REPLAYED, Outcome.KEY_HELD, Outcome.KEY_HELD]
    db.session.expire_all()
    assert {job.id for job in db.session.query(Job)} == {held.rows[Job][0]["id"], fresh.rows[Job][0]["id"]}
    assert {r.key: r.request_hash for r in db.session.query(IdempotencyRecord)} == {"held": "hash-9", "k1": "hash-1"}
    digests = {s.digest for s in db.session.query(SeenSignature)}
    assert {fresh.digest, twin.digest, again.digest, "e" * 64} <= digests
    assert _published(app) == {held.rows[Job][0]["id"], fresh.rows[Job][0]["id"]}


def test_a_bad_row_fails_only_its_own_request(app, tenant):
    """The batch is written again one request at a time: the others commit."""
    first = _submission(app, tenant, 1)
    assert grouped.write_batch([first]) == [Outcome.COMMITTED]
    good = _submission(app, tenant, 2, key="g")
    bad = _submission(app, tenant, 3)
    bad.rows[Job][0]["id"] = first.rows[Job][0]["id"]  # a primary key taken: the INSERT fails
    outcomes = grouped.write_batch([good, bad])
    assert outcomes[0] is Outcome.COMMITTED and isinstance(outcomes[1], Exception)
    db.session.expire_all()
    assert db.session.get(Job, good.rows[Job][0]["id"]) is not None
    assert db.session.query(Job).count() == 2
    assert db.session.get(SeenSignature, bad.digest) is None  # nothing of the failed request is kept


def test_concurrent_submissions_commit_together(app, api, monkeypatch):
    """Requests that arrive while a batch is written go in the next batch, together: each gets
    its own job once, repeats by Idempotency-Key get the first answer, all are published. (The
    key is new, so each request also records its last use first: none may hold SQLite's write
    lock while it waits for its turn.)"""
    sizes: list[int] = []
    run = grouped._combiner.run

    def first_batch_waits_for_the_others(items):
        if not sizes:  # hold the turn until every other request queued behind it
            deadline = time.monotonic() + 10
            while len(grouped._combiner._waiting) < 11 and time.monotonic() < deadline:
                time.sleep(0.005)
        sizes.append(len(items))
        return run(items)

    monkeypatch.setattr(grouped._combiner, "run", first_batch_waits_for_the_others)
    results: dict[int, object] = {}

    def send(n: int) -> None:
        with app.app_context():
            key = f"twin-{n % 2}" if n >= 8 else f"key-{n}"
            results[n] = api.post(
                "/api/v1/jobs", {**JOB, "payload": {"message": key}}, headers={"Idempotency-Key": key}
            )

    threads = [threading.Thread(target=send, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sizes[0] == 1 and max(sizes) > 1, sizes
    assert sum(sizes) == 12
    assert all(r.status_code == 202 for r in results.values())
    ids = {n: r.get_json()["id"] for n, r in results.items()}
    assert len(set(ids.values())) == 10  # 8 keys and 2 twin keys, each one job
    assert ids[8] == ids[10] and ids[9] == ids[11]
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in results.values()) == 2
    db.session.expire_all()
    assert {job.id for job in db.session.query(Job)} == set(ids.values()) == _published(app)


def test_an_expired_record_gives_its_key_to_a_new_request(api):
    first = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "old"}).get_json()["id"]
    db.session.query(IdempotencyRecord).update({"expires_at": utcnow() - timedelta(seconds=1)})
    db.session.commit()
    again = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "old"})
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != first
    db.session.expire_all()
    record = db.session.query(IdempotencyRecord).one()
    assert record.response_body["id"] == again.get_json()["id"] and record.expires_at > utcnow()


def test_a_repeat_that_now_fails_validation_still_gets_the_first_answer(api, app):
    """Without a lookup before the view, a repeat runs the view again: when it refuses the
    request now (its family switched off since), the stored answer is still the answer."""
    first = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "once"})
    app.config["OPSDECK_DISABLED_FAMILIES"] = ["system"]
    try:
        again = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "once"})
    finally:
        app.config["OPSDECK_DISABLED_FAMILIES"] = []
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()


@pytest.mark.parametrize("body", [{**JOB, "payload": {"message": "other"}}, {"type": "nope"}])
def test_a_key_used_with_another_body_is_422(api, body):
    api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "k"})
    response = api.post("/api/v1/jobs", body, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422 and response.get_json()["title"] == "Idempotency key reused"
    assert db.session.query(Job).count() == 1


@pytest.mark.parametrize("app_config", [dict(LOOPBACK)])
def test_events_and_jobs_share_a_batch(app, api, receiver, monkeypatch, app_config):
    """Events (each with its deliveries and their jobs) and jobs from concurrent requests go in
    one transaction, parents first; an event with the platform's own id is written alone (its
    dedupe looks the id up first), outside the batches."""
    from app.models import Event, WebhookDelivery

    make_endpoint(api, receiver.url("/a"))
    make_endpoint(api, receiver.url("/b"))
    sizes: list[int] = []
    run = grouped._combiner.run

    def first_batch_waits_for_the_others(items):
        if not sizes:
            deadline = time.monotonic() + 10
            while len(grouped._combiner._waiting) < 5 and time.monotonic() < deadline:
                time.sleep(0.005)
        sizes.append(len(items))
        return run(items)

    monkeypatch.setattr(grouped._combiner, "run", first_batch_waits_for_the_others)
    results: dict[int, object] = {}

    def send(n: int) -> None:
        with app.app_context():
            if n == 6:
                results[n] = post_event(api, "invoice.paid", {"n": n}, id="order-6")
            elif n % 2:
                results[n] = post_event(api, "invoice.paid", {"n": n})
            else:
                results[n] = api.post("/api/v1/jobs", {**JOB, "payload": {"message": f"j{n}"}})

    threads = [threading.Thread(target=send, args=(n,)) for n in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sizes[0] == 1 and sum(sizes) == 6 and max(sizes) > 1, sizes
    assert all(r.status_code == 202 for r in results.values())
    event_ids = {results[n].get_json()["id"] for n in (1, 3, 5, 6)}
    assert results[6].get_json()["client_id"] == "order-6" and results[1].get_json()["payload"] == {"n": 1}
    db.session.expire_all()
    assert {e.id for e in db.session.query(Event)} == event_ids
    deliveries = db.session.query(WebhookDelivery).all()
    assert len(deliveries) == 8 and {d.event_id for d in deliveries} == event_ids
    queued = {Message.decode(raw).message_id for raw in queue.redis.hvals("dramatiq:webhooks.msgs")}
    assert queued == {d.job_id for d in deliveries}
    assert db.session.query(Job).count() == 3 + 8
