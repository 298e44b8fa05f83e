"""Every connection Opsdeck makes to Redis: to `REDIS_URL`, or, when `REDIS_SENTINELS` is set,
to the master the sentinels name `REDIS_SENTINEL_MASTER`, followed through a failover.

`client(config)` is the redis-py client every process holds (`app.extensions.queue`: the
Dramatiq broker and consumers, locks, rate limits, the outbox's markers and epoch, Flask-Limiter's
storage through its connection pool). `live_queue(config)` is the live feed's message queue
(python-socketio's RedisManager, which opens its own connections for its subscription).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
import socketio  # type: ignore[import-untyped]  # python-socketio ships no type hints
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from app.config import ConfigError

#: Connections one process may open to Redis (redis-py's default is 100).
MAX_CONNECTIONS = 512
#: The live feed's Redis channel (Flask-SocketIO's default name).
LIVE_CHANNEL = "flask-socketio"
#: How long a sentinel may take to connect and answer "who is the master?".
SENTINEL_TIMEOUT_SECONDS = 1.0
#: How often a process asks the sentinels whether the master is still the one it talks to.
MASTER_CHECK_SECONDS = 1.0


def _retry() -> Retry:
    """A command that meets a lost connection (or, after a promotion, an old master turned
    replica: redis-py's sentinel pool raises that as a ConnectionError) asks again, reconnecting,
    for a few seconds; longer, it fails, and what it published is the outbox relay's to resend."""
    return Retry(ExponentialWithJitterBackoff(base=0.1, cap=1.0), retries=4)


#: Every client's connections: a connect that hangs gives up, and a command's wait is bounded
#: (app/broker/redis.py keeps its blocking waits under `socket_timeout`).
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "health_check_interval": 30,
    "max_connections": MAX_CONNECTIONS,
}


class FollowingPool(SentinelConnectionPool):
    """The sentinel pool of redis-py, asking the sentinels who the master is at most every
    MASTER_CHECK_SECONDS as connections are taken. redis-py asks only when it connects, so after
    a manual failover (the old master alive, not yet demoted) its open connections would go on
    writing to the old master, whose data the sentinels then discard; here they are closed
    within a second (idle ones at once, busy ones when handed back)."""

    def reset(self) -> None:
        """Also after a fork (redis-py resets a pool in a new process): no lock held by a thread
        of the parent."""
        super().reset()
        self._checking = threading.Lock()
        self._next_check = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check and self._checking.acquire(blocking=False):
            try:
                self._next_check = now + MASTER_CHECK_SECONDS
                self.get_master_address()  # a new address closes the connections to the old one
            except MasterNotFoundError:
                pass  # during a failover: connecting asks again, and raises
            finally:
                self._checking.release()
        return super().get_connection(*args, **kwargs)


@dataclass(frozen=True)
class Sentinels:
    """Where the sentinels are, which master to ask them for, and how to log in to both."""

    addresses: list[tuple[str, int]]
    master: str
    password: str
    #: The master's database and credentials, from REDIS_URL.
    db: int
    username: str | None
    master_password: str | None

    def sentinel_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
            "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
        }
        if self.password:
            options["password"] = self.password
        return options

    def master_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"db": self.db}
        if self.username:
            options["username"] = self.username
        if self.master_password:
            options["password"] = self.master_password
        return options


def sentinels(config: Mapping[str, Any]) -> Sentinels | None:
    """The Sentinel settings, or None when Opsdeck talks to `REDIS_URL` directly. Raises
    ConfigError on a REDIS_URL that cannot go with them."""
    if not config.get("REDIS_SENTINELS"):
        return None
    url = config["REDIS_URL"]
    try:
        parsed = redis.connection.parse_url(url)
    except ValueError as err:
        raise ConfigError(f"REDIS_URL={url!r}: {err}") from None
    if urlsplit(url).scheme != "redis":
        raise ConfigError(f"REDIS_URL={url!r}: with REDIS_SENTINELS it must be a redis:// URL (no TLS, no socket)")
    addresses = []
    for item in config["REDIS_SENTINELS"]:
        host, _, port = item.rpartition(":")
        addresses.append((host.strip("[]"), int(port)))
    return Sentinels(
        addresses=addresses,
        master=config["REDIS_SENTINEL_MASTER"],
        password=config["REDIS_SENTINEL_PASSWORD"],
        db=parsed.get("db", 0),
        username=parsed.get("username"),
        master_password=parsed.get("password"),
    )


def client(config: Mapping[str, Any]) -> redis.Redis:
    """The redis-py client of a process: to REDIS_URL, or to the sentinels' current master
    (its pool asks them again after a lost connection, so it follows a promotion)."""
    where = sentinels(config)
    if where is None:
        return redis.Redis.from_url(config["REDIS_URL"], retry=_retry(), **CLIENT_OPTIONS)
    sentinel = Sentinel(where.addresses, sentinel_kwargs=where.sentinel_options())
    return sentinel.master_for(
        where.master, connection_pool_class=FollowingPool, retry=_retry(), **CLIENT_OPTIONS, **where.master_options()
    )


def live_queue(config: Mapping[str, Any], *, write_only: bool = False) -> socketio.RedisManager:
    """The live feed's message queue for a SocketIO server (`write_only`: a worker's or the
    scheduler's, which only emits). The subscription's connection has no read timeout: it waits
    for events as long as there are none."""
    where = sentinels(config)
    if where is None:
        return socketio.RedisManager(config["REDIS_URL"], channel=LIVE_CHANNEL, write_only=write_only)
    # python-socketio's sentinel URL: the sentinels, then /db/master; the logins go as options
    # (the URL's would not be percent-decoded).
    hosts = ",".join(f"{host}:{port}" for host, port in where.addresses)  # split at the last colon
    options = {
        "sentinel_kwargs": where.sentinel_options(),
        "socket_connect_timeout": CLIENT_OPTIONS["socket_connect_timeout"],
        **{k: v for k, v in where.master_options().items() if k != "db"},
    }
    url = f"redis+sentinel://{hosts}/{where.db}/{where.master}"
    return socketio.RedisManager(url, channel=LIVE_CHANNEL, write_only=write_only, redis_options=options)
