"""The production process topology for one scenario: the web process (gunicorn), the scheduler
and one `dramatiq workers` group per family, each a process group of its own that a scenario
can SIGKILL and start again, as supervisord's autorestart would."""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Job
from tests.conftest import Workers
from tests.fakes.processes import Process

#: Each family's queues (with their _high and _low neighbours).
FAMILY_QUEUES = {
    "system": ["default"],
    "email": ["email"],
    "webhooks": ["webhooks"],
    "scans": ["scans"],
    "provisioning": ["payments", "provisioning", "routers"],
}

#: Settings of every process in a scenario: short leases and relay ticks so a lost worker's
#: jobs come back within seconds, retry schedules in seconds, and no rate limits or pacing
#: (a scenario measures correctness, not politeness). Retention is off: its daily run must not
#: delete what a scenario reconciles.
CHAOS_ENV: dict[str, Any] = {
    "JOB_LEASE_SECONDS": 6,  # a live worker stalled 2-3 s on a loaded machine keeps its jobs
    "OUTBOX_RELAY_INTERVAL": 0.5,
    "OUTBOX_GRACE_SECONDS": 1,
    "OPSDECK_DISABLED_FAMILIES": "retention",
    "API_RATE_LIMIT_PER_MINUTE": 0,
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_RETRY_SCHEDULE": ",".join(["1"] * 14),
    "WEBHOOK_TIMEOUT": 3,
    "WEBHOOK_CONNECT_TIMEOUT": 1,
    "SMTP_TIMEOUT": 5,
    "EMAIL_RATE_PER_MINUTE": 0,
    "EMAIL_DELAY": 0.2,
    "EMAIL_LEASE_SECONDS": 3,
    "EMAIL_RETRY_SCHEDULE": ",".join(["1"] * 24),
    "CLAMD_TIMEOUT": 3,
    "SCAN_RETRY_SCHEDULE": ",".join(["1"] * 24),
    "SCAN_SIGNATURE_CHECK_SECONDS": 3600,
    "PROVISION_RETRY_SCHEDULE": ",".join(["1"] * 24),
    "ROUTER_TIMEOUT": 2,
    "ROUTER_CHECK_SECONDS": 3600,
    "EXPIRY_CHECK_SECONDS": 3600,
}


def queues_of(*families: str) -> list[str]:
    names = [q for family in families for q in FAMILY_QUEUES[family]]
    return [f"{q}{suffix}" for q in names for suffix in ("", "_high", "_low")]


def process_group(pgid: int) -> set[int]:
    """Every live pid in a process group (read from /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # state, ppid, pgrp, …
            pids.add(int(entry.name))
    return pids


@dataclass
class Group:
    """A `dramatiq workers` program: its queues, threads, settings and current process."""

    name: str
    queues: list[str]
    threads: int
    proc: Process | None = None
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def pgid(self) -> int:
        assert self.proc is not None and self.proc.proc is not None
        return self.proc.proc.pid


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: the group hit, and the jobs it was running at that moment (by the ledger)."""

    group: str
    running: dict[str, str]  # job id → type


class Stack:
    """Web, scheduler and worker groups of one scenario, all with CHAOS_ENV (+ overrides)."""

    def __init__(self, workers: Workers, **env: Any) -> None:
        self.workers = workers
        self.env = {**CHAOS_ENV, **env}
        self.groups: dict[str, Group] = {}
        self.kills: list[Kill] = []
        self.url = ""
        self.hostname = socket.gethostname()

    def web(self, **env: Any) -> str:
        self.url = self.workers.start_web(**{**self.env, **env})
        return self.url

    def scheduler(self, **env: Any) -> Process:
        return self.workers.start_scheduler(**{**self.env, **env})

    def group(self, name: str, queues: list[str], threads: int = 4, **env: Any) -> Group:
        group = Group(name, queues, threads, env={**self.env, **env})
        self.groups[name] = group
        self.start(name)
        return group

    def start(self, name: str) -> Group:
        group = self.groups[name]
        group.proc = self.workers.start(group.queues, name=name, threads=group.threads, **group.env)
        return group

    def running_in(self, name: str) -> dict[str, str]:
        """Jobs the ledger says a process of this group is running (id → type)."""
        return self._running(process_group(self.groups[name].pgid))

    def _running(self, pids: set[int]) -> dict[str, str]:
        db.session.rollback()
        rows = db.session.execute(select(Job.id, Job.type, Job.worker_id).where(Job.status == "running")).all()
        return {row.id: row.type for row in rows if _pid(row.worker_id, self.hostname) in pids}

    def kill(self, name: str, *, restart: bool = True) -> Kill:
        """SIGKILL the whole group (main process and its worker processes), record what it was
        running, and start it again (supervisord's autorestart)."""
        group = self.groups[name]
        assert group.proc is not None and group.proc.proc is not None
        pids = process_group(group.pgid)
        os.killpg(group.pgid, signal.SIGKILL)
        group.proc.proc.wait(10)
        kill = Kill(name, self._running(pids))  # nobody told the ledger: their rows still say running
        self.kills.append(kill)
        if restart:
            self.start(name)
        return kill

    def logs(self) -> str:
        return self.workers.logs()


def _pid(worker_id: str | None, hostname: str) -> int | None:
    host, _, pid = (worker_id or "").rpartition(":")
    return int(pid) if host == hostname and pid.isdigit() else None
