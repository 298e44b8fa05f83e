"""A real OTLP/HTTP trace receiver on loopback: what a collector at OTEL_EXPORTER_OTLP_ENDPOINT
gets (`POST /v1/traces`, protobuf ExportTraceServiceRequest, gzip or not), kept as flat spans
for the tracing tests and the traced P2 bench."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

#: opentelemetry-proto's Span.SpanKind numbers.
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    #: "" for a root span.
    parent_id: str
    attributes: dict[str, Any]
    #: (trace id, span id) of each link.
    links: tuple[tuple[str, str], ...] = ()
    #: The status code: 0 unset, 1 ok, 2 error.
    status: int = 0
    start_ns: int = field(default=0, compare=False)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                        status=span.status.code,
                        start_ns=span.start_time_unix_nano,
                    )
                )
    return spans


class OtlpReceiver:
    """`url` is what OTEL_EXPORTER_OTLP_ENDPOINT takes; `spans` is everything received so far."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces":
                    self._answer(404, b"")
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                try:
                    spans = decode(body)
                except Exception:  # not an ExportTraceServiceRequest: a collector answers 400
                    self._answer(400, b"")
                    return
                with receiver._lock:
                    receiver.spans.extend(spans)
                    receiver.requests += 1
                self._answer(200, ExportTraceServiceResponse().SerializeToString())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        threading.Thread(target=self.server.serve_forever, name="otlp-receiver", daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()

    def received(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, predicate: Callable[[list[Span]], Any], timeout: float = 20, what: str = "spans") -> Any:
        """Wait until `predicate(spans)` is truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            found = predicate(self.received())
            if found:
                return found
            if time.monotonic() > deadline:
                names = sorted({f"{s.service}:{s.kind}:{s.name}" for s in self.received()})
                raise AssertionError(f"timed out waiting for {what}; received: {names}")
            time.sleep(0.05)
