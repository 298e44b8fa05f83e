"""Shared pieces of the benchmarks: a private Redis and database per run, the environment a
child process (web server, workers, `flask` commands) gets, the peers' settings, statistics and
the result rows.

Everything listens on 127.0.0.1 and lives under one temporary directory removed at the end.
"""

from __future__ import annotations

import configparser
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet

from tests.fakes.processes import ROOT, RedisServer

if TYPE_CHECKING:
    from librouteros.api import Api

    from app.models import Plan, Router

BIN = Path(sys.executable).parent
#: One key for the whole run: every process of a run must decrypt what another encrypted.
ENCRYPTION_KEY = Fernet.generate_key().decode()
SECRET_KEY = "bench-" + uuid.uuid4().hex


def exit_on_sigterm() -> None:
    """Turn SIGTERM (timeout, CI cancel) into SystemExit so every `finally` stops its processes."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


def env_ints(name: str, default: str) -> list[int]:
    return [int(item) for item in os.environ.get(name, default).split(",") if item.strip()]


# -- the deployment supervisor ships -----------------------------------------------------
SUPERVISOR_CONF = ROOT / "supervisor" / "opsdeck.conf"


@dataclass(frozen=True)
class Deployed:
    """How supervisor/opsdeck.conf runs the workers of one queue."""

    program: str
    processes: int
    threads: int


def deployed(queue: str) -> Deployed:
    """The worker program of supervisor/opsdeck.conf that consumes `queue`: a bench measures
    the deployment Opsdeck ships, and follows it when it changes."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.read(SUPERVISOR_CONF)
    for section in parser.sections():
        argv = shlex.split(parser[section].get("command", ""))
        if "dramatiq" not in " ".join(argv[:1]) or "--queues" not in argv:
            continue
        queues = argv[argv.index("--queues") + 1 :]
        queues = queues[: next((i for i, a in enumerate(queues) if a.startswith("-")), len(queues))]
        if queue in queues:
            return Deployed(
                section.removeprefix("program:"),
                int(argv[argv.index("--processes") + 1]),
                int(argv[argv.index("--threads") + 1]),
            )
    raise LookupError(f"no worker program in {SUPERVISOR_CONF} consumes {queue!r}")


# -- results -------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the final summary: a figure, and the goal it is held against."""

    bench: str
    metric: str
    value: str
    goal: str = ""
    met: bool | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, bench: str, metric: str, value: str, goal: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(bench, metric, value, goal, met))


def print_table(rows: Sequence[Row]) -> None:
    header = ("bench", "metric", "value", "goal", "met")
    cells = [header] + [
        (r.bench, r.metric, r.value, r.goal, "" if r.met is None else ("yes" if r.met else "NO")) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else math.nan


# -- databases -----------------------------------------------------------------------
def backends() -> list[str]:
    """SQLite always; PostgreSQL too when BENCH_DATABASE_URL is set."""
    return ["sqlite", "postgres"] if os.environ.get("BENCH_DATABASE_URL") else ["sqlite"]


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file under `tmp`, or a new PostgreSQL database
    created next to BENCH_DATABASE_URL (which must allow CREATE DATABASE) and dropped after."""
    if backend == "sqlite":
        path = tmp / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        return
    import psycopg

    admin = os.environ["BENCH_DATABASE_URL"]
    if admin.startswith("postgres://"):
        admin = "postgresql://" + admin[len("postgres://") :]
    name = f"opsdeck_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, connect_timeout=5, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.partition("?")[0].rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, connect_timeout=5, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- processes -----------------------------------------------------------------------
@dataclass
class Stack:
    """What every benchmark shares: a private redis-server and a scratch directory."""

    redis: RedisServer
    tmp: Path

    def env(self, database_url: str, **extra: object) -> dict[str, str]:
        """The environment of a production process on this stack's database and Redis."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "OPSDECK_", "API_"))}
        env.update(
            DATABASE_URL=database_url,
            REDIS_URL=self.redis.url,
            SECRET_KEY=SECRET_KEY,
            OPSDECK_ENCRYPTION_KEYS=ENCRYPTION_KEY,
            OPSDECK_ENV="production",
            OPSDECK_VAR_DIR=str(self.tmp),
            PYTHONUNBUFFERED="1",
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def flushall(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            client.flushall()
        finally:
            client.close()


@contextmanager
def stack() -> Iterator[Stack]:
    tmp = Path(tempfile.mkdtemp(prefix="opsdeck-bench-"))
    server = RedisServer().start()
    try:
        yield Stack(server, tmp)
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)


def per_backend(
    bench_backend: Callable[[Stack, str, Report], None], report: Report | None = None, st: Stack | None = None
) -> Report:
    """Run one benchmark on each backend (SQLite; PostgreSQL too with BENCH_DATABASE_URL), on
    the stack it is given or on one of its own."""
    report = report if report is not None else Report()
    if st is None:
        with stack() as own:
            return per_backend(bench_backend, report, own)
    for backend in backends():
        st.flushall()
        bench_backend(st, backend, report)
    return report


def flask_cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run `flask --app wsgi.py ARGS` in the project root; returns stdout (raises on failure)."""
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi.py", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def migrate(env: dict[str, str]) -> None:
    flask_cli(env, "db", "upgrade")


def create_tenant(env: dict[str, str], name: str = "bench") -> dict[str, str]:
    out = flask_cli(env, "tenants", "create", name, "--json")
    line = next(line for line in reversed(out.splitlines()) if line.startswith("{"))
    return json.loads(line)


@contextmanager
def tenant_database(st: Stack, backend: str, **settings: object) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """A fresh database, migrated, with one tenant: the environment of a process on it (with
    `settings`), and the tenant (`tenant_id`, `key_id`, `secret`)."""
    with database(backend, st.tmp) as url:
        env = st.env(url, **settings)
        migrate(env)
        yield env, create_tenant(env)


# -- peers ---------------------------------------------------------------------------
#: WEBHOOK_ALLOWED_NETWORKS for endpoints on a local receiver.
LOOPBACK = "127.0.0.0/8"
#: The login of every RouterOS test server a bench starts.
ROUTER_USER, ROUTER_PASSWORD = "admin", "bench"


def router_api(port: int, timeout: float = 10) -> Api:
    """A librouteros connection to the RouterOS test server on `port`."""
    import librouteros
    from librouteros.login import plain

    return librouteros.connect(
        "127.0.0.1", ROUTER_USER, ROUTER_PASSWORD, port=port, timeout=timeout, login_method=plain
    )


def router_and_plan(tenant_id: str, port: int) -> tuple[Router, Plan]:
    """The RouterOS test server on `port` as the tenant's router, and a plan on it (in the
    caller's app context, not committed)."""
    from app.services.provisioning import routers

    router = routers.create_router(
        tenant_id,
        {"name": "bench", "host": "127.0.0.1", "port": port, "username": ROUTER_USER, "password": ROUTER_PASSWORD},
        actor="bench",
    )
    plan = routers.create_plan(
        tenant_id,
        {
            "name": "bench",
            "price": 10,
            "currency": "KES",
            "duration_seconds": 3600,
            "rate_limit": "2M/2M",
            "shared_users": 1,
            "profile": "bench",
        },
        actor="bench",
    )
    return router, plan


# -- P2 baseline: the bare Dramatiq actor (bench/bare_actors.py) ---------------------------
BARE_QUEUE = "bare"
BARE_ACTOR = "bench_noop"
BARE_COUNT_KEY = "bench:bare:count"
BARE_FIRST_KEY = "bench:bare:first"
BARE_LAST_KEY = "bench:bare:last"
