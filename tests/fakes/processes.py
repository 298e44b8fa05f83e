"""Start and stop real processes on free loopback ports: redis-server, Dramatiq workers,
the scheduler and the production web server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], object], timeout: float = 20, interval: float = 0.05, what: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class RedisServer:
    """A private redis-server on a free port, no persistence; `args` are more config directives
    (e.g. `--rename-command BLMOVE ""`)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="opsdeck-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _port_open(self.port), 10, what="redis-server")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        wait_until(lambda: not _port_open(self.port), 10, what="redis-server to stop")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Process:
    """A child process of ours (a worker group, the scheduler, the web server) with its log."""

    def __init__(self, args: Sequence[str], env: dict[str, str], name: str, log_dir: Path, cwd: Path = ROOT) -> None:
        self.args, self.env, self.name, self.cwd = list(args), env, name, cwd
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (Dramatiq's children too)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM to the main process only, as supervisord does with stopasgroup=false (Dramatiq's
        main process forwards it once; a second SIGTERM would make its workers exit at once),
        then SIGKILL to the whole group after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.proc.wait(5)

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.log(), timeout, 0.1, what=f"{self.name} to log {text!r}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def web_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The production web command (supervisor/opsdeck.conf) on a port (of loopback by default). `--no-control-socket`
    only keeps gunicorn from creating its admin socket in the home directory."""
    return [
        str(BIN / "gunicorn"),
        "-c",
        str(ROOT / "supervisor" / "gunicorn.conf.py"),
        "--bind",
        f"{host}:{port}",
        "--no-control-socket",
        "wsgi:app",
    ]


def worker_command(queues: Sequence[str], processes: int = 1, threads: int = 4) -> list[str]:
    return [
        str(BIN / "dramatiq"),
        "workers",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        *queues,
    ]


def wait_for_web(proc: Process, port: int, what: str = "web server", host: str = "127.0.0.1") -> str:
    """The base URL of a web process once its /healthz answers 200 (its log in the error
    when it never does)."""
    import requests

    url = f"http://{host}:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:  # refused, or accepted while the worker boots
            return False

    try:
        wait_until(up, 60, 0.1, what=what)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; its log:\n{proc.log()[-4000:]}") from None
    return url


def scheduler_command() -> list[str]:
    return [sys.executable, "-m", "workers.scheduler"]
