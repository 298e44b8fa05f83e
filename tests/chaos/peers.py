"""Peers the fault suite can break on purpose, built on the real ones in tests/fakes/: a webhook
receiver that remembers what it answered and can go down on its port, an SMTP sink that can go
down on its port, a RouterOS server that answers slowly, a clamd proxy that can be slow or talk
nonsense, and a private PostgreSQL to restart."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller

from tests.fakes.http_receiver import HttpReceiver, Received, ReceiverServer, Reply
from tests.fakes.processes import RedisServer, free_port, wait_until
from tests.fakes.routeros import Command, RouterOsServer
from tests.fakes.smtp_sink import SmtpSink, _Handler


# -- Redis --------------------------------------------------------------------------------
class PersistentRedis(RedisServer):
    """RedisServer with an append-only file fsynced on every write: a restart keeps the queues,
    as a production Redis restarted in place does. (redis-server takes the last of a repeated
    directive, so these override RedisServer's `--appendonly no`.)"""

    def __init__(self, *args: str) -> None:
        super().__init__("--appendonly", "yes", "--appendfsync", "always", *args)


# -- webhook receiver ---------------------------------------------------------------
@dataclass(frozen=True)
class Answered:
    """One request the receiver read, and the status it answered (or meant to: a slow answer
    may reach a client that gave up)."""

    path: str
    webhook_id: str
    status: int


class Receiver(HttpReceiver):
    """HttpReceiver that records each reply's status and can stop listening (connections are
    refused) and listen again on the same port."""

    def __init__(self, default: Reply | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(default, host)
        self.answered: list[Answered] = []
        self._port = self.server.server_address[1]

    @property
    def port(self) -> int:
        return self._port

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        reply = super()._record(path, headers, body)
        with self._lock:
            self.answered.append(Answered(path, headers.get("webhook-id", ""), reply.status))
        return reply

    def down(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def up(self) -> None:
        handler = self.server.RequestHandlerClass
        self.server = ReceiverServer((self.host, self._port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)


# -- SMTP ---------------------------------------------------------------------------
class Sink(SmtpSink):
    """SmtpSink that can go down (connections refused) and come back on the same port, keeping
    what it received."""

    listening = True

    def down(self) -> None:
        self.controller.stop()
        self.listening = False

    def up(self) -> None:
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        self.controller.start()
        self.listening = True

    def close(self) -> None:
        if self.listening:
            super().close()

    def message_id_counts(self) -> Counter[str]:
        return Counter(self.message_ids())


# -- RouterOS -------------------------------------------------------------------------
class SlowRouter(RouterOsServer):
    """The RouterOS test server, answering commands `delay` seconds late (those in `slow_paths`,
    or all but the login when it is empty). The command still runs after the wait even if the
    client has given up, as a real overloaded router's would."""

    delay = 0.0
    slow_paths: frozenset[str] = frozenset()

    def _record(self, command: Command) -> None:
        super()._record(command)
        if self.delay and command.path != "/login" and (not self.slow_paths or command.path in self.slow_paths):
            time.sleep(self.delay)


# -- clamd ------------------------------------------------------------------------------
class ClamdProxy:
    """A TCP front for clamd's unix socket (CLAMD_URL=tcp://…). `mode`: `pass`; `slow` (clamd's
    answer held back `delay` seconds); `error` (clamd is never asked: every command is answered
    with an error line); `down` (the port refuses connections)."""

    ERROR_REPLY = b"stream: Can't allocate memory ERROR\0"

    def __init__(self, clamd_socket: Path) -> None:
        self.target = str(clamd_socket)
        self.port = free_port()
        self.mode = "pass"
        self.delay = 0.0
        self.connections = 0
        #: clamd's `stream: OK` answers passed on to a client: no more scans can be clean.
        self.ok_replies = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> ClamdProxy:
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=64)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def set(self, mode: str, delay: float = 0.0) -> None:
        if mode == "down" and self._listener is not None:
            self.close()
        elif mode != "down" and self._listener is None:
            self.start()
        self.mode, self.delay = mode, delay

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        mode, delay = self.mode, self.delay
        with client:
            if mode == "error":
                with contextlib.suppress(OSError):
                    client.settimeout(5)
                    client.recv(65536)
                    client.sendall(self.ERROR_REPLY)
                return
            with socket.socket(socket.AF_UNIX) as upstream:
                try:
                    upstream.connect(self.target)
                except OSError:
                    return  # clamd itself is down: the client sees the connection close
                forward = threading.Thread(target=_pipe, args=(client, upstream, 0.0), daemon=True)
                forward.start()
                _pipe(upstream, client, delay if mode == "slow" else 0.0, self._passed_on)
                forward.join(5)

    def _passed_on(self, data: bytes) -> None:
        with self._lock:
            self.ok_replies += data.count(b"stream: OK")


def _pipe(
    source: socket.socket, target: socket.socket, delay: float, sent: Callable[[bytes], None] | None = None
) -> None:
    """Copy until end of stream; the first bytes wait `delay` seconds; `sent` hears of what went."""
    try:
        while data := source.recv(65536):
            if delay:
                time.sleep(delay)
                delay = 0.0
            target.sendall(data)
            if sent is not None:
                sent(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
    except OSError:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)


# -- PostgreSQL ---------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    """Debian's server binaries (the newest version installed), or None."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


class PrivatePostgres:
    """A throwaway cluster: initdb in a temporary folder, trust auth, loopback on a free port,
    fsync off (safe against a server crash, which is what a scenario causes; commits stay
    synchronous, so an acknowledged commit survives a crash). Never the machine's shared server.
    initdb refuses root, so as root the cluster runs as the `postgres` system user (runuser).
    `host`: the address it listens on, `clients`: the network allowed in besides loopback;
    `prefix`: what its commands run under (another host's network namespace)."""

    def __init__(self, host: str = "127.0.0.1", prefix: Sequence[str] = (), clients: str | None = None) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="opsdeck-chaos-pg-"))
        self.data = self.dir / "data"
        self.host, self.clients = host, clients
        self.user_prefix: list[str] = list(prefix)
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root without runuser: cannot start PostgreSQL as another user")
            try:
                import pwd

                owner = pwd.getpwnam("postgres")
            except KeyError as err:
                raise RuntimeError("running as root and there is no `postgres` user to run PostgreSQL as") from err
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.user_prefix += [runuser, "-u", "postgres", "--"]

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        # Output to a file, not a pipe: the server pg_ctl leaves running would hold a pipe open.
        with open(self.dir / "pg_ctl.log", "ab") as log:
            subprocess.run(
                [*self.user_prefix, *args],
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )

    def initdb(self) -> PrivatePostgres:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
        )
        if self.clients:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.clients} trust\n")
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses={self.host} -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        wait_until(self.answers, 30, 0.1, what="PostgreSQL to accept connections")

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart`: every connection is cut (`fast`: rolled back; `immediate`: a crash
        and recovery)."""
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "postgres.log"),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "restart",
        )
        wait_until(self.answers, 30, 0.1, what="PostgreSQL to accept connections again")

    def crash(self, down_seconds: float) -> None:
        """Stop at once (`immediate`: no shutdown checkpoint, recovery at start), stay down for
        `down_seconds`, start again."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
