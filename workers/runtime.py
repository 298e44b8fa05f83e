"""Worker runtime: the Redis broker with our middleware, and the `job_actor` decorator.

`setup(app)` is called once per worker process (by workers/__init__.py) before the actor
modules are imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage, ShutdownNotifications, TimeLimit
from flask import Flask

from app import jobtypes, live
from app.extensions import queue
from app.jobtypes import JobType
from workers.middleware import AppContext, Ledger, current_job

_app: Flask | None = None


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
