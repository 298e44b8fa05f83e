"""A live Opsdeck for the clients' suites (clients/SCENARIOS.md): its own Redis and clamd, a
SQLite database migrated with `flask db upgrade`, the production web command twice (the second
with a small rate limit, for the 429 scenario) and one worker group on every queue, loopback
webhook endpoints allowed.

`python -m tests.fakes.stack` runs one and prints the OPSDECK_* variables that the clients'
integration tests read, until Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

from tests.fakes.clamav import ClamdServer
from tests.fakes.processes import BIN, ROOT, Process, RedisServer, free_port, wait_for_web, web_command, worker_command

#: API requests (or bulk items) a minute on the limited web process.
LIMIT = 3


class LiveStack:
    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or Path(tempfile.mkdtemp(prefix="opsdeck-stack-"))
        self.redis = RedisServer()
        self.clamd = ClamdServer()
        self.processes: list[Process] = []
        self.url = self.limited_url = ""

    def environment(self, **extra: str) -> dict[str, str]:
        """Everything a process of this stack reads, and nothing from the caller's environment
        but PATH and HOME."""
        import os

        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(self.dir)),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "FLASK_APP": "wsgi.py",
            "OPSDECK_ENV": "test",
            "DATABASE_URL": f"sqlite:///{self.dir / 'opsdeck.db'}",
            "REDIS_URL": self.redis.url,
            "CLAMD_URL": self.clamd.url,
            "SCAN_STORAGE_URL": (self.dir / "files").resolve().as_uri(),
            "SCAN_QUARANTINE_URL": (self.dir / "quarantine").resolve().as_uri(),
            "SECRET_KEY": "stack-secret-key",
            "OPSDECK_ENCRYPTION_KEYS": self._fernet,
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "WEBHOOK_RETRY_SCHEDULE": "1,2",
            "WEBHOOK_TIMEOUT": "5",
            **extra,
        }

    def start(self) -> LiveStack:
        self._fernet = Fernet.generate_key().decode()
        self.redis.start()
        self.clamd.start()
        subprocess.run(
            [str(BIN / "flask"), "db", "upgrade"], env=self.environment(), cwd=ROOT, check=True, capture_output=True
        )
        from app.jobtypes import all_queue_names

        worker = Process(worker_command(all_queue_names(), 1, 8), self.environment(), "worker", self.dir)
        self.processes.append(worker.start())
        self.url = self._web("web")
        self.limited_url = self._web("web-limited", API_RATE_LIMIT_PER_MINUTE=str(LIMIT))
        return self

    def _web(self, name: str, **extra: str) -> str:
        port = free_port()
        proc = Process(web_command(port), self.environment(**extra), name, self.dir)
        self.processes.append(proc.start())
        return wait_for_web(proc, port, what=name)

    def tenant(self, name: str) -> dict[str, str]:
        """A new tenant and its API key (`flask tenants create --json`)."""
        out = subprocess.run(
            [str(BIN / "flask"), "tenants", "create", name, "--json"],
            env=self.environment(),
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)

    def client_env(self, name: str) -> dict[str, str]:
        """The variables a client's integration suite reads: two fresh tenants, one for the
        limited web process (its rate-limit counter is its own)."""
        main, limited = self.tenant(name), self.tenant(f"{name}-limited")
        return {
            "OPSDECK_URL": self.url,
            "OPSDECK_KEY_ID": main["key_id"],
            "OPSDECK_SECRET": main["secret"],
            "OPSDECK_LIMITED_URL": self.limited_url,
            "OPSDECK_LIMITED_KEY_ID": limited["key_id"],
            "OPSDECK_LIMITED_SECRET": limited["secret"],
            "OPSDECK_LIMIT": str(LIMIT),
        }

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-4000:]}" for p in self.processes)

    def close(self) -> None:
        for proc in self.processes:
            proc.stop()
        self.clamd.close()
        self.redis.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    stack = LiveStack().start()
    try:
        for name, value in stack.client_env("dev").items():
            print(f"export {name}={value}")
        print("# running; Ctrl-C stops it", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.close()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
