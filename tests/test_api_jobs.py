"""/api/v1/jobs: submission, validation, reading, isolation, cancel/retry, idempotency, limits."""

from __future__ import annotations

import threading

import pytest

from app.extensions import db
from app.models import IdempotencyRecord, Job

JOB = {"type": "system.echo", "payload": {"message": "hi"}}


def test_submit_returns_202_with_location_and_a_pending_or_queued_job(api):
    response = api.post("/api/v1/jobs", {**JOB, "priority": "high", "max_attempts": 5})
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert body["type"] == "system.echo" and body["queue"] == "default_high"
    assert body["status"] in {"pending", "queued"} and body["attempts"] == 0
    job = db.session.get(Job, body["id"])
    assert job.payload == {"message": "hi", "sleep_seconds": 0, "fail": False}
    assert job.max_attempts == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "nope.never", "payload": {}}, "type"),
        # Internal types are not the tenant's to submit: a bulk action could touch every tenant's jobs.
        ({"type": "jobs.bulk", "payload": {"action": "cancel", "filter": {"all_tenants": True}, "actor": "x"}}, "type"),
        ({"payload": {}}, "type"),
        ({"type": "system.echo", "payload": {"sleep_seconds": 61}}, "payload"),
        ({"type": "system.echo", "payload": {"unknown": 1}}, "payload"),
        ({"type": "system.echo", "priority": "urgent"}, "priority"),
        ({"type": "system.echo", "max_attempts": 0}, "max_attempts"),
        ({"type": "system.echo", "max_attempts": 1000}, "max_attempts"),
        ({"type": "system.echo", "delay_seconds": -1}, "delay_seconds"),
        ({"type": "system.echo", "payload": "text"}, "payload"),
    ],
)
def test_bad_input_is_422_with_field_errors_and_writes_nothing(api, body, field):
    response = api.post("/api/v1/jobs", body)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert db.session.query(Job).count() == 0


def test_malformed_json_and_non_object_bodies(api):
    assert api.post("/api/v1/jobs", data=b"{not json").status_code == 400
    assert api.post("/api/v1/jobs", data=b"[1, 2]").status_code == 422
    response = api.post("/api/v1/jobs", data=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415 and response.mimetype == "application/problem+json"


def test_oversized_body_is_413_problem(app, api):
    big = {"type": "system.echo", "payload": {"message": "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)}}
    response = api.post("/api/v1/jobs", big)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


def test_unknown_route_is_problem_json(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_get_and_list_with_cursor_pagination(api):
    ids = [api.post("/api/v1/jobs", JOB).get_json()["id"] for _ in range(5)]
    assert api.get(f"/api/v1/jobs/{ids[0]}").get_json()["id"] == ids[0]
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert api.get("/api/v1/jobs?cursor=garbage").status_code == 422
    assert api.get("/api/v1/jobs?status=bogus").status_code == 422
    assert api.get("/api/v1/jobs?limit=0").status_code == 422


def test_list_by_text_in_the_payload(api, other_api):
    """The admin's text search, in the API: the tenant's own jobs whose payload has the text."""
    wanted = api.post("/api/v1/jobs", {**JOB, "payload": {"message": "Order ORD-7781"}}).get_json()["id"]
    api.post("/api/v1/jobs", JOB)
    other_api.post("/api/v1/jobs", {**JOB, "payload": {"message": "ord-7781 too"}})
    found = api.get("/api/v1/jobs?text=ord-77").get_json()["data"]
    assert [j["id"] for j in found] == [wanted]
    short = api.get("/api/v1/jobs?text=or")
    assert short.status_code == 422 and "text" in short.get_json()["errors"]


def test_another_tenants_job_is_404(api, other_api):
    job_id = api.post("/api/v1/jobs", JOB).get_json()["id"]
    for response in (
        other_api.get(f"/api/v1/jobs/{job_id}"),
        other_api.post(f"/api/v1/jobs/{job_id}/cancel"),
        other_api.post(f"/api/v1/jobs/{job_id}/retry"),
    ):
        assert response.status_code == 404
    assert other_api.get("/api/v1/jobs").get_json()["data"] == []


def test_cancel_then_retry_semantics(api):
    job_id = api.post("/api/v1/jobs", JOB).get_json()["id"]
    assert api.post(f"/api/v1/jobs/{job_id}/retry").status_code == 409  # not dead/cancelled yet
    response = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409  # already finished
    response = api.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 202 and response.get_json()["status"] in {"pending", "queued"}
    from app.models import AuditEntry

    entries = db.session.query(AuditEntry).filter(AuditEntry.action.in_(["job.cancel", "job.retry"])).all()
    assert {(e.actor.startswith("key:"), e.ip) for e in entries} == {(True, "127.0.0.1")}


@pytest.mark.parametrize("status", ["running", "succeeded", "dead"])
def test_cannot_cancel_running_or_finished(api, status):
    job_id = api.post("/api/v1/jobs", JOB).get_json()["id"]
    db.session.get(Job, job_id).status = status
    db.session.commit()
    response = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409 and "only pending" in response.get_json()["detail"]


def test_idempotent_repeat_replays_the_first_response(api):
    first = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "order-1"})
    again = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert db.session.query(Job).count() == 1


def test_idempotency_key_with_another_body_is_422(api):
    api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "k"})
    response = api.post("/api/v1/jobs", {**JOB, "payload": {"message": "other"}}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422 and response.get_json()["title"] == "Idempotency key reused"
    assert db.session.query(Job).count() == 1


def test_the_same_signed_request_again_gets_the_first_answer(api, monkeypatch):
    """A client's automatic retry re-sends the same signed request: with or without an
    Idempotency-Key it is answered as the first time (202, marked replayed), and no second job
    is made. Without a key the view does not even run again."""
    import time

    from app.services import jobs

    submitted = []
    real_new_row = jobs.new_row
    monkeypatch.setattr(jobs, "new_row", lambda *a, **k: submitted.append(a) or real_new_row(*a, **k))
    for headers in ({"Idempotency-Key": "retried"}, {}):
        ts = int(time.time()) - 10 * len(submitted)
        first = api.post("/api/v1/jobs", JOB, headers=headers, timestamp=ts)
        assert first.status_code == 202
        ran = len(submitted)
        again = api.post("/api/v1/jobs", JOB, headers=headers, timestamp=ts)
        assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
        assert again.get_json() == first.get_json() and again.headers["Location"] == first.headers["Location"]
        assert len(submitted) == ran + (1 if headers else 0)
    assert db.session.query(Job).count() == 2


def test_a_refused_write_sent_again_is_refused_again_from_its_record(api):
    """A write refused by validation creates nothing; the same signed request again gets the
    same 422, replayed from the first answer."""
    import time

    ts = int(time.time())
    first = api.post("/api/v1/jobs", {"type": "nope"}, timestamp=ts)
    again = api.post("/api/v1/jobs", {"type": "nope"}, timestamp=ts)
    assert first.status_code == again.status_code == 422 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json() and again.mimetype == "application/problem+json"
    assert db.session.query(Job).count() == 0


def test_a_twin_that_loses_the_race_answers_with_the_winners_response(api, monkeypatch):
    """Two cancels with one key: the second looked its key up before the first committed, then
    found the job cancelled (409). It answers with the first's stored response instead."""
    from app.services import idempotency

    job_id = api.post("/api/v1/jobs", JOB).get_json()["id"]
    first = api.post(f"/api/v1/jobs/{job_id}/cancel", headers={"Idempotency-Key": "stop"})
    assert first.status_code == 200
    real = idempotency.lookup
    calls = []

    def lookup_before_the_twin_committed(claim):
        calls.append(claim.key)
        if len(calls) == 1:
            return claim
        return real(claim)

    monkeypatch.setattr(idempotency, "lookup", lookup_before_the_twin_committed)
    second = api.post(f"/api/v1/jobs/{job_id}/cancel", headers={"Idempotency-Key": "stop"})
    assert len(calls) == 2
    assert second.status_code == 200 and second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()


def test_idempotency_keys_are_per_tenant(api, other_api):
    a = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "same"}).get_json()["id"]
    b = other_api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "same"}).get_json()["id"]
    assert a != b


def test_refused_request_releases_its_key(api):
    """Like Stripe: a request refused before doing anything (validation, conflict) stores no
    result, so the client can correct it and send it again under the same key."""
    bad = {"type": "nope"}
    assert api.post("/api/v1/jobs", bad, headers={"Idempotency-Key": "k2"}).status_code == 422
    assert db.session.query(IdempotencyRecord).filter_by(key="k2").count() == 0
    fixed = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "k2"})
    assert fixed.status_code == 202 and "Idempotent-Replayed" not in fixed.headers
    assert db.session.query(IdempotencyRecord).filter_by(key="k2", response_status=202).count() == 1


def test_concurrent_repeats_create_one_job(app, api):
    """Ten threads race with one key: one job, and every answer is that job (the first, or a
    replay of it: a request that lost the race rolls its own job back)."""
    results = []

    def send():
        with app.app_context():
            results.append(api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.session.expire_all()
    assert db.session.query(Job).count() == 1
    job_id = db.session.query(Job).one().id
    assert len(results) == 10
    for response in results:
        assert response.status_code == 202 and response.get_json()["id"] == job_id
    assert sum("Idempotent-Replayed" not in response.headers for response in results) == 1


@pytest.mark.parametrize("app_config", [{"API_RATE_LIMIT_PER_MINUTE": 3}])
def test_rate_limit_is_429_with_retry_after(api, app_config):
    import time

    if time.time() % 60 > 55:  # the limit's window is the minute: do not straddle its end
        time.sleep(61 - time.time() % 60)
    codes = [api.get("/api/v1/jobs").status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200]
    response = api.get("/api/v1/jobs")
    assert response.status_code == 429 and 1 <= int(response.headers["Retry-After"]) <= 61
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("app_config", [{"OPSDECK_DISABLED_FAMILIES": ["system"]}])
def test_disabled_family_refuses_its_job_types(api, app_config):
    response = api.post("/api/v1/jobs", JOB)
    assert response.status_code == 422 and "disabled" in response.get_json()["errors"]["type"][0]


def test_expired_idempotency_keys_are_pruned_and_can_be_reused(api):
    from datetime import timedelta

    from app.models.base import utcnow
    from app.services.jobs import maintenance

    first = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "old"}).get_json()["id"]
    db.session.query(IdempotencyRecord).update({"expires_at": utcnow() - timedelta(seconds=1)})
    db.session.commit()
    assert maintenance.prune_expired() == {"idempotency_records": 1}
    second = api.post("/api/v1/jobs", JOB, headers={"Idempotency-Key": "old"}).get_json()["id"]
    assert second != first
