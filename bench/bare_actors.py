"""P2 baseline: a no-op Dramatiq actor on a plain RedisBroker (default middleware), run as

    REDIS_URL=redis://127.0.0.1:PORT/0 dramatiq bench.bare_actors --processes 1 --threads 8 --queues bare

Each message costs one Redis round trip: a script counts it and keeps the earliest start
and the latest finish (epoch seconds), the same window P2 reads from the Opsdeck ledger.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.common import BARE_ACTOR, BARE_COUNT_KEY, BARE_FIRST_KEY, BARE_LAST_KEY, BARE_QUEUE

_RECORD = """
redis.call('INCR', KEYS[1])
local first = redis.call('GET', KEYS[2])
if not first or tonumber(ARGV[1]) < tonumber(first) then redis.call('SET', KEYS[2], ARGV[1]) end
local last = redis.call('GET', KEYS[3])
if not last or tonumber(ARGV[2]) > tonumber(last) then redis.call('SET', KEYS[3], ARGV[2]) end
return 1
"""

broker = RedisBroker(url=os.environ["REDIS_URL"])
dramatiq.set_broker(broker)
_record = broker.client.register_script(_RECORD)


@dramatiq.actor(actor_name=BARE_ACTOR, queue_name=BARE_QUEUE, max_retries=0)
def noop(n: int) -> None:
    started = time.time()
    finished = time.time()
    _record(keys=[BARE_COUNT_KEY, BARE_FIRST_KEY, BARE_LAST_KEY], args=[repr(started), repr(finished)])
