"""A real HTTP server on loopback that records what it receives and answers from a script:
the customer endpoint of the webhook tests and benchmarks."""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    #: Seconds to wait before answering (timeouts, a send in flight while a worker dies).
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time()


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """A sender that hung up (killed worker, timed-out client) is expected, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class HttpReceiver:
    """`script(path, *replies)` queues answers for a path; once they are used up, `default`."""

    def __init__(self, default: Reply | None = None, host: str = "127.0.0.1") -> None:
        self.default = default or Reply()
        self.host = host
        self.received: list[Received] = []
        #: Requests whose sender went away before the whole body arrived (a worker killed between
        #: urllib3's write of the headers and its write of the body): never answered, not received.
        self.cut: list[Received] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be seen
            disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: no server would act on it
                    with receiver._lock:
                        receiver.cut.append(Received(self.path, dict(self.headers.items()), body, time.time()))
                    self.close_connection = True
                    return
                reply = receiver._record(self.path, dict(self.headers.items()), body)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ReceiverServer((host, 0), Handler)
        self.connections = 0
        original = self.server.process_request

        def counting(request, client_address):  # type: ignore[no-untyped-def]
            with self._lock:
                self.connections += 1
            return original(request, client_address)

        self.server.process_request = counting  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path].extend(replies)

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        with self._lock:
            self.received.append(Received(path, headers, body, time.time()))
            queue = self._scripts.get(path)
            return queue.popleft() if queue else self.default

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def start(self) -> HttpReceiver:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
