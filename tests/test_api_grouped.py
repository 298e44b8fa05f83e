"""Group commit (app/api/grouped.py): concurrent requests' writes in one transaction, each
request's rows in or out together."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from dramatiq import Message
from flask import Response

from app.api import grouped
from app.api.grouped import Outcome, Pending, Submission
from app.extensions import db, queue
from app.models import Event, IdempotencyRecord, Job, WebhookDelivery
from app.models.base import utcnow
from app.services import idempotency, jobs
from tests.helpers import LOOPBACK, make_endpoint, post_event

JOB = {"type": "system.echo", "payload": {"message": "hi"}}


@pytest.fixture
def app_config(request, database_url):
    """Parametrized (indirect) with settings; `small_pool`: two connections per process and a
    3 s wait for one."""
    from app.config import _engine_options, _normalise_db_url

    config = dict(getattr(request, "param", {}))
    if config.pop("small_pool", False):
        options = _engine_options(_normalise_db_url(database_url))
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "pool_size": 2, "max_overflow": 0, "pool_timeout": 3}
    return config


def _submission(app, tenant, n: int, *, digest: str | None = None, key: str | None = None) -> Submission:
    """A job submission keyed by its Idempotency-Key, or else by its signature's digest."""
    row = jobs.new_row("system.echo", {"message": f"m{n}"}, tenant_id=tenant.tenant_id)
    if key is not None:
        claim = idempotency.Claim(tenant.tenant_id, key, f"hash-{n}")
    else:
        claim = idempotency.signature_claim(tenant.tenant_id, digest or f"{n:064x}", f"hash-{n}", timedelta(minutes=10))
    pending = Pending(jobs.submit_many, [row], lambda written: Response(status=202))
    return Submission(idempotency.new_record(claim, 202, {"id": row["id"]}, {}), pending)


def _jobs(*subs: Submission) -> set[str]:
    return {sub.pending.rows[0]["id"] for sub in subs}


def _outcomes(results: list) -> list:
    """Each submission's outcome, or the error it got."""
    return [r if isinstance(r, Exception) else r.outcome for r in results]


def _published(queue_name: str = "default") -> list[str]:
    return [Message.decode(raw).message_id for raw in queue.redis.hvals(f"dramatiq:{queue_name}.msgs")]


def _hold_first_batch(monkeypatch, others: int) -> list[int]:
    """The first batch keeps the turn until `others` requests wait behind it, so that they go
    in one batch whatever the threads' timing. Returns the batches' sizes as they run."""
    sizes: list[int] = []
    run = grouped._combiner.run

    def first_batch_waits_for_the_others(items):
        if not sizes:
            deadline = time.monotonic() + 10
            while len(grouped._combiner._waiting) < others and time.monotonic() < deadline:
                time.sleep(0.005)
        sizes.append(len(items))
        return run(items)

    monkeypatch.setattr(grouped._combiner, "run", first_batch_waits_for_the_others)
    return sizes


def _concurrently(app, send, n: int) -> dict[int, object]:
    """`send(i)` for i in range(n), each in a thread of its own; their answers by i."""
    results: dict[int, object] = {}

    def one(i: int) -> None:
        with app.app_context():
            results[i] = send(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_a_batch_keeps_each_requests_rows_together(app, tenant):
    """One batch: new requests with and without an Idempotency-Key, the same signed request
    twice, one whose signature a record holds, a twin by key and a key a record holds. Only the
    new requests' jobs are written and published; each other request writes nothing."""
    earlier, held = _submission(app, tenant, 8), _submission(app, tenant, 9, key="held")
    assert _outcomes(grouped.write_batch([earlier, held])) == [Outcome.COMMITTED] * 2

    fresh, unkeyed = _submission(app, tenant, 1, key="k1"), _submission(app, tenant, 2)
    resent = _submission(app, tenant, 3, digest=f"{2:064x}")  # `unkeyed` again, in its batch
    seen = _submission(app, tenant, 4, digest=f"{8:064x}")  # `earlier` again
    twin = _submission(app, tenant, 5, key="k1")
    again = _submission(app, tenant, 6, key="held")
    outcomes = _outcomes(grouped.write_batch([fresh, unkeyed, resent, seen, twin, again]))

    assert outcomes == [Outcome.COMMITTED] * 2 + [Outcome.KEY_HELD] * 4
    db.session.expire_all()
    assert {job.id for job in db.session.query(Job)} == _jobs(earlier, held, fresh, unkeyed)
    records = {r.key: r.response_body["id"] for r in db.session.query(IdempotencyRecord)}
    assert records == {sub.record["key"]: sub.pending.rows[0]["id"] for sub in (earlier, held, fresh, unkeyed)}
    assert sorted(_published()) == sorted(_jobs(earlier, held, fresh, unkeyed))


def test_a_bad_row_fails_only_its_own_request(app, tenant):
    """The batch is written again one request at a time: the others commit, once."""
    first = _submission(app, tenant, 1)
    assert _outcomes(grouped.write_batch([first])) == [Outcome.COMMITTED]
    good = _submission(app, tenant, 2, key="g")
    bad = _submission(app, tenant, 3)
    bad.pending.rows[0]["id"] = first.pending.rows[0]["id"]  # a primary key taken: the INSERT fails
    outcomes = _outcomes(grouped.write_batch([good, bad]))
    assert outcomes[0] is Outcome.COMMITTED and isinstance(outcomes[1], Exception)
    db.session.expire_all()
    assert db.session.get(Job, good.pending.rows[0]["id"]) is not None
    assert db.session.query(Job).count() == 2
    assert db.session.query(IdempotencyRecord).filter_by(key="g").count() == 1
    assert db.session.query(IdempotencyRecord).filter_by(key=bad.record["key"]).count() == 0  # nothing of it kept
    assert sorted(_published()) == sorted([first.pending.rows[0]["id"], good.pending.rows[0]["id"]])


def test_a_failed_commit_fails_every_request_of_its_batch(app, tenant, monkeypatch):
    """A COMMIT that raises may have gone through (a connection lost at that moment): written
    again, each request would find its own record and answer from it, for a job it could not
    tell exists. Each gets the error instead (500), and a retry with its Idempotency-Key finds
    its record."""
    session_class = type(db.session())
    real_commit = session_class.commit
    calls = []

    def commit_then_fail(self):
        real_commit(self)
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("connection lost after COMMIT")

    monkeypatch.setattr(session_class, "commit", commit_then_fail)
    one, two = _submission(app, tenant, 1, key="a"), _submission(app, tenant, 2, key="b")
    outcomes = grouped.write_batch([one, two])
    assert all(isinstance(o, ConnectionError) for o in outcomes), outcomes
    db.session.expire_all()
    assert db.session.query(Job).count() == 2
    assert _outcomes(grouped.write_batch([_submission(app, tenant, 3, key="a")])) == [Outcome.KEY_HELD]


def test_concurrent_submissions_commit_together(app, api, monkeypatch):
    """Requests that arrive while a batch is written go in the next batch, together: each gets
    its own job once, repeats by Idempotency-Key get the first answer, all are published. (The
    key is new, so each request also records its last use first.)"""
    sizes = _hold_first_batch(monkeypatch, 11)

    def send(n: int) -> object:
        key = f"twin-{n % 2}" if n >= 8 else f"key-{n}"
        return api.post("/api/v1/jobs", {**JOB, "payload": {"message": key}}, headers={"Idempotency-Key": key})

    results = _concurrently(app, send, 12)

    assert sizes == [1, 11], sizes
    assert all(r.status_code == 202 for r in results.values())
    ids = {n: r.get_json()["id"] for n, r in results.items()}
    assert len(set(ids.values())) == 10  # 8 keys and 2 twin keys, each one job
    assert ids[8] == ids[10] and ids[9] == ids[11]
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in results.values()) == 2
    db.session.expire_all()
    assert {job.id for job in db.session.query(Job)} == set(ids.values())
    assert sorted(_published()) == sorted(set(ids.values()))


def test_repeats_and_twins_inside_one_batch(app, api, monkeypatch):
    """The same signed request twice, and one Idempotency-Key with two bodies, all in one batch
    (none recorded before it, so only the batch can tell): two 202s with one job, the second
    marked replayed; one 202 and one 422. Neither repeat nor refusal leaves a job."""
    sizes = _hold_first_batch(monkeypatch, 4)
    ts = int(time.time())

    def send(n: int) -> object:
        if n == 0:
            return api.post("/api/v1/jobs", JOB)
        if n in (1, 2):  # one signed request, sent twice
            return api.post("/api/v1/jobs", {**JOB, "payload": {"message": "same"}}, timestamp=ts)
        body = {**JOB, "payload": {"message": f"body {n}"}}
        return api.post("/api/v1/jobs", body, headers={"Idempotency-Key": "one-key"}, timestamp=ts - n)

    results = _concurrently(app, send, 5)

    assert sizes == [1, 4], sizes
    assert [results[n].status_code for n in (1, 2)] == [202, 202]
    assert results[1].get_json() == results[2].get_json()
    assert sorted(results[n].headers.get("Idempotent-Replayed", "") for n in (1, 2)) == ["", "true"]
    assert sorted(results[n].status_code for n in (3, 4)) == [202, 422]
    refused = next(results[n] for n in (3, 4) if results[n].status_code == 422)
    assert refused.get_json()["title"] == "Idempotency key reused"
    db.session.expire_all()
    assert db.session.query(Job).count() == 3


@pytest.mark.parametrize("app_config", [LOOPBACK], indirect=True)
def test_events_and_jobs_share_a_batch(app, api, receiver, monkeypatch, app_config):
    """Events (each with its deliveries and their jobs), one with the platform's own id, and
    jobs from concurrent requests go in one transaction, parents first."""
    make_endpoint(api, receiver.url("/a"))
    make_endpoint(api, receiver.url("/b"))
    sizes = _hold_first_batch(monkeypatch, 6)

    def send(n: int) -> object:
        if n == 6:
            return post_event(api, "invoice.paid", {"n": n}, id="order-6")
        if n % 2:
            return post_event(api, "invoice.paid", {"n": n})
        return api.post("/api/v1/jobs", {**JOB, "payload": {"message": f"j{n}"}})

    results = _concurrently(app, send, 7)

    assert sizes == [1, 6], sizes
    assert all(r.status_code == 202 for r in results.values())
    event_ids = {results[n].get_json()["id"] for n in (1, 3, 5, 6)}
    assert results[6].get_json()["client_id"] == "order-6" and results[1].get_json()["payload"] == {"n": 1}
    db.session.expire_all()
    assert {e.id for e in db.session.query(Event)} == event_ids
    deliveries = db.session.query(WebhookDelivery).all()
    assert len(deliveries) == 8 and {d.event_id for d in deliveries} == event_ids
    assert sorted(_published("webhooks")) == sorted(d.job_id for d in deliveries)
    assert db.session.query(Job).count() == 3 + 8


@pytest.mark.parametrize("app_config", [{**LOOPBACK, "small_pool": True}], indirect=True)
def test_no_request_holds_two_connections(app, api, receiver, monkeypatch, app_config):
    """With two connections per process, concurrent events on a key's first use in a minute
    (each records the key's last use, then reads its subscribers) all get in. The key's last
    use was written in the request's transaction, which kept its connection and a lock on the
    key's row while it asked for a second connection: the pool ran dry (a 500 after 3 s)."""
    make_endpoint(api, receiver.url("/a"))
    from app.models import ApiKey

    db.session.query(ApiKey).update({"last_used_at": None})
    db.session.commit()
    results = _concurrently(app, lambda n: post_event(api, "invoice.paid", {"n": n}), 6)
    assert sorted(r.status_code for r in results.values()) == [202] * 6


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


def test_a_key_used_with_a_body_the_view_refuses_is_still_422_reused(api):
    """The view runs before the key is looked up and refuses the body; the key's record is what
    answers (test_api_jobs covers another valid body)."""
    api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "k"})
    response = api.post("/api/v1/jobs", {"type": "nope"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422 and response.get_json()["title"] == "Idempotency key reused"
    assert db.session.query(Job).count() == 1


def test_an_event_repeated_with_its_idempotency_key_is_replayed(api):
    event = {"type": "invoice.paid", "payload": {"n": 1}}
    first = api.post("/api/v1/events", event, headers={"Idempotency-Key": "ev-1"})
    again = api.post("/api/v1/events", event, headers={"Idempotency-Key": "ev-1"})
    assert first.status_code == again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json() and db.session.query(Event).count() == 1


def _after_a_lone_first(app, api, monkeypatch, send, n: int) -> dict[int, object]:
    """An unrelated job alone in the first batch, holding the turn until the `n` requests
    `send(i)` all wait: they go in one batch together."""
    _hold_first_batch(monkeypatch, n)
    first = threading.Thread(target=lambda: _concurrently(app, lambda _: api.post("/api/v1/jobs", JOB), 1))
    first.start()
    deadline = time.monotonic() + 10
    while not grouped._combiner._turn.locked() and time.monotonic() < deadline:
        time.sleep(0.002)
    results = _concurrently(app, send, n)
    first.join()
    return results


def test_a_platform_key_held_in_the_same_batch_is_answered_after_the_write(app, api, monkeypatch):
    """In one batch, three requests with one job `idempotency_key` and one with a key a
    committed job holds: one new job; the first of the three 202, the others 200 with that job
    (held by a row of the same INSERT), the fourth 200 with the committed job. Each request's
    record holds its own answer, which a repeat gets back."""
    held = api.post("/api/v1/jobs", {**JOB, "idempotency_key": "order-1"}).get_json()

    def send(n: int, **extra) -> object:
        key = "order-1" if n == 3 else "order-2"
        body = {**JOB, "payload": {"message": f"m{n}"}, "idempotency_key": key}
        return api.post("/api/v1/jobs", body, headers={"Idempotency-Key": f"k{n}"}, **extra)

    results = _after_a_lone_first(app, api, monkeypatch, send, 4)

    assert sorted(results[n].status_code for n in range(3)) == [200, 200, 202]
    new = next(results[n].get_json() for n in range(3) if results[n].status_code == 202)
    assert {results[n].get_json()["id"] for n in range(3)} == {new["id"]}
    assert results[3].status_code == 200 and results[3].get_json() == held
    db.session.expire_all()
    assert db.session.query(Job).filter(Job.idempotency_key.is_not(None)).count() == 2
    records = Counter((r.response_body["id"], r.response_status) for r in db.session.query(IdempotencyRecord))
    assert records[(new["id"], 202)] == 1 and records[(new["id"], 200)] == 2 and records[(held["id"], 200)] == 1
    replayed = next(n for n in range(3) if results[n].status_code == 200)
    again = send(replayed)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == results[replayed].get_json()


@pytest.mark.parametrize("app_config", [LOOPBACK], indirect=True)
def test_an_events_own_id_held_in_the_same_batch_is_answered_with_the_first_event(
    app, api, receiver, monkeypatch, app_config
):
    """Three requests with one event id in one batch: one event, one fan-out; the first 202, the
    others 200 with its payload (read from the row written just before theirs)."""
    make_endpoint(api, receiver.url("/a"))
    results = _after_a_lone_first(
        app, api, monkeypatch, lambda n: post_event(api, "invoice.paid", {"n": n}, id="order-9"), 3
    )

    by_status = sorted((r.status_code, r.get_json()["payload"]["n"]) for r in results.values())
    first = next(n for code, n in by_status if code == 202)
    assert [code for code, _ in by_status] == [200, 200, 202] and {n for _, n in by_status} == {first}
    db.session.expire_all()
    assert db.session.query(Event).count() == 1 and db.session.query(WebhookDelivery).count() == 1


def test_bulk_calls_share_a_batch_with_single_submissions(app, api, monkeypatch):
    """A bulk call is one submission among the others of its batch: its items in or out together."""
    sizes = _hold_first_batch(monkeypatch, 3)

    def send(n: int) -> object:
        if n == 1:
            return api.post("/api/v1/jobs/batch", {"jobs": [JOB, JOB, {**JOB, "idempotency_key": "b"}]})
        return api.post("/api/v1/jobs", {**JOB, "payload": {"message": f"m{n}"}})

    results = _concurrently(app, send, 4)

    assert sizes == [1, 3], sizes
    assert all(r.status_code == 202 for r in results.values())
    assert [item["replayed"] for item in results[1].get_json()["data"]] == [False] * 3
    db.session.expire_all()
    assert db.session.query(Job).count() == 6 and sorted(_published()) == sorted(j.id for j in db.session.query(Job))
