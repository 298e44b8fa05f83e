"""P4: webhook deliveries per second, and the latency from an event accepted to its first
delivery attempt.

    python -m bench.webhooks

Throughput: BENCH_WEBHOOK_EVENTS events (default 1000) fanned out to 2 endpoints are accepted
with no worker running; then the workers deliver them to a local receiver, and the rate is
deliveries / (first attempt -> last attempt) as the receiver saw them. The workers run as
supervisor/opsdeck.conf deploys the `webhooks` queue (opsdeck-worker: 2 processes x 8 threads;
BENCH_WEBHOOK_PROCESSES overrides the processes); that is the figure held against the goal. A
second run with 1 process shows what one process does alone. Baseline, same run: 8 threads
POSTing the same bodies to the same receiver over kept-alive connections (urllib3), the most that
receiver takes from this machine.

Latency: with the same workers and the production web command running, signed
`POST /api/v1/events` at BENCH_WEBHOOK_RATE events/s (default 200) for BENCH_WEBHOOK_SECONDS
(default 10) to one endpoint; each event's latency runs from its 202 at the client to its first
request at the receiver (same clock), after WARM_SECONDS at the same rate whose figures are
printed apart. Anchor: Convoy p95 124 ms at 200 events/s.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import urllib3
from opsdeck_client import signed_headers

from bench import load
from bench.common import (
    LOOPBACK,
    Report,
    Stack,
    deployed,
    env_float,
    env_int,
    exit_on_sigterm,
    per_backend,
    percentile,
    print_table,
    ratio,
    tenant_database,
)
from bench.throughput import THREADS, _app, _poll, _wait_boot
from tests.fakes.http_receiver import HttpReceiver
from tests.fakes.processes import Process, free_port, wait_for_web, web_command, worker_command

NAME = "P4 webhooks"
GOAL_RATE = 500.0
GOAL_P95_MS = 100.0
QUEUE = "webhooks"
EVENTS_PATH = "/api/v1/events"
SENDERS = 16
#: Events at the measured rate for this long before the measured ones, reported on a line of
#: their own: each run starts fresh processes on a freshly created database, and on PostgreSQL
#: here the first second answered several times slower than the rest (p50 96 ms, then 5-40).
WARM_SECONDS = 2.0


def _workers(processes: int) -> list[str]:
    return worker_command([QUEUE], processes, deployed(QUEUE).threads)


def _processes() -> int:
    return env_int("BENCH_WEBHOOK_PROCESSES", deployed(QUEUE).processes)


def _endpoint(tenant_id: str, url: str) -> None:
    from app.extensions import db
    from app.services.webhooks import endpoints

    endpoints.create(tenant_id, url=url, actor="bench")
    db.session.commit()


def baseline(receiver: HttpReceiver, bodies: list[bytes], threads: int) -> float:
    """POSTs/s the receiver answers from `threads` kept-alive connections."""
    pool = urllib3.HTTPConnectionPool("127.0.0.1", receiver.port, maxsize=threads, block=True)
    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        list(executor.map(lambda b: pool.urlopen("POST", "/baseline", body=b, retries=False).status, bodies))
    elapsed = time.perf_counter() - began
    pool.close()
    return len(bodies) / elapsed


def throughput(st: Stack, backend: str, report: Report, processes: int, goal: bool = True) -> None:
    """Deliveries/s of `processes` worker processes; against the goal, or for information."""
    from app.extensions import db
    from app.models import Event
    from app.services.webhooks import events

    n = env_int("BENCH_WEBHOOK_EVENTS", 1000)
    threads = deployed(QUEUE).threads
    st.flushall()
    receiver = HttpReceiver().start()
    try:
        with tenant_database(st, backend, WEBHOOK_ALLOWED_NETWORKS=LOOPBACK) as (env, tenant):
            with _app(env):
                _endpoint(tenant["tenant_id"], receiver.url("/a"))
                _endpoint(tenant["tenant_id"], receiver.url("/b"))
                began = time.perf_counter()
                for i in range(n):
                    events.create(tenant["tenant_id"], "bench.tick", {"n": i, "pad": "x" * 200})
                    if i % 100 == 99:
                        db.session.commit()
                db.session.commit()
                accepted = time.perf_counter() - began
                bodies = [e.body.encode() for e in db.session.query(Event).limit(2 * n)]
                db.session.remove()
            print(
                f"\n[{NAME} / {backend}] {n} events x 2 endpoints accepted in {accepted:.1f} s "
                f"({n / accepted:.0f} events/s); workers: --processes {processes} --threads {threads}"
            )
            expected = 2 * n
            workers = Process(_workers(processes), env, f"webhooks-{backend}-{processes}", st.tmp)
            started = time.perf_counter()
            workers.start()
            try:
                _wait_boot(workers, processes, started)
                _poll(lambda: len(receiver.received) >= expected, 120, workers)
            finally:
                workers.stop(15)
            got = sorted(r.at for r in receiver.received)
            rate = (len(got) - 1) / (got[-1] - got[0]) if len(got) > 1 else 0.0
            base = baseline(receiver, (bodies * 2)[:expected], THREADS)
            r = ratio(rate, base)
            print(f"  baseline: the receiver takes {base:.0f} POST/s from {THREADS} kept-alive threads")
            print(
                f"  Opsdeck: {len(got)}/{expected} deliveries at {rate:.0f}/s ({r:.2f}x the baseline), "
                f"over {receiver.connections} connections"
            )
            value = f"{rate:.0f} (vs {base:.0f} = {r:.2f}x)"
            metric = f"deliveries/s, {processes} process{'es' if processes > 1 else ''} (vs raw POSTs/s)"
            if not goal:
                report.add(f"{NAME} {backend}", metric, value)
                return
            met = rate >= GOAL_RATE and len(got) >= expected
            print(f"  goal >= {GOAL_RATE:g} deliveries/s: {'met' if met else 'NOT met'}")
            report.add(f"{NAME} {backend}", metric, value, f">= {GOAL_RATE:g}/s", met)
    finally:
        receiver.close()


def latency(st: Stack, backend: str, report: Report) -> None:
    rate = env_float("BENCH_WEBHOOK_RATE", 200)
    seconds = env_float("BENCH_WEBHOOK_SECONDS", 10)
    processes = _processes()
    st.flushall()
    receiver = HttpReceiver().start()
    try:
        with tenant_database(st, backend, WEBHOOK_ALLOWED_NETWORKS=LOOPBACK, API_RATE_LIMIT_PER_MINUTE=0) as (
            env,
            tenant,
        ):
            with _app(env):
                _endpoint(tenant["tenant_id"], receiver.url("/live"))
            port = free_port()
            web = Process(web_command(port), env, f"web-{backend}", st.tmp).start()
            workers = Process(_workers(processes), env, f"webhooks-live-{backend}", st.tmp)
            started = time.perf_counter()
            workers.start()
            try:
                base = wait_for_web(web, port)
                _wait_boot(workers, processes, started)
                warm = _send(base, tenant, rate, WARM_SECONDS)  # reported apart: see WARM_SECONDS
                _poll(lambda: len({r.headers.get("webhook-id") for r in receiver.received}) >= len(warm), 60, workers)
                accepted = _send(base, tenant, rate, seconds)
                total = len(accepted)
                everything = total + len(warm)
                _poll(lambda: len({r.headers.get("webhook-id") for r in receiver.received}) >= everything, 60, workers)
            finally:
                workers.stop(15)
                web.stop(10)
            first: dict[str, float] = {}
            for r in receiver.received:
                first.setdefault(r.headers.get("webhook-id", ""), r.at)
            lat = sorted((first[i] - t) * 1000 for i, t in accepted.items() if i in first)
            cold = sorted((first[i] - t) * 1000 for i, t in warm.items() if i in first)
            p50, p95, p99 = (percentile(lat, q) for q in (50, 95, 99))
            c50, c95 = percentile(cold, 50), percentile(cold, 95)
            print(
                f"\n[{NAME} / {backend}] first {len(warm)} events after boot (not in the figures below): "
                f"p50 {c50:.1f} ms  p95 {c95:.1f} ms"
            )
            report.add(f"{NAME} {backend}", f"first {len(warm)} events after boot p50/p95", f"{c50:.1f}/{c95:.1f} ms")
            print(
                f"\n[{NAME} / {backend}] {total} events at {rate:g}/s, {processes} worker process(es): "
                "accepted -> first attempt "
                f"p50 {p50:.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms  ({len(lat)}/{total} delivered)"
            )
            met = p95 <= GOAL_P95_MS and len(lat) == total
            print(f"  goal p95 <= {GOAL_P95_MS:g} ms (Convoy: 124 ms): {'met' if met else 'NOT met'}")
            report.add(
                f"{NAME} {backend}",
                f"accepted->attempt at {rate:g}/s p50/p95",
                f"{p50:.1f}/{p95:.1f} ms",
                f"p95 <= {GOAL_P95_MS:g} ms",
                met,
            )
    finally:
        receiver.close()


def _send(base: str, tenant: dict[str, str], rate: float, seconds: float) -> dict[str, float]:
    """Open loop (bench/load.py), events signed before the clock starts: event i is sent at
    start + i/rate; returns event id -> time its 202 arrived."""
    run = uuid.uuid4().hex[:8]
    requests_: list[load.Request] = []
    for i in range(int(rate * seconds)):
        data = json.dumps({"type": "bench.live", "payload": {"run": run, "n": i}}).encode()
        headers = signed_headers(tenant["key_id"], tenant["secret"], "POST", EVENTS_PATH, data)
        headers["Content-Type"] = "application/json"
        requests_.append(("POST", EVENTS_PATH, data, headers))
    answers = load.open_loop(base, requests_, rate, SENDERS)
    return {json.loads(a.body)["id"]: a.answered_wall for a in answers if a.status == 202}


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    return per_backend(both, report, st)


def both(st: Stack, backend: str, report: Report) -> None:
    processes = _processes()
    throughput(st, backend, report, processes)
    if processes != 1:
        throughput(st, backend, report, 1, goal=False)
    latency(st, backend, report)


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
