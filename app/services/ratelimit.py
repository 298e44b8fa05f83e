"""Redis-backed fixed-window rate limits, shared by every web process."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from app.extensions import queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int


#: Count hits in a window unless they would pass the limit: KEYS[1] the window's counter; ARGV
#: its expiry (s, set by the window's first hit), the hits, the limit. Returns the count with
#: these hits (past the limit: refused, not counted).
_HIT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[2])
if count > tonumber(ARGV[3]) then
    return count
end
redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


def hit(name: str, limit: int, window_seconds: int = 60, *, cost: int = 1) -> Decision:
    """Count `cost` hits on `name` in the current window, unless that would pass `limit` (then
    refused, and nothing counted). Fails open when Redis is unreachable (the API must keep
    accepting work into the outbox while Redis is down)."""
    if limit <= 0:
        return Decision(True, 0, 0)
    now = time.time()
    window = int(now // window_seconds)
    key = f"opsdeck:rl:{name}:{window}"
    try:
        count = int(queue.broker.script(_HIT)(keys=[key], args=[window_seconds + 1, cost, limit]))
    except Exception as err:
        log.debug("rate limit check skipped, redis unavailable: %s", err)
        return Decision(True, limit, 0)
    retry_after = max(1, int((window + 1) * window_seconds - now + 0.999))
    return Decision(count <= limit, max(0, limit - count), retry_after)


#: Reserve the next send slot of an evenly paced rate (GCRA). KEYS[1]: the theoretical arrival
#: time in ms; ARGV: interval ms, longest acceptable wait ms. Returns the wait in ms, or -wait
#: (nothing reserved) when that would exceed the longest acceptable wait. Redis' clock, so every
#: process shares one.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(tat, now)
local wait = slot - now
if wait > tonumber(ARGV[2]) then return -wait end
redis.call('SET', KEYS[1], slot + tonumber(ARGV[1]), 'PX', wait + tonumber(ARGV[1]) + 1000)
return wait
"""


def reserve(name: str, per_minute: int, max_wait: float) -> float | None:
    """Seconds to wait before the next action paced at `per_minute` (every process shares the
    pace), the slot then being this caller's; None when the wait would exceed `max_wait` (no
    slot taken). 0 when unlimited or when Redis is unreachable (fail open, as `hit`)."""
    if per_minute <= 0:
        return 0.0
    interval_ms = 60_000 / per_minute
    try:
        reserve_slot = queue.broker.script(_RESERVE)
        waited = int(reserve_slot(keys=[f"opsdeck:pace:{name}"], args=[int(interval_ms), int(max_wait * 1000)]))
    except Exception as err:
        log.debug("pacing skipped, redis unavailable: %s", err)
        return 0.0
    return None if waited < 0 else waited / 1000
