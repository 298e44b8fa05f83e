"""OpenTelemetry traces, received for real: the test's web app and real `dramatiq workers`
processes export OTLP/HTTP to a receiver on loopback (tests/fakes/otlp.py), and the tests read
the span trees it got: request → publish → run of a job, a batch, a webhook delivery (whose
receiver got the traceparent), a provision (the RouterOS call), a platform's own traceparent.
Off, nothing of the SDK is loaded and messages carry nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from dramatiq import Message

from app.config import ROOT
from app.extensions import queue
from app.models import Payment, Scan, Subscription
from app.services.jobs import outbox
from app.telemetry import tracing
from tests.conftest import process_env
from tests.fakes.otlp import OtlpReceiver, Span
from tests.fakes.processes import wait_until
from tests.fakes.routeros import RouterOsServer
from tests.helpers import fresh, make_endpoint, post_event, submit, upload, wait_for_status
from tests.test_provisioning import ROUTER_PASSWORD, add_plan, add_router, call_back, stk_callback

pytestmark = pytest.mark.slow  # real worker processes

#: What tracing imports when it is on, and never when it is off.
TRACING_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.instrumentation", "opentelemetry.exporter")
#: What a worker process needs to export quickly to the receiver.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": 100}


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.close()


@pytest.fixture
def app_config(collector: OtlpReceiver) -> dict[str, object]:
    collector.clear()
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]}


@pytest.fixture
def traced_workers(workers, collector):  # type: ignore[no-untyped-def]
    """`workers.start` with tracing on, to the collector."""

    def start(queues: list[str] | None = None, **env: object):  # type: ignore[no-untyped-def]
        return workers.start(queues, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, **FAST_EXPORT, **env)

    return start


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {s.span_id: s for s in spans}


def consumer_of(job_id: str):  # type: ignore[no-untyped-def]
    def find(spans: list[Span]) -> Span | None:
        return next(
            (s for s in spans if s.kind == "consumer" and s.attributes.get("messaging.message.id") == job_id), None
        )

    return find


def producer_of(spans: list[Span], job_id: str) -> Span:
    return next(s for s in spans if s.kind == "producer" and s.attributes.get("messaging.message.id") == job_id)


def ancestry(collector: OtlpReceiver, span: Span) -> list[Span]:
    """`span` and its ancestors up to the root of its trace, once every one was received."""
    tracing.flush()

    def chain(spans: list[Span]) -> list[Span] | None:
        known, found = by_id(spans), [span]
        while found[-1].parent_id:
            if found[-1].parent_id not in known:
                return None
            found.append(known[found[-1].parent_id])
        return found

    return collector.wait_for(chain, what=f"the ancestors of {span.name}")


def request_span(spans: list[Span], name: str) -> Span:
    return next(s for s in spans if s.kind == "server" and s.name == name)


def test_a_job_is_one_trace_from_the_request_through_the_publish_to_the_worker(app, api, traced_workers, collector):
    traced_workers(["default"])
    response = api.post("/api/v1/jobs", {"type": "system.echo", "payload": {"message": "traced"}})
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    wait_for_status(job_id, "succeeded")
    tracing.flush()
    consumer = collector.wait_for(consumer_of(job_id), what="the job's consumer span")
    spans = collector.received()
    producer, request = producer_of(spans, job_id), request_span(spans, "POST /api/v1/jobs")
    assert consumer.parent_id == producer.span_id and producer.parent_id == request.span_id
    assert consumer.trace_id == producer.trace_id == request.trace_id
    assert (request.service, consumer.service) == ("opsdeck-web", "opsdeck-worker")
    assert consumer.name == "process system.echo" and consumer.status != 2
    # The worker's SQL runs under the consumer span; the publish's Redis call under the request.
    children = [s for s in collector.received() if s.parent_id == consumer.span_id]
    assert any(s.kind == "client" and s.attributes.get("db.system") in ("sqlite", "postgresql") for s in children)
    trace = [s for s in spans if s.trace_id == request.trace_id]
    assert any(s.attributes.get("db.system") == "redis" and s.parent_id == request.span_id for s in trace)
    # The message itself carried the producer span's context.
    assert producer.status != 2


def test_a_batch_parents_each_item_on_its_own_producer_under_the_one_request(app, api, traced_workers, collector):
    traced_workers(["default"])
    jobs = [{"type": "system.echo", "payload": {"message": f"m{n}"}} for n in range(3)]
    response = api.post("/api/v1/jobs/batch", {"jobs": jobs})
    assert response.status_code == 202, response.get_json()
    ids = [d["id"] for d in response.get_json()["data"]]
    for job_id in ids:
        wait_for_status(job_id, "succeeded")
    consumers = [collector.wait_for(consumer_of(job_id), what=f"consumer of {job_id}") for job_id in ids]
    tracing.flush()
    spans = collector.received()
    request = request_span(spans, "POST /api/v1/jobs/batch")
    producers = [producer_of(spans, job_id) for job_id in ids]
    assert [p.parent_id for p in producers] == [request.span_id] * 3
    assert [c.parent_id for c in consumers] == [p.span_id for p in producers]
    assert {s.trace_id for s in [*producers, *consumers]} == {request.trace_id}


def test_a_platforms_traceparent_parents_the_request_span(app, api, collector):
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = api.post(
        "/api/v1/jobs",
        {"type": "system.echo", "payload": {"message": "joined"}},
        headers={"traceparent": f"00-{trace_id}-{span_id}-01"},
    )
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    tracing.flush()
    request = collector.wait_for(
        lambda spans: next((s for s in spans if s.kind == "server" and s.trace_id == trace_id), None),
        what="the request span",
    )
    assert request.parent_id == span_id
    assert producer_of(collector.received(), job_id).parent_id == request.span_id
    # The message in Redis carries the producer's context, in the platform's trace.
    raw = queue.redis.hget("dramatiq:default.msgs", next(iter(queue.redis.hkeys("dramatiq:default.msgs"))))
    carried = Message.decode(raw).options["traceparent"]
    assert carried.split("-")[1] == trace_id


def test_a_webhook_delivery_sends_its_traceparent_to_the_receiver(app, api, traced_workers, collector, receiver):
    make_endpoint(api, receiver.url())
    assert post_event(api).status_code == 202
    traced_workers(["webhooks"], WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
    wait_until(lambda: receiver.on("/hook"), 30, 0.05, what="the delivery")
    client = collector.wait_for(
        lambda spans: next((s for s in spans if s.kind == "client" and s.name == "POST"), None),
        what="the webhook's client span",
    )
    chain = ancestry(collector, client)
    assert [s.kind for s in chain] == ["client", "consumer", "producer", "server"]
    assert chain[1].attributes["opsdeck.job.type"] == "webhooks.deliver"
    assert chain[-1].name == "POST /api/v1/events"
    assert client.attributes["http.response.status_code"] == 200
    version, trace_id, span_id, flags = receiver.on("/hook")[0].headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", client.trace_id, client.span_id) and int(flags, 16) & 1  # sampled


def test_a_provision_traces_its_routeros_call_under_the_payments_trace(app, api, traced_workers, collector):
    with RouterOsServer("opsdeck", ROUTER_PASSWORD) as mikrotik:
        router, plan = add_router(api, mikrotik), add_plan(api)
        url = api.get("/api/v1/payments/mpesa/callback-url").get_json()["url"]
        shop = {"callback_path": url.split("://", 1)[1].split("/", 1)[1]}
        payment = api.post(
            "/api/v1/payments",
            {
                "checkout_request_id": "ws_CO_7",
                "plan_id": plan["id"],
                "router_id": router["id"],
                "phone": "+254700000001",
            },
        ).get_json()
        traced_workers(["payments", "payments_high", "provisioning", "routers"])
        assert call_back(app, shop, stk_callback("ws_CO_7")).status_code == 200

        def provisioned() -> bool:
            row = fresh(Payment, payment["id"])
            return row.subscription_id is not None and fresh(Subscription, row.subscription_id).status == "active"

        wait_until(provisioned, 60, 0.05, what="the subscription to be active")
    routeros = collector.wait_for(
        lambda spans: next((s for s in spans if s.name == "RouterOS API"), None), what="the RouterOS span"
    )
    assert routeros.kind == "client" and routeros.attributes["server.port"] == router["port"]
    chain = ancestry(collector, routeros)
    # RouterOS ← provision job ← its publish ← payment job ← its publish ← the M-Pesa callback.
    assert [s.kind for s in chain] == ["client", "consumer", "producer", "consumer", "producer", "server"]
    assert {s.trace_id for s in chain} == {routeros.trace_id}
    callback = chain[-1]
    assert callback.parent_id == "" and shop["callback_path"].rsplit("/", 1)[1] not in str(callback.attributes)


def test_a_scan_traces_its_clamd_call_under_the_upload(app, api, traced_workers, collector):
    created = upload(api, "notes.txt", b"hello")
    traced_workers(["scans"])
    wait_until(lambda: fresh(Scan, created["id"]).status == "clean", 60, 0.1, what="the verdict")
    clamd = collector.wait_for(
        lambda spans: next((s for s in spans if s.name == "clamd SCAN"), None), what="the clamd span"
    )
    chain = ancestry(collector, clamd)
    assert [s.kind for s in chain] == ["client", "consumer", "producer", "server"]
    assert chain[-1].name == "POST /api/v1/scans" and chain[1].name == "process scans.scan"


class TestEmail:
    @pytest.fixture
    def app_config(self, collector: OtlpReceiver) -> dict[str, object]:
        collector.clear()  # a batch of one: the request itself queues the flush
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "EMAIL_BATCH_SIZE": 1}

    def test_an_email_batch_traces_its_smtp_session_under_the_request(self, app, api, traced_workers, collector, sink):
        mail = {"to": "ana@example.com", "template": "notification", "context": {"title": "Hi", "message": "Hello"}}
        assert api.post("/api/v1/emails", mail).status_code == 202
        traced_workers(["email"], SMTP_PORT=sink.port, EMAIL_DELAY=0, EMAIL_RATE_PER_MINUTE=0)
        wait_until(lambda: sink.received, 60, 0.1, what="the mail")
        smtp = collector.wait_for(
            lambda spans: next((s for s in spans if s.name == "SMTP session"), None), what="the SMTP span"
        )
        assert smtp.kind == "client" and smtp.attributes["server.port"] == sink.port
        assert smtp.attributes["opsdeck.email.batch_size"] == 1
        chain = ancestry(collector, smtp)
        assert [s.kind for s in chain] == ["client", "consumer", "producer", "server"]
        assert chain[1].name == "process email.flush" and chain[-1].name == "POST /api/v1/emails"


class TestRelay:
    @pytest.fixture
    def app_config(self, collector: OtlpReceiver) -> dict[str, object]:
        collector.clear()  # the request leaves the job to the relay: its delay is past what Redis holds
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OUTBOX_MAX_BROKER_DELAY": 0, "OUTBOX_GRACE_SECONDS": 0}

    def test_a_job_the_relay_publishes_joins_the_trace_of_its_request(self, app, api, traced_workers, collector):
        response = api.post(
            "/api/v1/jobs", {"type": "system.echo", "payload": {"message": "later"}, "delay_seconds": 1}
        )
        assert response.status_code == 202
        job_id = response.get_json()["id"]
        assert queue.redis.hlen("dramatiq:default.msgs") == 0  # not published by the request
        time.sleep(1.1)
        assert outbox.relay() == 1
        traced_workers(["default"])
        wait_for_status(job_id, "succeeded")
        consumer = collector.wait_for(consumer_of(job_id), what="the job's consumer span")
        chain = ancestry(collector, consumer)
        assert [s.kind for s in chain] == ["consumer", "producer", "server"]
        assert chain[-1].name == "POST /api/v1/jobs" and chain[1].attributes["messaging.message.id"] == job_id


class TestOff:
    @pytest.fixture
    def app_config(self) -> dict[str, object]:
        return {}

    def test_off_publishes_plain_messages_and_exports_nothing(self, app, collector):
        collector.clear()
        assert not tracing.enabled()
        job_id = submit(payload={"message": "plain"})
        raw = queue.redis.hget("dramatiq:default.msgs", next(iter(queue.redis.hkeys("dramatiq:default.msgs"))))
        message = Message.decode(raw)
        assert message.message_id == job_id and "traceparent" not in message.options
        assert tracing.traceparent() is None and tracing.producers().options(job_id, "default", "x", None) == {}
        assert collector.received() == []

    def test_off_loads_nothing_of_the_sdk(self, app):
        env = {k: v for k, v in process_env(app).items() if not k.startswith("OTEL_")}
        # (redis-py loads opentelemetry.sdk.metrics for its own metrics, whatever this setting says.)
        probe = (
            f"TRACING_MODULES = {TRACING_MODULES!r};"
            "import sys; from app import create_app; create_app();"
            "print(sorted(m for m in sys.modules if m.startswith(TRACING_MODULES)))"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
        )
        assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
