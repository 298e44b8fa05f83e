"""Scale-out (issue 9): the same I/O-bound job mix with 1 and then 2 worker processes (same
threads per process); jobs/s of each and their ratio.

    python -m bench.scaling

The mix: BENCH_SCALING_JOBS ledger jobs (default 1200), two in three `webhooks.deliver` to a
local HTTP receiver and one in three `subscription.provision` to the RouterOS test server, each
peer answering after BENCH_SCALING_PEER_MS (default 40; a router's `add` over a WAN link, a
customer endpoint that does some work). They are seeded through the services with no worker
running; then `dramatiq workers --queues webhooks provisioning --threads T` (T =
BENCH_SCALING_THREADS, default 4) starts with --processes 1, and on a fresh database with 2.

What keeps the ratio honest:
- the peers take far more concurrency than 2 x T: both are thread-per-connection servers, and
  before the runs the bench checks them with 2 x T clients against the ideal 2 x T / latency;
- T is small enough that at 1 process the threads are the limit (busy threads, by Little's law
  rate x mean run time, are printed next to P x T);
- each run starts from an empty database, Redis and peers, and its rate is taken over the middle
  80% of finishes in the ledger (the first 10% warm up connections and caches, the last 10% drain
  as threads fall idle); worker boot is left out;
- BENCH_SCALING_ROUNDS (default 2) alternates 1 and 2 processes and reports the range; the goal
  is met when every round reaches it. The machine's busy share is printed with each run: on a
  saturated machine the second process competes for CPU, not for I/O.
"""

from __future__ import annotations

import resource
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import urllib3
from sqlalchemy import select

from bench.common import (
    LOOPBACK,
    ROUTER_PASSWORD,
    ROUTER_USER,
    Report,
    Stack,
    env_int,
    exit_on_sigterm,
    per_backend,
    print_table,
    router_and_plan,
    router_api,
    tenant_database,
)
from bench.scans import cpu_seconds
from bench.throughput import _app, _poll, _wait_boot
from tests.fakes.http_receiver import HttpReceiver, Reply
from tests.fakes.processes import Process, worker_command
from tests.fakes.routeros import Command, RouterOsServer

NAME = "scale-out"
GOAL_RATIO = 1.7
QUEUES = ("webhooks", "provisioning")
PROVISION_EVERY = 3  # one job in three is a provision, the others webhook deliveries
SEED_COMMIT = 100
FINAL = ("succeeded", "dead", "cancelled")


class SlowRouter(RouterOsServer):
    """The RouterOS test server answering each command (the login apart) `delay` seconds late."""

    def __init__(self, delay: float) -> None:
        super().__init__(ROUTER_USER, ROUTER_PASSWORD)
        self.delay = delay

    def _record(self, command: Command) -> None:  # called by each connection's thread before it answers
        super()._record(command)
        if command.path != "/login":
            time.sleep(self.delay)


@dataclass
class Run:
    processes: int
    done: int  # succeeded
    other: int  # finished otherwise (dead, cancelled) or not at all
    rate: float  # jobs/s over the middle 80% of finishes
    busy: float  # threads busy on average in that window (rate x mean run time)
    run_ms: dict[str, float]  # mean run time per job type (started_at -> finished_at)
    cpu_ms: float  # worker CPU per job (every process of the group)
    bench_ms: float  # this process's CPU per job meanwhile: the peers, and polling the ledger
    machine: float  # share of every core busy meanwhile (this run and whatever else runs)


def peer_check(receiver: HttpReceiver, router: SlowRouter, clients: int, delay: float) -> tuple[float, float]:
    """Requests/s each peer answers for `clients` concurrent clients, as a share of the ideal
    clients / delay: near 1.0 means the peer is no limit at that concurrency."""
    per_client = max(5, int(1 / delay))
    pool = urllib3.HTTPConnectionPool("127.0.0.1", receiver.port, maxsize=clients, block=True)
    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as executor:
        list(
            executor.map(
                lambda _: pool.urlopen("POST", "/peer-check", body=b"{}", retries=False).status,
                range(clients * per_client),
            )
        )
    http = clients * per_client / (time.perf_counter() - began) * delay / clients
    pool.close()
    apis = [router_api(router.port) for _ in range(clients)]

    def adds(n: int) -> None:
        users = apis[n].path("/ip/hotspot/user")
        for i in range(per_client):
            users.add(name=f"peer-{n}-{i}", password="pw", profile="default")

    began = time.perf_counter()
    threads = [threading.Thread(target=adds, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ros = clients * per_client / (time.perf_counter() - began) * delay / clients
    for api in apis:
        api.close()
    return http, ros


def seed(tenant_id: str, n: int, receiver: HttpReceiver, router: SlowRouter) -> None:
    """n pending jobs of the mix, published to Redis at each commit (in the bench's own app)."""
    from app.extensions import db
    from app.services.provisioning import subscriptions
    from app.services.webhooks import endpoints, events

    endpoints.create(tenant_id, url=receiver.url("/hook"), actor="bench", event_types=["bench.tick"])
    r, p = router_and_plan(tenant_id, router.port)
    db.session.commit()
    for i in range(n):
        if i % PROVISION_EVERY == PROVISION_EVERY - 1:
            subscriptions.create(tenant_id, p, r, source="manual")
        else:
            events.create(tenant_id, "bench.tick", {"n": i, "pad": "x" * 200})
        if i % SEED_COMMIT == SEED_COMMIT - 1 or i == n - 1:
            db.session.commit()
    db.session.remove()


def one_run(st: Stack, backend: str, processes: int, threads: int, n: int, delay: float) -> Run:
    from sqlalchemy import func

    from app.extensions import db
    from app.models import Job

    st.flushall()
    receiver = HttpReceiver(Reply(delay=delay)).start()
    router = SlowRouter(delay).start()
    try:
        with (
            tenant_database(st, backend, WEBHOOK_ALLOWED_NETWORKS=LOOPBACK, ROUTER_TIMEOUT=10) as (env, tenant),
            _app(env),
        ):
            seed(tenant["tenant_id"], n, receiver, router)

            def finished() -> bool:
                with db.engine.connect() as conn:
                    left = conn.scalar(select(func.count()).select_from(Job).where(Job.status.notin_(FINAL)))
                return left == 0

            name = f"scaling-{backend}-{processes}-{uuid.uuid4().hex[:6]}"
            workers = Process(worker_command(QUEUES, processes, threads), env, name, st.tmp)
            started = time.perf_counter()
            workers.start()
            try:
                _wait_boot(workers, processes, started)
                cpu, own, stat = cpu_seconds(workers.proc.pid), _own_cpu(), _machine()  # type: ignore[union-attr]
                _poll(finished, 300, workers)
                cpu, own = cpu_seconds(workers.proc.pid) - cpu, _own_cpu() - own  # type: ignore[union-attr]
                machine = _busy_share(stat, _machine())
            finally:
                workers.stop(15)
            with db.engine.connect() as conn:
                rows = conn.execute(select(Job.type, Job.status, Job.started_at, Job.finished_at)).all()
    finally:
        receiver.close()
        router.close()
    return measure(processes, rows, n, cpu, own, machine)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine() -> tuple[int, int]:
    """(busy, total) jiffies of every core since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def measure(processes: int, rows: list, n: int, cpu: float, own: float, machine: float) -> Run:  # type: ignore[type-arg]
    ok = sorted((r for r in rows if r.status == "succeeded"), key=lambda r: r.finished_at)
    if len(ok) < 10:
        return Run(processes, len(ok), n - len(ok), 0.0, 0.0, {}, 0.0, 0.0, machine)
    w = len(ok) // 10
    window = ok[w : len(ok) - w]
    seconds = (window[-1].finished_at - window[0].finished_at).total_seconds()
    rate = (len(window) - 1) / seconds if seconds > 0 else 0.0
    runs = [(r.finished_at - r.started_at).total_seconds() for r in window]
    run_ms = {}
    for kind in sorted({r.type for r in window}):
        run_ms[kind] = statistics.median(
            (r.finished_at - r.started_at).total_seconds() * 1000 for r in window if r.type == kind
        )
    busy = rate * sum(runs) / len(runs)
    return Run(processes, len(ok), n - len(ok), rate, busy, run_ms, cpu * 1000 / len(ok), own * 1000 / len(ok), machine)


def bench_backend(st: Stack, backend: str, report: Report) -> None:
    n = env_int("BENCH_SCALING_JOBS", 1200)
    threads = env_int("BENCH_SCALING_THREADS", 4)
    delay = env_int("BENCH_SCALING_PEER_MS", 40) / 1000
    rounds = env_int("BENCH_SCALING_ROUNDS", 2)
    print(
        f"\n[{NAME} / {backend}] {n} jobs (2/3 webhooks.deliver, 1/3 subscription.provision), peers answer "
        f"after {delay * 1000:g} ms; --threads {threads}, --processes 1 then 2, {rounds} round(s)"
    )
    receiver, router = HttpReceiver(Reply(delay=delay)).start(), SlowRouter(delay).start()
    try:
        http, ros = peer_check(receiver, router, 2 * threads, delay)
    finally:
        receiver.close()
        router.close()
    print(
        f"  peers with {2 * threads} clients: HTTP receiver {http:.0%}, RouterOS server {ros:.0%} of "
        f"{2 * threads} / latency"
    )
    ratios, rates = [], {1: [], 2: []}
    for i in range(rounds):
        pair = {}
        for processes in (1, 2):
            run = one_run(st, backend, processes, threads, n, delay)
            times = ", ".join(f"{k} {v:.0f} ms" for k, v in run.run_ms.items())
            extra = f", {run.other} not succeeded" if run.other else ""
            print(
                f"  round {i + 1}, {processes} process(es): {run.done}/{n} at {run.rate:.0f} jobs/s{extra}; busy "
                f"threads {run.busy:.1f} of {processes * threads}; median run {times}; CPU/job: workers "
                f"{run.cpu_ms:.1f} ms, bench + peers {run.bench_ms:.1f} ms; machine {run.machine:.0%} busy"
            )
            pair[processes] = run
            rates[processes].append(run.rate)
        r = pair[2].rate / pair[1].rate if pair[1].rate > 0 and not pair[1].other and not pair[2].other else 0.0
        ratios.append(r)
        print(f"  round {i + 1}: {pair[2].rate:.0f} / {pair[1].rate:.0f} jobs/s = {r:.2f}x")
    met = min(ratios) >= GOAL_RATIO
    value = f"{_span(rates[2], '{:.0f}')} vs {_span(rates[1], '{:.0f}')} jobs/s = {_span(ratios, '{:.2f}')}x"
    print(f"  2 vs 1 process: {value}; goal >= {GOAL_RATIO:g}x: {'met' if met else 'NOT met'}")
    report.add(
        f"{NAME} {backend}",
        f"jobs/s 2 vs 1 process ({threads} threads, {rounds} rounds)",
        value,
        f">= {GOAL_RATIO:g}x",
        met,
    )


def _span(values: list[float], fmt: str) -> str:
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}-{high}"


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    return per_backend(bench_backend, report, st)


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
