"""Traces to an OpenTelemetry collector over OTLP/HTTP: `init_app(app)` (called in create_app,
so once per web, worker and scheduler process, after any fork), the producer and consumer spans
of every job, and spans around the outbound calls the instrumentations do not see.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: off, no tracer, exporter or instrumentation is
started, nothing is patched, and every helper here is one check of a module global. On, the standard `OTEL_*`
variables apply (service name, resource attributes, sampler, exporter headers, batch sizes);
the service name defaults to `opsdeck-<role>` (web, worker or scheduler).

A job's trace crosses processes in W3C `traceparent` form: the submitting span's is written
with the job row (`jobs.new_row`), so whoever publishes the job (the request after its commit,
a grouped commit of several requests, the relay minutes later) parents the producer span on
it; the producer span's own travels in the Dramatiq message options to the worker.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("opsdeck.observability")

#: The message option (and HTTP header) that carries a span's context.
TRACEPARENT = "traceparent"

F = TypeVar("F", bound=Callable[..., Any])


class _Off:
    """What the hot paths meet when tracing is off: nothing to record, nothing to carry."""

    def options(self, job_id: str, queue_name: str, job_type: str, parent: str | None) -> dict[str, Any]:
        return {}

    def end(self, error: BaseException | None = None) -> None:
        pass


_OFF = _Off()
_NO_SPAN = contextlib.nullcontext()
#: The running tracer of this process (None: tracing is off).
_on: _Tracing | None = None


def enabled() -> bool:
    return _on is not None


def init_app(app: Flask) -> bool:
    """Start tracing for this process when OTEL_EXPORTER_OTLP_ENDPOINT is set, and trace this
    app's requests; returns whether tracing is on. Must run before the app's engine is made
    (engines are instrumented as they are created). Idempotent: an app built again with the
    same endpoint in the same process shares the running tracer; a forked child starts its own."""
    global _on
    endpoint = app.config.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
    if _on is not None and (_on.endpoint != endpoint or _on.pid != os.getpid()):
        if _on.pid == os.getpid():
            _on.stop()
        _on = None
    if not endpoint:
        return False
    if _on is None:
        _on = _Tracing(endpoint, app.config)
    _on.trace_requests(app)
    return True


def shutdown() -> None:
    """Export what is buffered and stop (a worker's shutdown: its processes exit without atexit)."""
    global _on
    if _on is not None and _on.pid == os.getpid():
        _on.stop()
    _on = None


def flush(timeout_ms: int = 5000) -> None:
    """Export the spans buffered so far."""
    if _on is not None:
        _on.provider.force_flush(timeout_ms)


def traceparent() -> str | None:
    """The current span's context as a W3C traceparent (None when off or outside any span)."""
    return None if _on is None else _on.current()


def producers() -> Any:
    """Producer spans for one publish: `options(...)` per message (what its options carry),
    then `end(error)` once the messages are sent or not."""
    return _OFF if _on is None else _Producers(_on)


def consume(message: Any) -> Any:
    """Start the consumer span of a job message, current on this thread until `consumed`."""
    return None if _on is None else _on.consume(message)


def consumed(handle: Any, job_type: str | None, attempt: int | None, error: BaseException | None) -> None:
    """End the span `consume` started (`error`: the attempt failed)."""
    if handle is not None and _on is not None:
        _on.consumed(handle, job_type, attempt, error)


def span(name: str, attributes: Mapping[str, Any] | None = None) -> contextlib.AbstractContextManager[Any]:
    """A client span around an outbound call (current inside it; an exception marks it failed)."""
    return _NO_SPAN if _on is None else _on.client(name, attributes)


def traced(name: str) -> Callable[[F], F]:
    """`span(name)` around every call of the decorated function."""

    def decorator(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _on is None:
                return fn(*args, **kwargs)
            with _on.client(name, None):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def http_status(current: Any, status: int) -> None:
    """Note an HTTP client span's answer (4xx and 5xx mark it failed)."""
    if current is not None:
        from opentelemetry.trace import Status, StatusCode

        current.set_attribute("http.response.status_code", status)
        if status >= 400:
            current.set_status(Status(StatusCode.ERROR))


def inject(headers: dict[str, str]) -> None:
    """Add the current span's `traceparent` (and `tracestate`) to outgoing HTTP headers."""
    if _on is not None:
        _on.propagator.inject(headers)


def role() -> str:
    """What this process was started as, from its command line: scheduler, worker or web."""
    command = " ".join(getattr(sys, "orig_argv", sys.argv))
    if "workers.scheduler" in command:
        return "scheduler"
    if "dramatiq" in command:
        return "worker"
    return "web"


#: Flask request attributes that hold the URL: an M-Pesa callback's path holds its token.
_URL_ATTRIBUTES = ("http.target", "http.url", "url.path", "url.query", "url.full")


class _Tracing:
    """The SDK, imported and started only when tracing is on."""

    def __init__(self, endpoint: str, config: Mapping[str, Any]) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from app.telemetry.sentry import Scrubber, config_secrets

        self.endpoint, self.pid = endpoint, os.getpid()
        resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: f"opsdeck-{role()}"}))
        self.provider = TracerProvider(resource=resource, sampler=_InsideWork(_get_from_env_or_default()))  # type: ignore[arg-type]
        # The exporter reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, headers, timeout and compression itself.
        traces_url = (
            None if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") else endpoint.rstrip("/") + "/v1/traces"
        )
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
        self.tracer = self.provider.get_tracer("opsdeck")
        self.propagator = TraceContextTextMapPropagator()
        self.scrub = Scrubber(config_secrets(config)).text
        self.instrumentors: list[Any] = [RedisInstrumentor(), SQLAlchemyInstrumentor()]
        for instrumentor in self.instrumentors:
            # The SQLAlchemy instrumentation declares < 2.1; the engine events it uses are unchanged in 2.1.
            instrumentor.instrument(tracer_provider=self.provider, skip_dep_check=True)
        log.info("tracing on: %s to %s", resource.attributes.get(SERVICE_NAME), endpoint)

    def stop(self) -> None:
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        self.provider.shutdown()

    def trace_requests(self, app: Flask) -> None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        excluded = os.environ.get("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "/healthz,/readyz,/metrics,/socket.io")
        FlaskInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=excluded,
            response_hook=self._scrub_url,  # the request hook runs before the URL attributes are set
            enable_commenter=False,
        )

    def _scrub_url(self, span: Any, status: Any, headers: Any) -> None:
        attributes = getattr(span, "attributes", None) or {}
        for key in _URL_ATTRIBUTES:
            value = attributes.get(key)
            if isinstance(value, str):
                span.set_attribute(key, self.scrub(value))

    def current(self) -> str | None:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"

    def parent(self, traceparent: str | None) -> Any:
        """The context a span started under `traceparent` has (a new trace without one)."""
        from opentelemetry.context import Context

        return self.propagator.extract({TRACEPARENT: traceparent}) if traceparent else Context()

    def consume(self, message: Any) -> Any:
        from opentelemetry import context, trace

        queue_name = message.queue_name.removesuffix(".DQ")
        span = self.tracer.start_span(
            f"process {message.actor_name}",
            context=self.parent(message.options.get(TRACEPARENT)),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.operation.type": "process",
                "messaging.destination.name": queue_name,
                "messaging.message.id": message.message_id,
            },
        )
        return span, context.attach(trace.set_span_in_context(span))

    def consumed(self, handle: Any, job_type: str | None, attempt: int | None, error: BaseException | None) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span, token = handle
        if job_type is not None:  # named as its publish is, once the claim told the job's type
            span.update_name(f"process {job_type}")
            span.set_attributes({"opsdeck.job.type": job_type, "opsdeck.job.attempt": attempt or 0})
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
        span.end()
        context.detach(token)

    @contextlib.contextmanager
    def client(self, name: str, attributes: Mapping[str, Any] | None) -> Iterator[Any]:
        from opentelemetry.trace import SpanKind

        clean = {k: self.scrub(v) if isinstance(v, str) else v for k, v in (attributes or {}).items()}
        with self.tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=clean) as current:
            yield current


class _Producers:
    """One producer span per message of a publish, parented on its job's submitter."""

    def __init__(self, on: _Tracing) -> None:
        self.on = on
        self.spans: list[Any] = []

    def options(self, job_id: str, queue_name: str, job_type: str, parent: str | None) -> dict[str, Any]:
        from opentelemetry import trace

        span = self.on.tracer.start_span(
            f"publish {job_type}",
            context=self.on.parent(parent),
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.operation.type": "send",
                "messaging.destination.name": queue_name,
                "messaging.message.id": job_id,
                "opsdeck.job.type": job_type,
            },
        )
        self.spans.append(span)
        carrier: dict[str, Any] = {}
        self.on.propagator.inject(carrier, context=trace.set_span_in_context(span))
        return {TRACEPARENT: carrier[TRACEPARENT]}

    def end(self, error: BaseException | None = None) -> None:
        from opentelemetry.trace import Status, StatusCode

        for span in self.spans:
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
            span.end()
        self.spans = []


class _InsideWork:
    """The configured sampler, except that a client span with no parent (a Redis command or a
    query of a heartbeat, a consumer's wait, a readiness probe) is not recorded: outbound calls
    are traced as part of a request or a job. (A Sampler by its methods: subclassing the SDK's
    would import it with this module.)"""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> Any:
        from opentelemetry import trace
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult

        if kind is trace.SpanKind.CLIENT and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self.sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"InsideWork{{{self.sampler.get_description()}}}"
