"""Dramatiq's Redis broker, with consumers that wait on Redis for work instead of sleeping blind.

Dramatiq's Redis consumer polls: when a fetch finds its queue empty it sleeps, 5 ms doubling
with jitter up to the worker timeout (1 s by default), and fetches again. A message published to
an idle queue therefore waits up to a second before a worker sees it, once per hop: a webhook
on a quiet endpoint, each step from an M-Pesa callback to a hotspot user.

Here, after a fetch that found nothing, the consumer blocks on the queue's list in Redis with
`BLMOVE q q LEFT LEFT` (the head taken and put back in one atomic command, so nothing moves)
until a message id is pushed there or the worker timeout passes, then fetches as Dramatiq
does. An idle worker still wakes at most once per timeout (for heartbeats, acks and shutdown),
and a new message is fetched as soon as it lands. Redis older than 6.2 (no BLMOVE) keeps
Dramatiq's polling.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer

log = logging.getLogger(__name__)


class WaitingConsumer(_RedisConsumer):  # type: ignore[misc]
    #: Cleared for the process when the server has no BLMOVE.
    supported = True

    def __init__(self, broker: RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self.key = f"{broker.namespace}:{queue_name}"

    def __next__(self) -> Any:
        # Only when the last fetch missed and this fetch would run (a consumer holding all it may
        # prefetch does not fetch, and must not spin on a queue that is not empty).
        if self.misses and not self.message_cache and self.outstanding_message_count < self.prefetch:
            self.wait()
        return super().__next__()

    def wait(self) -> None:
        """Block until the queue holds a message id or the worker timeout passes. Errors are
        left to the fetch that follows, which reports them as Dramatiq does."""
        if not WaitingConsumer.supported:
            return
        try:
            self.broker.client.blmove(self.key, self.key, self.timeout / 1000, "LEFT", "LEFT")
        except redis.ResponseError as err:
            if "unknown command" in str(err).lower():
                WaitingConsumer.supported = False
                log.warning("Redis has no BLMOVE (6.2+): idle workers poll, up to the worker timeout apart")
            return
        except redis.RedisError:
            return
        self.misses = 0  # a fetch that still misses (another worker won the message) sleeps the least


class Broker(RedisBroker):  # type: ignore[misc]
    @property
    def consumer_class(self) -> type[WaitingConsumer]:
        return WaitingConsumer
