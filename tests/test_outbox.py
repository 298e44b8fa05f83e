"""The outbox: published only after commit, nothing lost while Redis is down."""

from __future__ import annotations

import pytest
from dramatiq import Message

from app.extensions import db, queue
from app.models import Job
from app.services import jobs
from app.services.jobs import outbox
from tests.helpers import job_row, submit, wait_for_status


def _queued_messages(queue_name: str = "default") -> int:
    return queue.broker.do_qsize(queue_name)


def test_job_is_published_only_after_commit(app):
    job = jobs.submit("system.echo", {"message": "x"})
    db.session.flush()
    assert _queued_messages() == 0  # in the transaction, not yet in Redis
    db.session.commit()
    assert _queued_messages() == 1
    row = job_row(job.id)
    assert row.status == "pending" and row.published_at is None  # no second database write


def test_a_misspelt_submit_option_is_refused_and_adds_nothing(app):
    with pytest.raises(TypeError, match="priorty"):
        jobs.submit("system.echo", {"message": "x"}, priorty="high")  # type: ignore[call-arg]
    db.session.commit()
    assert _queued_messages() == 0


@pytest.mark.parametrize("app_config", [{"OUTBOX_GRACE_SECONDS": 0}])
def test_relay_confirms_published_jobs_without_sending_them_again(app, app_config):
    job_id = submit(payload={"message": "x"})
    assert outbox.relay() == 0  # its marker vouches for it
    row = job_row(job_id)
    assert row.status == "queued" and row.published_at is not None
    assert _queued_messages() == 1


@pytest.mark.parametrize("app_config", [{"OUTBOX_GRACE_SECONDS": 0}])
def test_relay_publishes_again_what_redis_lost(app, app_config):
    job_id = submit(payload={"message": "x"})
    queue.redis.flushall()  # Redis restarted without its data: message and marker are gone
    assert outbox.relay() == 1
    assert job_row(job_id).status == "queued" and _queued_messages() == 1


@pytest.mark.parametrize("app_config", [{"OUTBOX_GRACE_SECONDS": 0}])
def test_jobs_already_queued_go_out_again_when_redis_comes_back_empty(app, app_config):
    from app.services.jobs import maintenance

    first, second = submit(payload={"message": "a"}), submit(payload={"message": "b"})
    maintenance.relay_tick()  # confirms them `queued` (and sets Redis's epoch)
    assert {job_row(first).status, job_row(second).status} == {"queued"}
    assert maintenance.relay_tick()["lost_in_redis"] == 0  # nothing lost: nothing sent twice
    queue.redis.flushall()  # Redis restarted without persistence: both messages are gone
    assert _queued_messages() == 0
    tick = maintenance.relay_tick()
    assert tick["lost_in_redis"] == 2 and tick["published"] == 2
    assert _queued_messages() == 2 and {job_row(first).status, job_row(second).status} == {"queued"}
    assert maintenance.relay_tick()["lost_in_redis"] == 0


@pytest.mark.parametrize("app_config", [{"OUTBOX_GRACE_SECONDS": 0}])
def test_jobs_queued_in_the_old_masters_last_moments_go_out_again_after_a_failover(app, app_config):
    """A replica promoted by Sentinel may lack the old master's last writes: jobs confirmed
    `queued` since shortly before the old server was last seen are sent again; older ones, whose
    messages were replicated long since, are not."""
    from datetime import timedelta

    from app.models.base import utcnow
    from app.services.jobs import maintenance

    recent, old = submit(payload={"message": "recent"}), submit(payload={"message": "old"})
    retried = submit(payload={"message": "retried"})
    maintenance.relay_tick()  # all confirmed `queued`; the relay notes the server it saw
    db.session.query(Job).filter_by(id=old).update({"published_at": utcnow() - timedelta(minutes=10)})
    # a retry a worker published itself (in the old master's last moments too)
    db.session.query(Job).filter_by(id=retried).update({"status": "retrying", "next_attempt_at": utcnow()})
    db.session.commit()
    assert maintenance.relay_tick()["lost_in_redis"] == 0  # the same server: nothing sent again
    # The promoted replica: it knew the old master (and the relay's last sighting of it) but
    # not the last writes, the recent job's message and marker.
    seen_at = queue.redis.get(outbox._MASTER).decode().split()[1]
    queue.redis.set(outbox._MASTER, f"the-old-master {seen_at}")
    queue.redis.delete("dramatiq:default", "dramatiq:default.msgs", outbox._MARKER.format(recent))
    tick = maintenance.relay_tick()
    assert tick["lost_in_redis"] == 2 and tick["published"] == 2
    sent = sorted(Message.decode(m).args[0] for m in queue.redis.hvals("dramatiq:default.msgs"))
    assert sent == sorted([recent, retried])
    assert job_row(recent).status == "queued" and maintenance.relay_tick()["lost_in_redis"] == 0


@pytest.mark.parametrize("app_config", [{"OUTBOX_GRACE_SECONDS": 0}])
def test_a_relay_that_published_to_the_old_master_after_the_change_was_noted_sends_again(app, app_config):
    """A manual failover: another host's relay has already noted the new server in Redis while
    this one still published to the old master; its own memory of that server covers it."""
    from app.services.jobs import maintenance

    job_id = submit(payload={"message": "late"})
    maintenance.relay_tick()  # confirmed `queued` (by its marker): the relay notes the server
    app.extensions[outbox._LAST_SEEN] = ("the-old-master", app.extensions[outbox._LAST_SEEN][1])
    queue.redis.delete("dramatiq:default", "dramatiq:default.msgs", outbox._MARKER.format(job_id))
    tick = maintenance.relay_tick()  # the key in Redis names this server already
    assert tick["lost_in_redis"] == 1 and tick["published"] == 1 and _queued_messages() == 1
    assert maintenance.relay_tick()["lost_in_redis"] == 0


@pytest.mark.parametrize("app_config", [{"OUTBOX_GRACE_SECONDS": 0}])
def test_an_old_marker_does_not_vouch_for_a_retried_job(app, app_config):
    job_id = submit(payload={"message": "x"})
    db.session.query(Job).filter_by(id=job_id).update({"status": "dead"})
    db.session.commit()
    queue.broker.flush("default")
    jobs.retry(job_row(job_id), actor="test")
    db.session.info.pop("opsdeck_outbox", None)  # its after-commit publish is lost (process died)
    db.session.commit()
    assert _queued_messages() == 0
    assert outbox.relay() == 1 and _queued_messages() == 1


def test_rolled_back_job_is_never_published(app):
    jobs.submit("system.echo", {"message": "x"})
    db.session.rollback()
    assert _queued_messages() == 0 and db.session.query(Job).count() == 0
    db.session.commit()  # a later commit does not publish what was rolled back
    assert _queued_messages() == 0


def test_long_delays_wait_in_the_ledger_not_in_redis(app):
    job_id = submit(payload={"message": "later"}, delay_seconds=3600)
    assert _queued_messages() == 0
    assert job_row(job_id).status == "pending"
    assert outbox.relay() == 0  # not due within OUTBOX_MAX_BROKER_DELAY


@pytest.fixture
def app_config(private_redis):
    return {"REDIS_URL": private_redis.url, "OUTBOX_GRACE_SECONDS": 0}


def test_api_accepts_work_while_redis_is_down_and_it_runs_once_redis_is_back(app, api, private_redis, workers):
    private_redis.stop()
    ready = app.test_client().get("/readyz")  # still ready: what is accepted waits in the ledger
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    assert ready.get_json()["checks"]["redis"].startswith("down: ")

    response = api.post("/api/v1/jobs", {"type": "system.echo", "payload": {"message": "patience"}})
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    job = job_row(job_id)
    assert job.status == "pending" and job.published_at is None

    private_redis.start()
    assert app.test_client().get("/readyz").get_json()["checks"]["redis"] == "ok"
    workers.start(OUTBOX_GRACE_SECONDS=0)
    workers.start_scheduler(OUTBOX_RELAY_INTERVAL=0.5, OUTBOX_GRACE_SECONDS=0)
    job = wait_for_status(job_id, "succeeded", logs=workers.logs)
    assert job.attempts == 1 and job.result == {"message": "patience"}


def test_relay_publishes_pending_jobs_once_redis_is_back(app, private_redis):
    private_redis.stop()
    ids = [submit(payload={"message": str(i)}) for i in range(3)]
    assert {job_row(i).status for i in ids} == {"pending"}
    assert outbox.relay() == 0  # still down: nothing published, nothing lost
    private_redis.start()
    assert outbox.relay() == 3
    assert {job_row(i).status for i in ids} == {"queued"}
    assert _queued_messages() == 3
    assert outbox.relay() == 0  # published jobs are not sent again


@pytest.fixture
def small_pool(database_url):
    from app.config import _engine_options

    options = _engine_options(database_url)
    options.update(pool_size=2, max_overflow=0, pool_timeout=20)  # a deadlock still ends in 500s
    return options


def test_publishing_never_needs_a_second_connection_per_request(app, api, small_pool, redis_server):
    """Regression: the after-commit publish once ran while the request still held its
    connection, so N concurrent requests on a pool of N deadlocked until the pool timeout."""
    import threading

    from app import create_app
    from tests.conftest import IsolatedClient, SignedClient, make_config

    tight = create_app(
        make_config(app.config["SQLALCHEMY_DATABASE_URI"], redis_server.url, SQLALCHEMY_ENGINE_OPTIONS=small_pool)
    )
    tight.test_client_class = IsolatedClient
    client = SignedClient(tight, api.key_id, api.secret)
    codes = []

    def send(i):
        codes.append(client.post("/api/v1/jobs", {"type": "system.echo", "payload": {"message": f"n{i}"}}).status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with tight.app_context():
        db.engine.dispose()
    assert codes == [202] * 8
