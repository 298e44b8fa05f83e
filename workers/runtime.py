"""Worker runtime: the Redis broker with our middleware, and the `job_actor` decorator.

`setup(app)` is called once per worker process (by workers/__init__.py) before the actor
modules are imported.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq import Middleware
from dramatiq.middleware import CurrentMessage, ShutdownNotifications, TimeLimit
from flask import Flask

from app import jobtypes, live
from app.extensions import queue
from app.jobtypes import JobType
from workers.middleware import AppContext, Ledger, current_job

log = logging.getLogger("opsdeck.worker")

_app: Flask | None = None


class Heartbeats(Middleware):
    """Every WORKER_HEARTBEAT_SECONDS, this process's heartbeat for the workers page: its
    queues, threads, the jobs its threads run now and its memory (app/services/workers.py)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._running: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._process: Any = None

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        from app.services import workers

        host, pid = socket.gethostname(), os.getpid()
        self._process = workers.Process(
            id=f"{host}:{pid}",
            host=host,
            pid=pid,
            queues=sorted(worker.consumer_whitelist or broker.get_declared_queues()),
            threads=worker.worker_threads,
            started_at=datetime.now(UTC).isoformat(),
        )
        self._stop.clear()
        threading.Thread(target=self._loop, name="opsdeck-worker-heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        from app.services import workers

        self._stop.set()
        if self._process is not None:
            with self.app.app_context():
                try:
                    workers.gone(self._process.id)
                except Exception as err:
                    log.warning("worker heartbeat not removed: %s", err)

    def before_process_message(self, broker: Any, message: Any) -> None:
        with self._lock:
            self._running[message.message_id] = {
                "id": message.message_id,
                "actor": message.actor_name,
                "since": datetime.now(UTC).isoformat(),
            }

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        with self._lock:
            self._running.pop(message.message_id, None)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self.after_process_message(broker, message)

    def _loop(self) -> None:
        from app.services import workers

        with self.app.app_context():
            every = workers.interval()
            while True:
                with self._lock:
                    self._process.jobs = sorted(self._running.values(), key=lambda job: job["since"])
                self._process.rss_bytes, self._process.interval = workers.rss_bytes(), every
                try:
                    workers.beat(self._process)
                except Exception as err:  # Redis away: the page shows the process silent meanwhile
                    log.warning("worker heartbeat failed: %s", err)
                if self._stop.wait(every):
                    break


def setup(app: Flask) -> Any:
    """Configure the app's broker for consuming: middleware, every queue declared, set global."""
    global _app
    broker = queue.broker
    if not any(isinstance(m, Ledger) for m in broker.middleware):
        broker.add_middleware(TimeLimit(time_limit=app.config["WORKER_TIME_LIMIT_SECONDS"] * 1000))
        broker.add_middleware(ShutdownNotifications())
        broker.add_middleware(CurrentMessage())
        broker.add_middleware(AppContext(app))
        broker.add_middleware(Ledger(app))
        broker.add_middleware(Heartbeats(app))
    for name in jobtypes.all_queue_names():
        broker.declare_queue(name)
    live.init_publisher(app)
    dramatiq.set_broker(broker)
    _app = app
    return broker


def job_actor(job_type: JobType, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare the actor that runs `job_type`. The function gets the ClaimedJob and returns
    the job's result (JSON-serialisable). Retry and time policies go in `options`:
    min_backoff/max_backoff (ms) or retry_schedule (s), throws (not retried), time_limit (ms),
    notify_shutdown."""

    def decorator(fn: Callable[..., Any]) -> Any:
        def run(job_id: str) -> None:
            job = current_job()
            job.result = fn(job)

        run.__name__ = job_type.actor_name
        run.__doc__ = fn.__doc__
        return dramatiq.actor(
            actor_name=job_type.actor_name, queue_name=job_type.queue, broker=dramatiq.get_broker(), **options
        )(run)

    return decorator
