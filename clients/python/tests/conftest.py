"""Fixtures: the shared test vectors, a scripted local HTTP server, and the live Opsdeck the
integration tests run against (clients/SCENARIOS.md).

Integration tests are marked `integration`. Without OPSDECK_CLIENT_INTEGRATION=1 they are
skipped; with it, a missing OPSDECK_* variable fails them (a skip would hide a scenario).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsdeck_client import OpsdeckClient

README = Path(__file__).resolve().parents[1] / "README.md"
LIVE_VARIABLES = (
    "OPSDECK_URL",
    "OPSDECK_KEY_ID",
    "OPSDECK_SECRET",
    "OPSDECK_LIMITED_URL",
    "OPSDECK_LIMITED_KEY_ID",
    "OPSDECK_LIMITED_SECRET",
    "OPSDECK_LIMIT",
)


def integration_enabled() -> bool:
    return os.environ.get("OPSDECK_CLIENT_INTEGRATION") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if integration_enabled():
        return
    skip = pytest.mark.skip(
        reason="set OPSDECK_CLIENT_INTEGRATION=1 and the OPSDECK_* variables (clients/SCENARIOS.md)"
    )
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@dataclass(frozen=True)
class Live:
    url: str
    key_id: str
    secret: str
    limited_url: str
    limited_key_id: str
    limited_secret: str
    limit: int

    def env(self) -> dict[str, str]:
        """The environment a subprocess (the CLI, a README example) gets: the main tenant."""
        return {
            **os.environ,
            "OPSDECK_URL": self.url,
            "OPSDECK_KEY_ID": self.key_id,
            "OPSDECK_SECRET": self.secret,
            "OPSDECK_CONFIG": "/nonexistent/opsdeck-profiles.toml",  # the developer's own stays out
        }


@pytest.fixture(scope="session")
def live() -> Live:
    missing = [name for name in LIVE_VARIABLES if not os.environ.get(name)]
    if missing:
        pytest.fail(f"OPSDECK_CLIENT_INTEGRATION=1 but {', '.join(missing)} not set (see clients/SCENARIOS.md)")
    e = os.environ
    return Live(
        e["OPSDECK_URL"],
        e["OPSDECK_KEY_ID"],
        e["OPSDECK_SECRET"],
        e["OPSDECK_LIMITED_URL"],
        e["OPSDECK_LIMITED_KEY_ID"],
        e["OPSDECK_LIMITED_SECRET"],
        int(e["OPSDECK_LIMIT"]),
    )


@pytest.fixture
def client(live: Live) -> Iterator[OpsdeckClient]:
    with OpsdeckClient(live.url, live.key_id, live.secret, timeout=30) as opsdeck:
        yield opsdeck


@pytest.fixture(scope="session")
def opsdeck_command() -> str:
    """The installed `opsdeck` console script (beside this Python, or on PATH)."""
    beside = Path(sys.executable).parent / "opsdeck"
    found = str(beside) if beside.exists() else shutil.which("opsdeck")
    assert found, "the opsdeck console script is not installed (pip install -e clients/python)"
    return found


# -- a scripted HTTP server on loopback, for the transport's tests ------------------------------
@dataclass
class Reply:
    status: int
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (longer than the client's timeout: a timeout).
    delay: float = 0


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """Answers each request with the next scripted Reply (the last one again once the script
    runs out) and records what it received."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.received: list[Received] = []
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.received.append(Received(self.command, self.path, dict(self.headers.items()), body))
                reply = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                if reply.delay:
                    server._stop.wait(reply.delay)
                self.send_response(reply.status)
                content_type = "application/problem+json" if reply.status >= 400 else "application/json"
                self.send_header("Content-Type", reply.headers.pop("Content-Type", content_type))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (a timeout test)
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()
