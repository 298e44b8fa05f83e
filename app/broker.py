"""Dramatiq's Redis broker, with consumers that wait on Redis for work instead of sleeping blind.

Dramatiq's Redis consumer polls: when a fetch finds its queue empty it sleeps, 5 ms doubling
with jitter up to the worker timeout (1 s by default), and fetches again. A message published to
an idle queue therefore waits up to a second before a worker sees it, once per hop: a webhook
on a quiet endpoint, each step from an M-Pesa callback to a hotspot user.

Here, after a fetch that found nothing, the consumer blocks on the queue's list in Redis with
`BLMOVE q q LEFT LEFT` (the head taken and put back in one atomic command, so nothing moves)
until a message id is pushed there or the worker timeout passes (capped a second short of the
client's socket timeout), then fetches as Dramatiq does. An idle worker still wakes at most
once per timeout (for shutdown, heartbeats and delayed messages), and a new message is fetched
as soon as it lands. Redis older than 6.2 (no BLMOVE), or one whose ACL refuses it, keeps
Dramatiq's polling.

Each consumer (one per queue and delay queue of a worker process) keeps a connection busy while
it waits: app/extensions.py sizes the client's pool for that.

Acks are combined (app/combining.py). Dramatiq acks each message with its own script call, a
round trip made by the worker thread that ran it; here the thread whose turn it is acks its
message and every message the consumer's other threads finished meanwhile in one script call
(`ACK_MANY`: the same heartbeat, SREM and HDEL as Dramatiq's ack, for each id). Measured
under load, Dramatiq's acks were a quarter of a worker's Python time. An ack still returns
only once Redis has it, so nothing about at-least-once changes.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed

from app.combining import Combiner

log = logging.getLogger(__name__)

#: Dramatiq's `ack` (its dispatch.lua) for many message ids at once. KEYS: the consumer's ack
#: set, the queue's message hash, the heartbeats; ARGV: now (ms), the broker id, message ids.
ACK_MANY = """
redis.call("zadd", KEYS[3], ARGV[1], ARGV[2])
for i = 3, #ARGV do
    if redis.call("srem", KEYS[1], ARGV[i]) > 0 then
        redis.call("hdel", KEYS[2], ARGV[i])
    end
end
"""


class WaitingConsumer(_RedisConsumer):  # type: ignore[misc]
    #: Cleared for the process when the server has no BLMOVE.
    supported = True
    #: A wait ends this long before the client's socket timeout would cut it off.
    SOCKET_MARGIN_SECONDS = 1.0

    def __init__(self, broker: RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self.key = f"{broker.namespace}:{queue_name}"
        self.wait_seconds = timeout / 1000
        socket_timeout = broker.client.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout:
            self.wait_seconds = min(self.wait_seconds, socket_timeout - self.SOCKET_MARGIN_SECONDS)
        self._refused = False
        ns = broker.namespace
        self._ack_keys = [f"{ns}:__acks__.{broker.broker_id}.{queue_name}", f"{self.key}.msgs", f"{ns}:__heartbeats__"]
        self._acks: Combiner[str, None] = Combiner(self._ack_many)

    def ack(self, message: Any) -> None:
        try:
            # The consumer's queue, not the message's: a delayed message is acked on the delay queue.
            self._acks(message.options["redis_message_id"])
        finally:
            self.queued_message_ids.discard(message.message_id)

    def _ack_many(self, message_ids: list[str]) -> list[None]:
        try:
            self.broker.ack_many(keys=self._ack_keys, args=[current_millis(), self.broker.broker_id, *message_ids])
        except redis.ConnectionError as err:
            raise ConnectionClosed(err) from None
        return [None] * len(message_ids)

    def __next__(self) -> Any:
        # Only when the last fetch missed and this fetch would run (a consumer holding all it may
        # prefetch does not fetch, and must not spin on a queue that is not empty).
        if self.misses and not self.message_cache and self.outstanding_message_count < self.prefetch:
            self.wait()
        return super().__next__()

    def wait(self) -> None:
        """Block until the queue holds a message id or the wait's time passes. A lost or hung
        connection ends as Dramatiq's fetch would end it (ConnectionClosed); a refusal leaves
        Dramatiq's polling in place."""
        if not WaitingConsumer.supported or self._refused or self.wait_seconds <= 0:
            return
        try:
            self.broker.client.blmove(self.key, self.key, self.wait_seconds, "LEFT", "LEFT")
        except redis.ResponseError as err:
            if "unknown command" in str(err).lower():
                WaitingConsumer.supported = False
                log.warning("Redis has no BLMOVE (6.2+): idle workers poll, up to the worker timeout apart")
            else:  # e.g. an ACL without BLMOVE: this consumer polls
                self._refused = True
                log.warning("Redis refused BLMOVE on %s (%s): this queue's consumer polls", self.key, err)
            return
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise ConnectionClosed(err) from None
        except redis.RedisError:
            return  # anything else: the fetch that follows meets it, as Dramatiq's would
        self.misses = 0  # a fetch that still misses (another worker won the message) sleeps the least


class Broker(RedisBroker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ack_many = self.client.register_script(ACK_MANY)

    @property
    def consumer_class(self) -> type[WaitingConsumer]:
        return WaitingConsumer
