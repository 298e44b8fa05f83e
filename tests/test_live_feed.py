"""The Socket.IO feed against the production web server, with the real python-socketio
client, and events published by a real worker process through Redis."""

from __future__ import annotations

import re
import threading

import pytest
import requests
import socketio

from app.extensions import db
from app.services import users
from tests.fakes.processes import wait_until
from tests.helpers import submit

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


def browser_login(url: str, email: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{url}/admin/login", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    response = http.post(
        f"{url}/admin/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:300]
    return http


class Listener:
    """A python-socketio client on /admin that keeps what it receives."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record, namespace="/admin")

    def _record(self, event: str, payload: dict) -> None:
        with self.lock:
            self.events.append((event, payload))

    def connect(self, url: str, http: requests.Session | None = None) -> None:
        headers = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in http.cookies)} if http else {}
        self.client.connect(url, namespaces=["/admin"], headers=headers, transports=["websocket"], wait_timeout=10)

    def named(self, name: str) -> list[dict]:
        with self.lock:
            return [payload for event, payload in self.events if event == name]


def test_admin_receives_job_dead_published_by_a_worker(app, workers):
    users.create_user("admin@example.com", PASSWORD, "admin")
    url = workers.start_web()
    listener = Listener()
    listener.connect(url, browser_login(url, "admin@example.com"))
    workers.start()
    job_id = submit(payload={"message": "doomed", "fail": True}, max_attempts=1)
    wait_until(lambda: listener.named("job.dead"), 30, 0.1, what="job.dead on the feed")
    event = listener.named("job.dead")[0]
    assert set(event) == {"id", "type", "occurred_at", "tenant_id", "subject", "data"}
    assert event["type"] == "job.dead" and event["subject"] == job_id
    assert event["data"]["job_type"] == "system.echo" and event["data"]["error"].startswith("EchoFailure")
    ok_id = submit(payload={"message": "fine"})
    # Counts are published once a second: the dead job's second may come first, on its own.
    succeeded = lambda: [e for e in listener.named("jobs.throughput") if e["data"].get("succeeded")]  # noqa: E731
    wait_until(succeeded, 30, 0.1, what="aggregated throughput with the succeeded job")
    assert succeeded()[0]["data"]["succeeded"] >= 1
    assert not any(p["subject"] == ok_id for p in listener.named("job.succeeded"))  # aggregated, not one by one
    listener.client.disconnect()


def test_anonymous_client_is_refused(app, workers):
    url = workers.start_web()
    listener = Listener()
    with pytest.raises(socketio.exceptions.ConnectionError):
        listener.connect(url)


def test_a_user_who_logs_out_stops_receiving_events(app, workers):
    from app.extensions import queue

    users.create_user("viewer@example.com", PASSWORD, "viewer")
    url = workers.start_web()
    http = browser_login(url, "viewer@example.com")
    listener = Listener()
    listener.connect(url, http)
    assert listener.client.connected
    page = http.get(f"{url}/admin/", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    assert (
        http.post(f"{url}/admin/logout", data={"csrf_token": token}, allow_redirects=False, timeout=10).status_code
        == 302
    )
    wait_until(lambda: not listener.client.connected, 15, 0.1, what="the server to end the connection")
    assert queue.redis  # and a new connection with the old cookie is refused
    again = Listener()
    with pytest.raises(socketio.exceptions.ConnectionError):
        again.connect(url, http)


def test_a_deactivated_user_stops_receiving_events(app, workers):
    user = users.create_user("ops@example.com", PASSWORD, "viewer")
    url = workers.start_web()
    listener = Listener()
    listener.connect(url, browser_login(url, "ops@example.com"))
    users.set_active(user, False, actor="test")  # from this (test) process, through Redis
    wait_until(lambda: not listener.client.connected, 15, 0.1, what="the server to end the connection")


def test_an_event_published_by_one_web_process_reaches_a_client_of_another(app, workers):
    """Scale-out: two web processes share the feed through Redis. An M-Pesa callback handled by
    web B publishes `payment.failed`; an operator connected to web A receives it."""
    from app.services import tenants
    from app.services.provisioning import mpesa, payments, routers

    users.create_user("admin@example.com", PASSWORD, "admin")
    tenant = tenants.create_tenant("hotspot")
    router = routers.create_router(
        tenant.tenant_id, {"name": "r", "host": "127.0.0.1", "port": 1, "username": "a", "password": "b"}, actor="test"
    )
    plan = routers.create_plan(
        tenant.tenant_id,
        {"name": "p", "price": 10, "currency": "KES", "duration_seconds": 60, "profile": "p"},
        actor="test",
    )
    payments.register_expected(
        tenant.tenant_id, checkout_request_id="ws_X", plan=plan, router=router, phone="+254700000009", mac=None
    )
    token = mpesa.token_for(tenant.tenant_id)
    db.session.commit()
    web_a, web_b = workers.start_web(name="web-a"), workers.start_web(name="web-b")
    listener = Listener()
    listener.connect(web_a, browser_login(web_a, "admin@example.com"))
    cancelled = {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": "m",
                "CheckoutRequestID": "ws_X",
                "ResultCode": 1032,
                "ResultDesc": "Request cancelled by user",
            }
        }
    }
    answer = requests.post(f"{web_b}/api/v1/payments/mpesa/callback/{token}", json=cancelled, timeout=10)
    assert answer.status_code == 200
    wait_until(lambda: listener.named("payment.failed"), 30, 0.1, what="payment.failed at web A")
    assert listener.named("payment.failed")[0]["data"]["reason"] == "cancelled by the customer"
    listener.client.disconnect()


def test_every_web_process_listens_to_the_feed_before_any_client_connects(app, workers):
    from app.extensions import queue

    def listeners() -> int:
        return int(dict(queue.redis.pubsub_numsub("flask-socketio")).get(b"flask-socketio", 0))

    assert listeners() == 0
    workers.start_web(name="web-quiet")  # WEB_CONCURRENCY processes, default 2; nobody connects
    wait_until(lambda: listeners() >= 2, 30, 0.1, what="both web processes to subscribe")


def test_events_published_after_commit_wait_for_it_and_go_with_a_rollback(app):
    from app import live

    live.publish_after_commit("test.rolled_back", subject="a")
    db.session.rollback()
    live.publish_after_commit("test.committed", subject="b")
    assert live.recent() == []  # nothing before the commit
    db.session.commit()
    assert [e["type"] for e in live.recent()] == ["test.committed"]
