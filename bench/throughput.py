"""P2: end-to-end `system.echo` jobs per second through the ledger and `dramatiq workers`,
against a no-op actor on a bare Dramatiq RedisBroker (bench/bare_actors.py), same settings.

    python -m bench.throughput

BENCH_JOBS jobs (default 5000) are submitted first through the service layer (jobs.submit in
batches of 500, each commit publishing to Redis) with no worker running; then the workers
start (--threads 8, --processes each of BENCH_PROCESSES, default "1,2") and the rate is
N / (first start -> last finish), read from the ledger (Opsdeck) or Redis (bare): worker boot
is left out.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from flask import Flask
from sqlalchemy import func, select

from bench.common import (
    BARE_ACTOR,
    BARE_COUNT_KEY,
    BARE_FIRST_KEY,
    BARE_LAST_KEY,
    BARE_QUEUE,
    BIN,
    Report,
    Stack,
    backends,
    database,
    env_int,
    env_ints,
    exit_on_sigterm,
    migrate,
    print_table,
    ratio,
    stack,
)
from tests.fakes.processes import Process, wait_until

NAME = "P2 jobs"
THREADS = 8
BATCH = 500
GOAL_RATIO = 0.5
READY = "Worker process is ready for action"


@dataclass
class Run:
    done: int
    seconds: float  # first start -> last finish
    boot: float  # worker start -> every process ready
    other: int = 0  # finished but not succeeded (dead, cancelled)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def _dramatiq(module: str, queue: str, processes: int) -> list[str]:
    return [str(BIN / "dramatiq"), module, "--processes", str(processes), "--threads", str(THREADS), "--queues", queue]


def _ready(proc: Process, processes: int) -> bool:
    if proc.proc is not None and proc.proc.poll() is not None:
        raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.log()[-4000:]}")
    return proc.log().count(READY) >= processes


@contextmanager
def _app(env: dict[str, str]) -> Iterator[Flask]:
    """An in-process app configured from `env` (os.environ is restored right after)."""
    from app import create_app
    from app.config import Config
    from app.extensions import db

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        config = Config()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    app = create_app(config)
    try:
        with app.app_context():
            yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def opsdeck(st: Stack, backend: str, processes: int, n: int, timeout: float, **settings: object) -> Run:
    """`settings`: more environment for the submitting app and the workers (bench/tracing.py)."""
    from app.extensions import db
    from app.models import Job
    from app.services import jobs

    st.flushall()
    with database(backend, st.tmp) as url:
        env = st.env(url, **settings)
        migrate(env)
        with _app(env):
            began = time.perf_counter()
            for start in range(0, n, BATCH):
                for i in range(start, min(n, start + BATCH)):
                    jobs.submit("system.echo", {"message": f"bench {i}"})
                db.session.commit()  # publishes this batch to Redis
            submitted = time.perf_counter() - began
            db.session.remove()
            client = redis.Redis.from_url(st.redis.url)
            queued = int(client.hlen("dramatiq:default.msgs"))
            client.close()
            print(f"  submitted {n} jobs in {submitted:.1f} s ({n / submitted:.0f} jobs/s), {queued} in Redis")

            def counts() -> tuple[int, int]:
                with db.engine.connect() as conn:
                    rows = dict(conn.execute(select(Job.status, func.count()).group_by(Job.status)).all())
                return rows.get("succeeded", 0), rows.get("dead", 0) + rows.get("cancelled", 0)

            name = f"opsdeck-{backend}-{processes}-{uuid.uuid4().hex[:6]}"
            workers = Process(_dramatiq("workers", "default", processes), env, name, st.tmp)
            started = time.perf_counter()
            workers.start()
            try:
                boot = _wait_boot(workers, processes, started)
                _poll(lambda: sum(counts()) >= n, timeout, workers)
            finally:
                workers.stop(15)
            with db.engine.connect() as conn:
                first, last = conn.execute(
                    select(func.min(Job.started_at), func.max(Job.finished_at)).where(Job.status == "succeeded")
                ).one()
            done, other = counts()
    seconds = (last - first).total_seconds() if first and last else 0.0
    return Run(done, seconds, boot, other)


def bare(st: Stack, processes: int, n: int, timeout: float) -> Run:
    st.flushall()
    broker = RedisBroker(url=st.redis.url, middleware=[])
    for i in range(n):
        broker.enqueue(Message(queue_name=BARE_QUEUE, actor_name=BARE_ACTOR, args=(i,), kwargs={}, options={}))
    broker.close()
    client = redis.Redis.from_url(st.redis.url)
    env = st.env("sqlite://")  # the bare actors never touch a database
    name = f"bare-{processes}-{uuid.uuid4().hex[:6]}"  # a fresh log: boot waits for this run's ready lines
    workers = Process(_dramatiq("bench.bare_actors", BARE_QUEUE, processes), env, name, st.tmp)
    started = time.perf_counter()
    workers.start()
    try:
        boot = _wait_boot(workers, processes, started)
        _poll(lambda: int(client.get(BARE_COUNT_KEY) or 0) >= n, timeout, workers)
    finally:
        workers.stop(15)
    done = int(client.get(BARE_COUNT_KEY) or 0)
    first, last = (float(client.get(key) or 0) for key in (BARE_FIRST_KEY, BARE_LAST_KEY))
    client.close()
    return Run(done, last - first, boot)


def _wait_boot(workers: Process, processes: int, started: float) -> float:
    wait_until(lambda: _ready(workers, processes), 60, 0.1, what=f"{workers.name} to boot")
    return time.perf_counter() - started


def _poll(finished: object, timeout: float, workers: Process) -> None:
    try:
        wait_until(finished, timeout, 0.2, what=f"{workers.name} to finish")  # type: ignore[arg-type]
    except TimeoutError:
        print(f"  TIMEOUT after {timeout:g} s; last log lines:\n{workers.log()[-2000:]}")


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    report = report if report is not None else Report()
    if st is None:
        with stack() as own:
            return run(report, own)
    n = env_int("BENCH_JOBS", 5000)
    timeout = float(env_int("BENCH_JOB_TIMEOUT", 120))
    for backend in backends():
        for processes in env_ints("BENCH_PROCESSES", "1,2"):
            print(f"\n[{NAME} / {backend}] {n} system.echo jobs, --processes {processes} --threads {THREADS}")
            base = bare(st, processes, n, timeout)
            print(
                f"  baseline bare Dramatiq no-op: {base.done}/{n} in {base.seconds:.2f} s = {base.rate:.0f} jobs/s"
                f" (boot {base.boot:.1f} s)"
            )
            ours = opsdeck(st, backend, processes, n, timeout)
            extra = f", {ours.other} dead/cancelled" if ours.other else ""
            print(
                f"  Opsdeck system.echo:          {ours.done}/{n} in {ours.seconds:.2f} s = {ours.rate:.0f} jobs/s"
                f" (boot {ours.boot:.1f} s{extra})"
            )
            r = ratio(ours.rate, base.rate) if ours.done >= n else 0.0
            met = r >= GOAL_RATIO
            print(f"  ratio {r:.2f}x bare; goal >= {GOAL_RATIO:g}x bare: {'met' if met else 'NOT met'}")
            report.add(
                f"{NAME} {backend} p={processes}",
                "Opsdeck vs bare jobs/s",
                f"{ours.rate:.0f} vs {base.rate:.0f} = {r:.2f}x"
                + ("" if ours.done >= n else f" ({ours.done}/{n} done)"),
                f">= {GOAL_RATIO:g}x bare",
                met,
            )
    return report


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
