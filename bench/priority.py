"""P9: how long a high-priority job waits behind a bulk backlog: created -> started of a
`system.echo` job submitted with priority high while BENCH_PRIORITY_BACKLOG (default 10,000)
low-priority `system.echo` jobs wait.

    python -m bench.priority

Stack: `dramatiq workers` for `default_high` and for `default_low` as supervisor/opsdeck.conf
runs the high and low worker programs (their processes and threads). The backlog is submitted
through the service layer (jobs.submit_many, 500 a commit, each commit publishing) before the
workers start. Then BENCH_PRIORITY_TRIES times (default 20): a pause of 50-200 ms, the backlog
topped up to its size again (the low workers drain it meanwhile), one high job submitted
(jobs.submit, one commit), and its row polled until a worker has started it. Each try's figure
is started_at - created_at as the ledger has them; the low jobs still waiting right after each
submit are counted, and the fewest is printed.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from bench.common import (
    Report,
    Stack,
    database,
    deployed,
    env_int,
    exit_on_sigterm,
    migrate,
    per_backend,
    percentile,
    print_table,
)
from bench.throughput import _app, _wait_boot
from tests.fakes.processes import Process, worker_command

NAME = "P9 priority"
GOAL_P95_S = 1.0
HIGH_QUEUE, LOW_QUEUE = "default_high", "default_low"
BATCH = 500
#: The longest one try waits for its job to start.
TRY_TIMEOUT = 30.0
POLL_SECONDS = 0.005


@dataclass
class Tries:
    waits: list[float]  # seconds created -> started, ascending; a try that timed out is absent
    timed_out: int
    fewest_waiting: int  # low jobs waiting right after a high job was submitted, the fewest seen


@dataclass
class Backlog:
    """The low-priority jobs waiting in the ledger (not started yet), kept at `size`."""

    size: int
    submitted: int = 0

    def waiting(self) -> int:
        from app.extensions import db
        from app.models import Job, JobStatus

        unstarted = (JobStatus.PENDING.value, JobStatus.QUEUED.value)
        query = select(func.count()).select_from(Job).where(Job.queue == LOW_QUEUE, Job.status.in_(unstarted))
        with db.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def top_up(self) -> None:
        """Submit low-priority jobs until `size` of them wait (500 a commit, each published)."""
        from app.extensions import db
        from app.services import jobs

        missing = self.size - self.waiting()
        while missing > 0:
            n = min(BATCH, missing)
            rows = [
                jobs.new_row("system.echo", {"message": f"low {self.submitted + i}"}, priority="low") for i in range(n)
            ]
            jobs.submit_many(rows)
            db.session.commit()
            self.submitted += n
            missing -= n


def high_wait(job_id: str) -> float | None:
    """Seconds from the job's created_at to its started_at, once a worker has started it."""
    from app.extensions import db
    from app.models import Job

    deadline = time.perf_counter() + TRY_TIMEOUT
    query = select(Job.created_at, Job.started_at).where(Job.id == job_id)
    while time.perf_counter() < deadline:
        with db.engine.connect() as conn:
            created, started = conn.execute(query).one()
        if started is not None:
            return (started - created).total_seconds()
        time.sleep(POLL_SECONDS)
    return None


def tries(backlog: Backlog, count: int) -> Tries:
    from app.extensions import db
    from app.services import jobs

    waits: list[float] = []
    timed_out = 0
    fewest = backlog.size
    for n in range(count):
        time.sleep(random.uniform(0.05, 0.2))
        backlog.top_up()
        job = jobs.submit("system.echo", {"message": f"high {n}"}, priority="high")
        job_id = job.id
        db.session.commit()  # publishes it to default_high
        fewest = min(fewest, backlog.waiting())
        wait = high_wait(job_id)
        if wait is None:
            timed_out += 1
        else:
            waits.append(wait)
    return Tries(sorted(waits), timed_out, fewest)


def bench_backend(st: Stack, backend: str, report: Report) -> None:
    backlog = Backlog(env_int("BENCH_PRIORITY_BACKLOG", 10_000))
    count = env_int("BENCH_PRIORITY_TRIES", 20)
    high_plan, low_plan = deployed(HIGH_QUEUE), deployed(LOW_QUEUE)
    print(
        f"\n[{NAME} / {backend}] {count} high-priority jobs, each behind {backlog.size} low-priority ones; workers as "
        f"{high_plan.program} ({high_plan.processes}x{high_plan.threads}) and {low_plan.program} "
        f"({low_plan.processes}x{low_plan.threads})"
    )
    with database(backend, st.tmp) as url:
        env = st.env(url)
        migrate(env)
        with _app(env):
            backlog.top_up()
            tag = uuid.uuid4().hex[:6]
            high = Process(
                worker_command([HIGH_QUEUE], high_plan.processes, high_plan.threads),
                env,
                f"p9-high-{backend}-{tag}",
                st.tmp,
            )
            low = Process(
                worker_command([LOW_QUEUE], low_plan.processes, low_plan.threads),
                env,
                f"p9-low-{backend}-{tag}",
                st.tmp,
            )
            try:
                # The high workers first: the backlog starts draining as soon as the low ones are up.
                _wait_boot(high.start(), high_plan.processes, time.perf_counter())
                _wait_boot(low.start(), low_plan.processes, time.perf_counter())
                result = tries(backlog, count)
            except Exception:
                print(high.log()[-2000:], low.log()[-2000:])
                raise
            finally:
                low.stop(15)
                high.stop(15)
    p50, p95 = percentile(result.waits, 50), percentile(result.waits, 95)
    met = result.timed_out == 0 and p95 <= GOAL_P95_S
    slowest = result.waits[-1] if result.waits else float("nan")
    print(
        f"  created -> started p50 {p50 * 1000:.1f} ms   p95 {p95 * 1000:.1f} ms   max {slowest * 1000:.1f} ms"
        f"   ({len(result.waits)}/{count} started, {result.timed_out} not within {TRY_TIMEOUT:g} s)"
    )
    print(
        f"  low-priority jobs waiting after each submit: at least {result.fewest_waiting}; "
        f"{backlog.submitted} submitted in all"
    )
    print(f"  goal p95 <= {GOAL_P95_S:g} s: {'met' if met else 'NOT met'}")
    report.add(
        f"{NAME} {backend}",
        f"high job created->started p50/p95 ({backlog.size} low waiting)",
        f"{p50 * 1000:.1f}/{p95 * 1000:.1f} ms" + (f", {result.timed_out} timed out" if result.timed_out else ""),
        f"p95 <= {GOAL_P95_S:g} s",
        met,
    )


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    return per_backend(bench_backend, report, st)


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
