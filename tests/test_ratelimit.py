"""Redis-backed limits (app/services/ratelimit.py): fixed windows shared by every process."""

from __future__ import annotations

import pytest

from app.extensions import queue
from app.services import ratelimit


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_window_counts_hits_refuses_past_its_limit_and_expires(app):
    decisions = [ratelimit.hit("test-window", 3, 60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert 1 <= decisions[-1].retry_after <= 60
    (key,) = queue.redis.keys("opsdeck:rl:test-window:*")
    assert 0 < queue.redis.ttl(key) <= 61  # set by the window's first hit, so the key goes with it
    queue.redis.expire(key, 500)
    ratelimit.hit("test-window", 3, 60)
    assert queue.redis.ttl(key) > 61  # later hits leave it: a busy window still ends


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_limit_and_no_redis_both_allow(app, private_redis):
    assert ratelimit.hit("test-off", 0, 60).allowed
    import redis

    from app.broker.redis import Broker

    saved = queue._broker
    queue._broker = Broker(client=redis.Redis.from_url(private_redis.url), middleware=[])
    try:
        private_redis.stop()
        # Fails open: the API keeps taking work (with Redis up, the second hit would be refused,
        # and the second slot would wait a second).
        assert [ratelimit.hit("test-down", 1, 60).allowed for _ in range(2)] == [True, True]
        assert [ratelimit.reserve("test-down", 60, max_wait=5) for _ in range(2)] == [0, 0]
    finally:
        queue._broker = saved
