"""Messages a dead worker had fetched but not started, put back on their queues within a bound.

A Dramatiq worker prefetches messages (threads × 2 per queue, and every delayed message) into
memory; Redis keeps them in that worker's ack set until acked. If the worker dies, Dramatiq
requeues them only during "maintenance", which runs on about 0.1% of broker calls after a 60 s
heartbeat timeout, so it can take many minutes. Their jobs are `queued` in the ledger with no lease, so
lease recovery does not see them. The relay tick therefore runs Dramatiq's own maintenance
script for every queue, every tick, with the heartbeat timeout set to JOB_LEASE_SECONDS.

Live workers stay out of it: their lease heartbeat (workers/middleware.py) refreshes their
Dramatiq heartbeat too, even while every thread is busy and nothing is fetched. A message
requeued from a worker that was only slow is harmless: the ledger claim lets one run.
"""

from __future__ import annotations

import time
from typing import Any

from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.common import dq_name
from flask import current_app

from app import jobtypes
from app.extensions import queue

_maintainers: dict[int, RedisBroker] = {}


def _maintainer() -> RedisBroker:
    """A broker on the app's Redis connection whose every call runs maintenance."""
    timeout_ms = int(current_app.config["JOB_LEASE_SECONDS"]) * 1000
    key = id(queue.broker)
    broker = _maintainers.get(key)
    if broker is None or broker.heartbeat_timeout != timeout_ms:
        broker = RedisBroker(
            client=queue.redis, middleware=[], maintenance_chance=MAINTENANCE_SCALE, heartbeat_timeout=timeout_ms
        )
        _maintainers[key] = broker
    return broker


def requeue_from_dead_workers() -> None:
    """Run Dramatiq's maintenance on every queue (and its delay queue) once."""
    broker = _maintainer()
    for name in jobtypes.all_queue_names():
        for queue_name in (name, dq_name(name)):
            broker.do_qsize(queue_name)


def keep_alive(broker: Any) -> None:
    """Refresh a worker broker's Dramatiq heartbeat (called from the lease heartbeat)."""
    broker.client.zadd(f"{broker.namespace}:__heartbeats__", {broker.broker_id: int(time.time() * 1000)})
