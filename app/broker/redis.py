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

Publishing many messages is one script call (`Broker.enqueue_many`, what the outbox uses):
Dramatiq's `enqueue` is a round trip per message, and the outbox's marker for each another.

Acks are combined (app/broker/combining.py). Dramatiq acks each message with its own script call, a
round trip made by the worker thread that ran it; here the thread whose turn it is acks its
message and every message the consumer's other threads finished meanwhile in one script call
(`ACK_MANY`: the same heartbeat, SREM and HDEL as Dramatiq's ack, for each id). An ack still
returns only once Redis has it, so nothing about at-least-once changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import uuid4

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import ConnectionClosed

from app.broker.combining import Combiner

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


#: Dramatiq's `enqueue` (its dispatch.lua: HSET the message, RPUSH its id) for many messages,
#: each with an optional marker key SET in the same atomic step. KEYS: the namespace; ARGV: the
#: markers' expiry (s), then per message: queue name, Redis message id, encoded message, marker
#: key ("" for none), marker value.
ENQUEUE_MANY = """
for i = 2, #ARGV, 5 do
    local queue = KEYS[1] .. ":" .. ARGV[i]
    redis.call("hset", queue .. ".msgs", ARGV[i + 1], ARGV[i + 2])
    redis.call("rpush", queue, ARGV[i + 1])
    if ARGV[i + 3] ~= "" then
        redis.call("set", ARGV[i + 3], ARGV[i + 4], "EX", ARGV[1])
    end
end
"""


class Publication(NamedTuple):
    """A message to enqueue, after `delay` ms (None: now); `marker`, a (key, value) set with it."""

    message: Message
    delay: int | None = None
    marker: tuple[str, str] | None = None


class WaitingConsumer(_RedisConsumer):
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


class Broker(RedisBroker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scripts: dict[str, Any] = {}
        self.ack_many = self.script(ACK_MANY)
        self._enqueue_many = self.script(ENQUEUE_MANY)

    def script(self, text: str) -> Any:
        """The Lua script `text` on this broker's client, registered once (redis-py sends
        EVALSHA, and loads the script when the server does not know it)."""
        script = self._scripts.get(text)
        if script is None:
            script = self._scripts[text] = self.client.register_script(text)
        return script

    def enqueue_many(self, publications: Sequence[Publication], *, marker_ttl: int = 86400) -> list[Message]:
        """Enqueue every message, as `enqueue` would, in one script call: all of them or none
        (a Redis error raises). Markers expire after `marker_ttl` seconds."""
        if not publications:
            return []
        args: list[Any] = [marker_ttl]
        sent = []
        for publication in publications:
            # As Dramatiq's enqueue: a fresh Redis id per enqueue (a job is published again on
            # a retry), a delayed message on the delay queue with its eta.
            message = publication.message.copy(options={"redis_message_id": str(uuid4())})
            queue_name = message.queue_name
            if publication.delay is not None:
                queue_name = dq_name(queue_name)
                message = message.copy(queue_name=queue_name, options={"eta": current_millis() + publication.delay})
            self.emit_before("enqueue", message, publication.delay)
            key, value = publication.marker or ("", "")
            args += [queue_name, message.options["redis_message_id"], message.encode(), key, value]
            sent.append((message, publication.delay))
        self._enqueue_many(keys=[self.namespace], args=args)
        for message, delay in sent:
            self.emit_after("enqueue", message, delay)
        return [message for message, _ in sent]

    @property
    def consumer_class(self) -> type[WaitingConsumer]:
        return WaitingConsumer
