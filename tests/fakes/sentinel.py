"""A Redis Sentinel deployment on loopback: one master, one replica and three sentinels
(Debian's redis-sentinel), each on a free port with its files in a temporary directory."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from tests.fakes.processes import RedisServer, free_port, wait_until

MASTER_NAME = "opsdeck"
#: How long a master may be silent before a sentinel calls it down (production: several seconds).
DOWN_AFTER_MS = 1000


class SentinelProcess:
    """One redis-sentinel with its own config file (the sentinel rewrites it as it learns)."""

    def __init__(self, monitor_port: int, quorum: int, down_after_ms: int) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="opsdeck-sentinel-"))
        self.config = self.dir / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    "daemonize no",
                    f"dir {self.dir}",
                    f"logfile {self.dir / 'sentinel.log'}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {monitor_port} {quorum}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
                    f"sentinel failover-timeout {MASTER_NAME} 10000",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SentinelProcess:
        exe = shutil.which("redis-sentinel")
        if exe is None:
            raise RuntimeError("redis-sentinel is not installed (make test installs it)")
        self.proc = subprocess.Popen([exe, str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2)

    def master(self) -> dict[str, Any]:
        """What this sentinel knows of the master (SENTINEL MASTER), {} when it does not answer."""
        try:
            with self.client() as client:
                return client.sentinel_master(MASTER_NAME)
        except redis.RedisError:
            return {}

    def log(self) -> str:
        path = self.dir / "sentinel.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelCluster:
    """A master, a replica of it, and three sentinels (quorum 2) watching them."""

    def __init__(self, down_after_ms: int = DOWN_AFTER_MS) -> None:
        self.master_server = RedisServer()
        self.replica_server = RedisServer("--replicaof", "127.0.0.1", str(self.master_server.port))
        self.sentinels = [SentinelProcess(self.master_server.port, 2, down_after_ms) for _ in range(3)]

    @property
    def addresses(self) -> list[str]:
        """The sentinels as REDIS_SENTINELS lists them."""
        return [s.address for s in self.sentinels]

    @property
    def env(self) -> dict[str, str]:
        """The settings of a process that reaches Redis through these sentinels. REDIS_URL's
        host and port lead nowhere: only its database number may count."""
        return {
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "REDIS_SENTINELS": ",".join(self.addresses),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }

    def start(self) -> SentinelCluster:
        self.master_server.start()
        self.replica_server.start()
        for sentinel in self.sentinels:
            sentinel.start()
        wait_until(self.ready, 30, 0.1, what="the sentinels to see the replica and one another")
        return self

    def ready(self) -> bool:
        """Every sentinel knows the master, its replica in sync, and the two other sentinels."""
        if self._replication(self.replica_server.port).get("master_link_status") != "up":
            return False
        states = [s.master() for s in self.sentinels]
        return all(
            state.get("num-slaves") == 1 and state.get("num-other-sentinels") == 2 and state.get("is_master")
            for state in states
        )

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    address = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def kill_master(self) -> float:
        """SIGKILL the current master (no shutdown, no last write to the replica); returns
        when, on the monotonic clock."""
        server = self.server_on(self.master_port())
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        server.proc.wait(10)
        server.proc = None
        return killed

    def wait_for_promotion(self, old_port: int, timeout: float = 60) -> float:
        """Block until a majority of the sentinels name another master and it answers as one;
        returns when, on the monotonic clock."""

        def promoted() -> bool:
            named = [s.master() for s in self.sentinels]
            moved = [state for state in named if state.get("port") not in (None, old_port)]
            return len(moved) >= 2 and self._replication(moved[0]["port"]).get("role") == "master"

        wait_until(promoted, timeout, 0.05, what="the sentinels to promote the replica")
        return time.monotonic()

    def failover(self) -> None:
        """A manual failover (SENTINEL FAILOVER): the master is demoted to a replica of the
        other, alive, with its clients' connections open."""
        with self.sentinels[0].client() as client:
            client.execute_command("SENTINEL FAILOVER", MASTER_NAME)

    def server_on(self, port: int | None) -> RedisServer:
        for server in (self.master_server, self.replica_server):
            if server.port == port:
                return server
        raise LookupError(f"no server of this cluster on port {port}")

    def _replication(self, port: int) -> dict[str, Any]:
        try:
            with redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2) as client:
                return client.info("replication")
        except redis.RedisError:
            return {}

    def logs(self) -> str:
        return "\n".join(f"--- sentinel {s.port} ---\n{s.log()[-3000:]}" for s in self.sentinels)

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        for server in (self.master_server, self.replica_server):
            if server.proc is not None and server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(10)
            server.proc = None
            shutil.rmtree(server.dir, ignore_errors=True)
