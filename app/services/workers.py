"""Worker and scheduler processes as operators see them: each process's heartbeat (host, pid,
queues, threads, the jobs it runs now, memory, since when) kept in Redis, and pushed to the
workers page as it arrives. The dashboard's and /metrics' count of live workers is read here too.

Heartbeats are one Redis hash (field: the worker id `host:pid`, value: JSON), so the page is
one HGETALL whatever the number of processes. A process that stops cleanly takes its entry
out; one that dies keeps it, and is shown silent once SILENT_AFTER_BEATS heartbeats are missing.
Heartbeats go to the live feed's namespace in a room of their own (`workers`), which only the
workers page joins: they are not feed items.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from app.extensions import queue, socketio

log = logging.getLogger("opsdeck.workers")

PROCESSES_KEY = "opsdeck:workers:processes"
#: The Socket.IO room (namespace /admin) that heartbeats are pushed to.
ROOM = "workers"
#: Missed heartbeats before a process is shown silent.
SILENT_AFTER_BEATS = 3
#: A silent process is forgotten after this long.
FORGET_SECONDS = 24 * 3600


def interval() -> float:
    return float(current_app.config["WORKER_HEARTBEAT_SECONDS"])


def rss_bytes() -> int | None:
    """This process's resident memory (Linux /proc), None where unavailable."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Process:
    id: str
    host: str
    pid: int
    queues: list[str]
    threads: int
    #: [{"id": job id, "actor": …, "since": ISO time}]
    jobs: list[dict[str, Any]] = field(default_factory=list)
    rss_bytes: int | None = None
    started_at: str = ""
    last_heartbeat: float = 0.0
    interval: float = 5.0
    role: str = "worker"

    @property
    def busy(self) -> int:
        return len(self.jobs)

    @property
    def silent_after(self) -> float:
        return self.interval * SILENT_AFTER_BEATS

    @property
    def silent(self) -> bool:
        return time.time() - self.last_heartbeat > self.silent_after

    @property
    def last_heartbeat_at(self) -> datetime:
        return datetime.fromtimestamp(self.last_heartbeat, UTC)

    @property
    def started(self) -> datetime | None:
        return datetime.fromisoformat(self.started_at) if self.started_at else None

    def as_event(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in ("id", "host", "pid", "queues", "threads", "jobs", "rss_bytes", "role")},
            "busy": self.busy,
            "started_at": self.started_at,
            "last_heartbeat": self.last_heartbeat_at.isoformat(),
            "silent_after": self.silent_after,
        }


def beat(process: Process) -> None:
    """Record a heartbeat and push it to the workers page (best-effort for the push)."""
    process.last_heartbeat = time.time()
    queue.redis.hset(PROCESSES_KEY, process.id, json.dumps(process.__dict__))
    _push("workers.heartbeat", process.as_event())


def gone(worker_id: str) -> None:
    """A process that stops cleanly leaves the list."""
    queue.redis.hdel(PROCESSES_KEY, worker_id)
    _push("workers.gone", {"id": worker_id})


def _push(event_type: str, data: dict[str, Any]) -> None:
    from app import live

    emitter = current_app.extensions.get("opsdeck_live_emitter") or socketio
    try:
        emitter.emit(event_type, data, namespace=live.NAMESPACE, to=ROOM)
    except Exception as err:
        log.warning("%s not pushed: %s", event_type, err)


def processes() -> list[Process]:
    """Every process that reported within FORGET_SECONDS, by host and pid; older entries are
    removed."""
    found, stale = [], []
    now = time.time()
    for worker_id, raw in queue.redis.hgetall(PROCESSES_KEY).items():
        try:
            process = Process(**json.loads(raw))
        except (ValueError, TypeError):
            stale.append(worker_id)
            continue
        if now - process.last_heartbeat > FORGET_SECONDS:
            stale.append(worker_id)
        else:
            found.append(process)
    if stale:
        queue.redis.hdel(PROCESSES_KEY, *stale)
    return sorted(found, key=lambda p: (p.role, p.host, p.pid))


def alive(role: str = "worker") -> int | None:
    """Processes of `role` that are not silent; None when Redis is unreachable."""
    try:
        return sum(1 for p in processes() if p.role == role and not p.silent)
    except Exception:
        return None
