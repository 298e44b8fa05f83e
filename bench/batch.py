"""P1c: jobs accepted per second through `POST /api/v1/jobs/batch`, and end to end.

    python -m bench.batch

Accepted: BENCH_BATCH_JOBS `system.echo` jobs (default 40,000) in signed batches of 500, each
job with its own idempotency_key, sent back to back by 4 clients (keep-alive connections,
requests built and signed before the clock starts) to the production web command; no worker
runs. The figure is jobs answered `"replayed": false` in a 202 per second, first send -> last
answer. Baseline, in this process on the same database and Redis: the same rows inserted with
one DBAPI `executemany` per 500 and a COMMIT, and the same Dramatiq messages (HSET + RPUSH
each, as Dramatiq's enqueue) sent in one Redis pipeline per 500. BENCH_BATCH_ROUNDS rounds
(default 2) of both, their order swapped each round; each figure is the mean of its rounds.

End to end: BENCH_E2E_JOBS jobs (default 100,000) on a fresh database, submitted in the same
batches by the same 4 clients while the `default` workers run as supervisor/opsdeck.conf runs
them; the figure is jobs / (first send -> last `finished_at` in the ledger), beside P2's bare
Dramatiq no-op (bench/bare_actors.py) with the same processes and threads on
BENCH_E2E_BARE_JOBS messages (default 20,000), measured once per run. BENCH_E2E_JOBS=0 skips it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from dramatiq import Message
from opsdeck_client import signed_headers
from sqlalchemy import func, select

from bench import load, throughput
from bench.api_latency import _wait_ready
from bench.common import (
    Report,
    Stack,
    backends,
    create_tenant,
    database,
    deployed,
    env_int,
    exit_on_sigterm,
    migrate,
    print_table,
    ratio,
    stack,
)
from bench.throughput import _app, _wait_boot
from tests.fakes.processes import Process, free_port, wait_until, web_command, worker_command

NAME = "P1c batch"
BATCH_PATH = "/api/v1/jobs/batch"
BATCH = 500
CLIENTS = 4
GOAL_JOBS_PER_S = 10_000  # PostgreSQL
GOAL_RATIO = 0.5
QUEUE = "default"
FINISHED = ("succeeded", "dead", "cancelled")
REQUEST_TIMEOUT = 60.0
WARM_BATCHES = 4
#: The columns a submitted job's row sets (jobs.new_row), in the baseline's INSERT.
COLUMNS = (
    "id",
    "tenant_id",
    "type",
    "queue",
    "priority",
    "status",
    "payload",
    "attempts",
    "max_attempts",
    "next_attempt_at",
    "idempotency_key",
    "created_at",
    "updated_at",
)


class BatchSigner:
    """Signed batch requests of distinct `system.echo` jobs, each with its own idempotency_key."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret
        self.run = uuid.uuid4().hex[:8]
        self.next = 0

    def requests(self, jobs: int) -> list[load.Request]:
        built = []
        for start in range(self.next, self.next + jobs, BATCH):
            items = [
                {
                    "type": "system.echo",
                    "payload": {"message": f"bench {self.run} {n}"},
                    "idempotency_key": f"bench-{self.run}-{n}",
                }
                for n in range(start, min(start + BATCH, self.next + jobs))
            ]
            data = json.dumps({"jobs": items}, separators=(",", ":")).encode()
            headers = signed_headers(self.key_id, self.secret, "POST", BATCH_PATH, data)
            headers["Content-Type"] = "application/json"
            built.append(("POST", BATCH_PATH, data, headers))
        self.next += jobs
        return built


@dataclass
class Sent:
    accepted: int  # jobs answered "replayed": false in a 202
    seconds: float  # first send -> last answer
    errors: dict[str, int]
    began: float  # time.time() of the first send

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0


def send(base: str, batches: list[load.Request]) -> Sent:
    answers = load.open_loop(base, batches, None, CLIENTS, timeout=REQUEST_TIMEOUT)
    accepted, errors = 0, {}
    for answer in answers:
        if answer.status == 202:
            accepted += sum(1 for job in json.loads(answer.body)["data"] if not job.get("replayed"))
        else:
            reason = answer.error or f"HTTP {answer.status}"
            errors[reason] = errors.get(reason, 0) + 1
    seconds = max(a.answered for a in answers) - min(a.scheduled for a in answers)
    return Sent(accepted, seconds, errors, min(a.sent_wall for a in answers))


def bare_inserts(redis_url: str, tenant_id: str, jobs: int) -> float:
    """The baseline: jobs/s inserting `jobs` rows (each with an idempotency_key, as the batches'
    are) with one executemany and COMMIT per 500, and publishing their messages in one pipeline
    per 500 (in the app's context: its engine and connection settings, none of its code)."""
    from app.extensions import db

    raw = db.engine.raw_connection()
    sqlite = db.engine.dialect.name == "sqlite"
    marks = ", ".join(["?" if sqlite else "%s"] * len(COLUMNS))
    sql = f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({marks})"
    client = redis.Redis.from_url(redis_url)
    run = uuid.uuid4().hex[:8]
    try:
        began = time.perf_counter()
        for start in range(0, jobs, BATCH):
            now = datetime.now(UTC)
            # SQLite keeps a timestamp as SQLAlchemy writes it (naive UTC text); psycopg adapts a datetime.
            stamp: Any = now.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now
            ids = [str(uuid.uuid4()) for _ in range(start, min(start + BATCH, jobs))]
            rows = [
                (
                    job_id,
                    tenant_id,
                    "system.echo",
                    QUEUE,
                    "normal",
                    "pending",
                    json.dumps({"message": f"bare {run} {start + i}"}),
                    0,
                    3,
                    stamp,
                    f"bare-{run}-{start + i}",
                    stamp,
                    stamp,
                )
                for i, job_id in enumerate(ids)
            ]
            cursor = raw.cursor()
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")  # the app's connections leave transactions to their caller
            cursor.executemany(sql, rows)
            cursor.close()
            raw.commit()
            pipe = client.pipeline(transaction=False)
            for job_id in ids:
                redis_id = str(uuid.uuid4())
                message = Message(
                    queue_name=QUEUE,
                    actor_name="system_echo",
                    args=(job_id,),
                    kwargs={},
                    options={"redis_message_id": redis_id},
                    message_id=job_id,
                )
                pipe.hset(f"dramatiq:{QUEUE}.msgs", redis_id, message.encode())
                pipe.rpush(f"dramatiq:{QUEUE}", redis_id)
            pipe.execute()
        return jobs / (time.perf_counter() - began)
    finally:
        client.close()
        raw.close()


def accepted(st: Stack, backend: str, report: Report) -> None:
    jobs = env_int("BENCH_BATCH_JOBS", 40_000)
    rounds = max(1, env_int("BENCH_BATCH_ROUNDS", 2))
    with database(backend, st.tmp) as url:
        env = st.env(url, API_RATE_LIMIT_PER_MINUTE=0)
        migrate(env)
        tenant = create_tenant(env)
        signer = BatchSigner(tenant["key_id"], tenant["secret"])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        print(
            f"\n[{NAME} / {backend}] {jobs} jobs in batches of {BATCH} from {CLIENTS} clients, no workers, "
            f"{rounds} rounds"
        )
        web = Process(web_command(port), env, f"p1c-web-{backend}", st.tmp).start()
        bare: list[float] = []
        sent: list[Sent] = []
        try:
            _wait_ready(web, base)
            warm = send(base, signer.requests(WARM_BATCHES * BATCH))
            if warm.errors:
                raise RuntimeError(f"warm-up batches refused: {warm.errors}\n{web.log()[-2000:]}")
            with _app(env):
                bare_inserts(st.redis.url, tenant["tenant_id"], WARM_BATCHES * BATCH)
                for n in range(rounds):  # the order swapped each round: a change in the machine's load weighs on both
                    for side in ("bare", "http")[:: 1 if n % 2 == 0 else -1]:
                        if side == "bare":
                            bare.append(bare_inserts(st.redis.url, tenant["tenant_id"], jobs))
                        else:
                            sent.append(send(base, signer.requests(jobs)))
        except Exception:
            print(web.log()[-4000:])
            raise
        finally:
            web.stop(10)
    baseline = sum(bare) / rounds
    rate = sum(s.rate for s in sent) / rounds
    complete = all(s.accepted == jobs for s in sent)
    errors: dict[str, int] = {}
    for s in sent:
        for reason, count in s.errors.items():
            errors[reason] = errors.get(reason, 0) + count
    r = ratio(rate, baseline)
    print(
        f"  baseline executemany + pipeline per {BATCH}: {baseline:8.0f} jobs/s (rounds "
        f"{' / '.join(f'{x:.0f}' for x in bare)})"
    )
    print(
        f"  POST {BATCH_PATH}:            {rate:8.0f} jobs/s (rounds {' / '.join(f'{s.rate:.0f}' for s in sent)}; "
        f"accepted {' / '.join(str(s.accepted) for s in sent)} of {jobs}{f', errors {errors}' if errors else ''})"
    )
    met_ratio = r >= GOAL_RATIO and complete
    print(f"  ratio {r:.2f}x baseline; goal >= {GOAL_RATIO:g}x: {'met' if met_ratio else 'NOT met'}")
    tag = f"{NAME} {backend}"
    if backend == "postgres":
        met_rate = rate >= GOAL_JOBS_PER_S and complete
        print(f"  goal >= {GOAL_JOBS_PER_S:,} jobs/s: {'met' if met_rate else 'NOT met'}")
        report.add(tag, "jobs accepted/s", f"{rate:,.0f}", f">= {GOAL_JOBS_PER_S:,}/s", met_rate)
    report.add(
        tag,
        f"accepted vs executemany+pipeline jobs/s ({CLIENTS} clients x {BATCH})",
        f"{rate:,.0f} vs {baseline:,.0f} = {r:.2f}x" + ("" if complete else " (not all accepted)"),
        f">= {GOAL_RATIO:g}x",
        met_ratio,
    )


def end_to_end(st: Stack, backend: str, report: Report, bare: throughput.Run) -> None:
    from app.extensions import db
    from app.models import Job

    jobs = env_int("BENCH_E2E_JOBS", 100_000)
    timeout = float(env_int("BENCH_E2E_TIMEOUT", 900))
    plan = deployed(QUEUE)
    st.flushall()
    with database(backend, st.tmp) as url:
        env = st.env(url, API_RATE_LIMIT_PER_MINUTE=0)
        migrate(env)
        tenant = create_tenant(env)
        signer = BatchSigner(tenant["key_id"], tenant["secret"])
        batches = signer.requests(jobs)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        print(
            f"[{NAME} / {backend}] end to end: {jobs} jobs in batches of {BATCH} from {CLIENTS} clients, "
            f"workers as {plan.program} ({plan.processes}x{plan.threads})"
        )
        web = Process(web_command(port), env, f"p1c-e2e-web-{backend}", st.tmp).start()
        workers = Process(
            worker_command([QUEUE], plan.processes, plan.threads),
            env,
            f"p1c-e2e-workers-{backend}-{uuid.uuid4().hex[:6]}",
            st.tmp,
        )
        try:
            _wait_ready(web, base)
            _wait_boot(workers.start(), plan.processes, time.perf_counter())
            with _app(env):

                def finished() -> int:
                    query = select(func.count()).select_from(Job).where(Job.status.in_(FINISHED))
                    with db.engine.connect() as conn:
                        return int(conn.scalar(query) or 0)

                sent = send(base, batches)
                try:
                    wait_until(lambda: finished() >= sent.accepted, timeout, 0.5, what="the jobs to finish")
                except TimeoutError:
                    print(f"  TIMEOUT after {timeout:g} s; last worker log lines:\n{workers.log()[-2000:]}")
                with db.engine.connect() as conn:
                    done, last = conn.execute(
                        select(func.count(), func.max(Job.finished_at)).where(Job.status == "succeeded")
                    ).one()
        except Exception:
            print(web.log()[-2000:], workers.log()[-2000:])
            raise
        finally:
            workers.stop(15)
            web.stop(10)
    seconds = last.timestamp() - sent.began if last else 0.0
    rate = done / seconds if seconds > 0 else 0.0
    r = ratio(rate, bare.rate)
    errors = f", errors {sent.errors}" if sent.errors else ""
    print(f"  submitted: {sent.accepted}/{jobs} accepted in {sent.seconds:.1f} s ({sent.rate:.0f} jobs/s{errors})")
    print(f"  end to end: {done} succeeded, first send -> last finish {seconds:.1f} s = {rate:.0f} jobs/s")
    print(f"  bare Dramatiq no-op (P2's baseline): {bare.rate:.0f} jobs/s; ratio {r:.2f}x")
    report.add(
        f"{NAME} {backend}",
        f"end-to-end jobs/s, {jobs} jobs (vs P2's bare Dramatiq no-op)",
        f"{rate:,.0f} (vs {bare.rate:,.0f} = {r:.2f}x)" + ("" if done == jobs else f" ({done}/{jobs} succeeded)"),
    )


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    report = report if report is not None else Report()
    if st is None:
        with stack() as own:
            return run(report, own)
    bare: throughput.Run | None = None
    for backend in backends():
        st.flushall()
        accepted(st, backend, report)
        if env_int("BENCH_E2E_JOBS", 100_000) <= 0:
            continue
        if bare is None:
            plan = deployed(QUEUE)
            n = env_int("BENCH_E2E_BARE_JOBS", 20_000)
            print(
                f"\n[{NAME}] bare Dramatiq no-op, {n} messages, --processes {plan.processes} --threads "
                f"{throughput.THREADS}"
            )
            bare = throughput.bare(st, plan.processes, n, float(env_int("BENCH_E2E_TIMEOUT", 900)))
            print(f"  {bare.done}/{n} in {bare.seconds:.2f} s = {bare.rate:.0f} jobs/s")
        end_to_end(st, backend, report, bare)
    return report


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
