"""The broker's consumers (app/broker/redis.py): after a fetch that found nothing, a consumer waits on
Redis for the next message instead of sleeping blind, so an idle worker takes a job as it lands."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from dramatiq import Message
from dramatiq.errors import ConnectionClosed

from app.broker.redis import Broker, Publication, WaitingConsumer
from tests.fakes.processes import RedisServer, wait_until


def _broker(url: str) -> tuple[Broker, str]:
    queue_name = f"q{uuid.uuid4().hex[:8]}"  # the session's Redis is shared: a queue of our own
    broker = Broker(client=redis.Redis.from_url(url), middleware=[])
    broker.declare_queue(queue_name)
    return broker, queue_name


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[tuple[Broker, str]]:
    broker, queue_name = _broker(redis_server.url)
    yield broker, queue_name
    broker.client.close()


def _message(queue_name: str) -> Message:  # type: ignore[type-arg]
    return Message(queue_name=queue_name, actor_name="noop", args=(), kwargs={}, options={})


def _blmove_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_blmove", {}).get("calls", 0))


def _waiting_clients(client: redis.Redis) -> int:
    return sum(1 for c in client.client_list() if c.get("cmd") == "blmove")


def test_an_idle_consumer_takes_a_message_as_it_lands(broker):
    broker, queue_name = broker
    consumer = broker.consume(queue_name, prefetch=1, timeout=30_000)
    assert next(consumer) is None  # the queue is empty: a miss
    message = _message(queue_name)
    seen_waiting: list[bool] = []

    def publish() -> None:
        try:
            wait_until(lambda: _waiting_clients(broker.client) > 0, 10, 0.01, what="a consumer waiting in Redis")
            seen_waiting.append(True)
        finally:
            broker.enqueue(message)

    publisher = threading.Thread(target=publish)
    publisher.start()
    # Dramatiq's own consumer sleeps after a miss and comes back empty-handed (None); this one
    # blocks in Redis until the message is there, and returns it from this same call.
    got = next(consumer)
    publisher.join()
    assert seen_waiting == [True]
    assert got is not None and got.message_id == message.message_id
    assert broker.client.llen(f"dramatiq:{queue_name}") == 0  # taken once: the wait moved nothing


def test_the_wait_leaves_the_queue_in_order(broker):
    broker, queue_name = broker
    consumer = broker.consume(queue_name, prefetch=10, timeout=30_000)
    assert next(consumer) is None
    sent = [_message(queue_name) for _ in range(3)]
    for message in sent:
        broker.enqueue(message)
    got = [next(consumer) for _ in sent]
    assert [m.message_id for m in got] == [m.message_id for m in sent]


def test_a_consumer_holding_all_it_may_prefetch_does_not_wait(broker):
    broker, queue_name = broker
    consumer = broker.consume(queue_name, prefetch=1, timeout=30_000)
    for _ in range(2):
        broker.enqueue(_message(queue_name))
    assert next(consumer) is not None  # one outstanding: its prefetch is full
    before = _blmove_calls(broker.client)
    assert [next(consumer) for _ in range(3)] == [None, None, None]  # no fetch, so no wait either
    assert _blmove_calls(broker.client) == before
    assert broker.client.llen(f"dramatiq:{queue_name}") == 1


def test_acks_from_many_threads_leave_nothing_behind_in_redis(broker):
    """Acks are combined into one script call per turn; each must still do what Dramatiq's
    ack does: the id out of the consumer's ack set and the message out of the queue's hash."""
    broker, queue_name = broker
    consumer = broker.consume(queue_name, prefetch=20, timeout=30_000)
    for _ in range(20):
        broker.enqueue(_message(queue_name))
    got = [next(consumer) for _ in range(20)]
    acks = f"dramatiq:__acks__.{broker.broker_id}.{queue_name}"
    assert broker.client.scard(acks) == 20 and consumer.outstanding_message_count == 20
    threads = [threading.Thread(target=consumer.ack, args=(m,)) for m in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert broker.client.scard(acks) == 0 and broker.client.hlen(f"dramatiq:{queue_name}.msgs") == 0
    assert consumer.outstanding_message_count == 0
    assert broker.client.zscore("dramatiq:__heartbeats__", broker.broker_id) is not None
    consumer.ack(got[0])  # a second ack of the same message changes nothing
    assert broker.client.hlen(f"dramatiq:{queue_name}.msgs") == 0


def test_acks_that_arrive_while_one_is_sent_go_together_in_one_script_call(broker):
    """While one thread's ack is on its way to Redis, the acks of the other threads wait and
    then go in a single call (Dramatiq would make one round trip each)."""
    broker, queue_name = broker
    consumer = broker.consume(queue_name, prefetch=10, timeout=30_000)
    for _ in range(10):
        broker.enqueue(_message(queue_name))
    got = [next(consumer) for _ in range(10)]
    sent, calls, entered, release = broker.ack_many, [], threading.Event(), threading.Event()

    def gated(*, keys, args):  # type: ignore[no-untyped-def]
        calls.append(args[2:])
        if len(calls) == 1:
            entered.set()
            release.wait(10)
        return sent(keys=keys, args=args)

    broker.ack_many = gated
    first = threading.Thread(target=consumer.ack, args=(got[0],))
    first.start()
    assert entered.wait(10)
    rest = [threading.Thread(target=consumer.ack, args=(m,)) for m in got[1:]]
    for t in rest:
        t.start()
    wait_until(lambda: len(consumer._acks._waiting) == 9, 10, 0.01, what="nine acks queued behind the first")
    release.set()
    for t in [first, *rest]:
        t.join(10)
    assert len(calls) == 2 and sorted(calls[1]) == sorted(m.options["redis_message_id"] for m in got[1:])
    assert broker.client.hlen(f"dramatiq:{queue_name}.msgs") == 0


def test_messages_enqueued_together_are_consumed_as_dramatiq_enqueued_them(broker):
    """One script call for many messages: each lands where Dramatiq's enqueue puts it (a
    delayed one on the delay queue with its eta), is fetched and acked as usual, and its
    marker is set with it."""
    broker, queue_name = broker
    now, later, marked = _message(queue_name), _message(queue_name), _message(queue_name)
    broker.enqueue_many([Publication(_message(f"{queue_name}-warm"))])  # Redis learns the script
    calls = _script_calls(broker.client)
    sent = broker.enqueue_many(
        [Publication(now), Publication(later, delay=60_000), Publication(marked, marker=("m:" + queue_name, "v"))],
        marker_ttl=100,
    )
    assert _script_calls(broker.client) == calls + 1
    assert [m.message_id for m in sent] == [now.message_id, later.message_id, marked.message_id]
    assert sent[1].queue_name == f"{queue_name}.DQ" and sent[1].options["eta"] > sent[0].options.get("eta", 0)
    assert len({m.options["redis_message_id"] for m in sent}) == 3
    assert broker.client.get("m:" + queue_name) == b"v" and 0 < broker.client.ttl("m:" + queue_name) <= 100
    consumer = broker.consume(queue_name, prefetch=5, timeout=100)
    got = [next(consumer) for _ in range(2)]
    assert [m.message_id for m in got] == [now.message_id, marked.message_id]
    for m in got:
        consumer.ack(m)
    assert broker.client.hlen(f"dramatiq:{queue_name}.msgs") == 0
    delayed = broker.consume(f"{queue_name}.DQ", prefetch=5, timeout=100)
    message = next(delayed)
    assert message.message_id == later.message_id and message.options["eta"] == sent[1].options["eta"]


def test_messages_enqueued_together_go_in_all_or_none():
    """A Redis that is gone publishes none of them (and sets no marker): the outbox leaves
    them all to the relay."""
    server = RedisServer().start()
    try:
        broker, queue_name = _broker(server.url)
        server.stop()
        with pytest.raises(redis.ConnectionError):
            broker.enqueue_many([Publication(_message(queue_name), marker=("m", "v")) for _ in range(3)])
    finally:
        server.close()


def _script_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def test_an_ack_on_a_lost_connection_reports_a_closed_connection():
    server = RedisServer().start()
    try:
        broker, queue_name = _broker(server.url)
        consumer = broker.consume(queue_name, prefetch=1, timeout=30_000)
        broker.enqueue(_message(queue_name))
        message = next(consumer)
        server.stop()
        with pytest.raises(ConnectionClosed):  # Dramatiq's worker retries an ack that raised this
            consumer.ack(message)
        assert consumer.outstanding_message_count == 0
    finally:
        server.close()


def _in_thread(fn, limit: float) -> list:  # type: ignore[type-arg]
    """Run `fn` in a thread; its result, or [] when it is still blocked after `limit` seconds
    (a liveness bound, far above what it takes)."""
    out: list = []  # type: ignore[type-arg]
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(limit)
    return out


def test_an_idle_consumer_waits_in_redis_at_most_its_timeout(broker):
    broker, queue_name = broker
    consumer = broker.consume(queue_name, prefetch=1, timeout=50)
    before = _blmove_calls(broker.client)
    # A shutdown, a heartbeat or a due delayed message is never held up past the timeout.
    assert _in_thread(lambda: [next(consumer) for _ in range(3)], 20) == [[None, None, None]]
    assert _blmove_calls(broker.client) == before + 2  # the first call's miss, then one wait per call
    assert consumer.misses == 1  # each wait starts the backoff over: no blind sleep after it


def test_a_consumer_whose_redis_goes_away_mid_wait_reports_a_closed_connection():
    server = RedisServer().start()
    try:
        broker, queue_name = _broker(server.url)
        consumer = broker.consume(queue_name, prefetch=1, timeout=30_000)
        assert next(consumer) is None
        watcher = redis.Redis.from_url(server.url)
        stopper = threading.Thread(
            target=lambda: (wait_until(lambda: _waiting_clients(watcher) > 0, 10, 0.01), server.stop())
        )
        stopper.start()
        with pytest.raises(ConnectionClosed):  # as Dramatiq's fetch reports it: the worker reconnects
            next(consumer)
        stopper.join()
    finally:
        server.close()


def _polls_and_delivers(server: RedisServer, refused: Callable[[WaitingConsumer], bool]) -> None:
    """Against a Redis that will not wait: the consumer falls back to Dramatiq's polling and
    still takes a message."""
    broker, queue_name = _broker(server.url)
    try:
        consumer = broker.consume(queue_name, prefetch=1, timeout=50)
        assert [next(consumer) for _ in range(2)] == [None, None]  # a miss, then the wait refused
        assert refused(consumer)
        message = _message(queue_name)
        broker.enqueue(message)
        got = wait_until(lambda: next(consumer), 5, 0, what="the message")
        assert got.message_id == message.message_id  # type: ignore[attr-defined]
    finally:
        broker.client.close()


def test_a_redis_whose_acl_refuses_blmove_keeps_the_polling():
    server = RedisServer().start()
    try:
        redis.Redis.from_url(server.url).acl_setuser(
            "default", enabled=True, nopass=True, commands=["+@all", "-blmove"], keys=["*"], channels=["*"]
        )
        _polls_and_delivers(server, lambda consumer: consumer._refused)  # this consumer only
    finally:
        server.close()


def test_without_blmove_the_consumer_polls_as_dramatiq_does(monkeypatch):
    monkeypatch.setattr(WaitingConsumer, "supported", True)
    server = RedisServer("--rename-command", "BLMOVE", "").start()  # as Redis before 6.2
    try:
        _polls_and_delivers(server, lambda _consumer: WaitingConsumer.supported is False)  # the whole process
    finally:
        server.close()
