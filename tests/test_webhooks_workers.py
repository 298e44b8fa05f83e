"""Webhook deliveries run by real `dramatiq workers` processes: the retry schedule as the
receiver sees it, and a worker SIGKILLed mid-send."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import WebhookDelivery
from tests.fakes.http_receiver import Reply
from tests.fakes.processes import wait_until
from tests.helpers import make_endpoint, post_event

pytestmark = pytest.mark.slow
WORKER_ENV = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "WEBHOOK_RETRY_SCHEDULE": "1,2"}


@pytest.fixture
def app_config():
    return {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "WEBHOOK_RETRY_SCHEDULE": [1, 2]}


def delivery_row(delivery_id: str) -> WebhookDelivery:
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(WebhookDelivery, delivery_id)


def test_500_500_200_is_three_attempts_at_the_scheduled_offsets(app, api, workers, receiver):
    receiver.script("/hook", Reply(500), Reply(500), Reply(200))
    make_endpoint(api, receiver.url())
    post_event(api)
    row_id = db.session.query(WebhookDelivery).one().id
    workers.start(["webhooks"], **WORKER_ENV)
    wait_until(lambda: delivery_row(row_id).status == "succeeded", 30, 0.1, what="the delivery to succeed")
    got = receiver.on("/hook")
    assert len(got) == 3 and len({r.headers["webhook-id"] for r in got}) == 1
    gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
    # Never early (schedule 1 s then 2 s, each −20% at most); late only by scheduling overhead
    # (delayed messages wait for idle consumer polls: up to ~2 s, more on a loaded machine).
    assert 0.8 <= gaps[0] <= 1.2 + 8 and 1.6 <= gaps[1] <= 2.4 + 8, gaps
    row = delivery_row(row_id)
    assert row.attempts == 3 and row.status == "succeeded"


def test_a_worker_killed_mid_send_still_delivers_with_the_same_webhook_id(app, api, workers, receiver):
    settings = {**WORKER_ENV, "JOB_LEASE_SECONDS": 3, "OUTBOX_RELAY_INTERVAL": 0.5, "OUTBOX_GRACE_SECONDS": 1}
    receiver.script("/hook", Reply(200, delay=6))  # the first send hangs until the worker is gone
    make_endpoint(api, receiver.url())
    post_event(api)
    row_id = db.session.query(WebhookDelivery).one().id
    doomed = workers.start(["webhooks"], name="doomed", threads=1, **settings)
    wait_until(lambda: len(receiver.on("/hook")) == 1, 30, 0.05, what="the first send")
    doomed.kill()
    doomed.proc.wait(10)
    workers.start(["webhooks"], name="rescuer", **settings)
    workers.start_scheduler(**settings)
    wait_until(lambda: delivery_row(row_id).status == "succeeded", 60, 0.1, what="the delivery to succeed")
    got = receiver.on("/hook")
    assert len(got) >= 2 and {r.headers["webhook-id"] for r in got} == {got[0].headers["webhook-id"]}


def test_a_410_disables_the_endpoint_and_the_feed_says_so(app, api, workers, receiver):
    """The worker that meets a 410 disables the endpoint and tells the operators: the live feed
    carries `webhook.endpoint_disabled` (with the URL and reason) and `webhook.delivery_dead`."""
    from app import live

    receiver.script("/hook", Reply(410))
    endpoint = make_endpoint(api, receiver.url())
    post_event(api)
    row_id = db.session.query(WebhookDelivery).one().id
    workers.start(["webhooks"], **WORKER_ENV)
    wait_until(lambda: delivery_row(row_id).status == "dead", 30, 0.1, what="the delivery to be dead")

    def feed(event_type: str) -> list[dict]:
        return [e for e in live.recent(50) if e["type"] == event_type]

    wait_until(lambda: feed("webhook.delivery_dead"), 10, 0.1, what="webhook.delivery_dead on the feed")
    disabled = feed("webhook.endpoint_disabled")
    assert len(disabled) == 1 and disabled[0]["subject"] == endpoint["id"]
    assert disabled[0]["data"]["url"] == receiver.url() and "410" in disabled[0]["data"]["reason"]
    assert feed("webhook.delivery_dead")[0]["subject"] == row_id
