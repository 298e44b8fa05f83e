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


def hit(name: str, limit: int, window_seconds: int = 60) -> Decision:
    """Count one hit on `name` in the current window. Fails open when Redis is unreachable
    (the API must keep accepting work into the outbox while Redis is down)."""
    if limit <= 0:
        return Decision(True, 0, 0)
    now = time.time()
    window = int(now // window_seconds)
    key = f"opsdeck:rl:{name}:{window}"
    try:
        pipe = queue.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, window_seconds + 1)
        count = int(pipe.execute()[0])
    except Exception as err:
        log.debug("rate limit check skipped, redis unavailable: %s", err)
        return Decision(True, limit, 0)
    retry_after = max(1, int((window + 1) * window_seconds - now + 0.999))
    return Decision(count <= limit, max(0, limit - count), retry_after)
