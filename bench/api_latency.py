"""P1a and P1b: latency and throughput of the signed, idempotent `POST /api/v1/jobs` on the
production web command (supervisor/gunicorn.conf.py: gthread, WEB_CONCURRENCY processes).

    python -m bench.api_latency

The server runs `bench.floor:build()`, the production app plus the floor endpoint (bench/floor.py):
the least work a durable submit must do (key lookup, HMAC, one INSERT, COMMIT, one publish).

P1a, open loop (BENCH_RATE req/s for BENCH_SECONDS s, default 100 for 20): every request has a
scheduled send time and its latency runs from that time to the response, so a slow response
delays no measurement (no coordinated omission); BENCH_SENDERS threads (default 8) send.
P1b, closed loop (BENCH_CONCURRENCY threads for BENCH_CLOSED_SECONDS s, default 8 for 5): the
most requests per second `POST /api/v1/jobs` serves, as a ratio to the floor endpoint on the
same processes. BENCH_CLOSED_ROUNDS rounds (default 2), the order of the two endpoints swapped
each round, so that a change in the machine's load meanwhile weighs on both; each figure is the
mean of its rounds.

tests/test_outbox.py holds 15+ concurrent POSTs from deadlocking on the connection pool.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis
from opsdeck_client import signed_headers

from bench import load
from bench.common import (
    Report,
    Stack,
    env_float,
    env_int,
    exit_on_sigterm,
    per_backend,
    percentile,
    print_table,
    ratio,
    tenant_database,
)
from bench.floor import FLOOR_PATH
from tests.fakes.processes import Process, free_port, wait_for_web, web_command

NAME = "P1 api"
JOBS_PATH = "/api/v1/jobs"
GOAL_P95_MS = 10.0
GOAL_RATIO = 0.8
REQUEST_TIMEOUT = 5.0


class Signer:
    """Builds distinct signed job submissions: a unique counter in the body (a signature is
    accepted once) and a unique Idempotency-Key."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret
        self.run = uuid.uuid4().hex[:8]
        self._counter = itertools.count()  # next() on a count is atomic under the GIL

    def job_request(self, path: str = JOBS_PATH) -> tuple[bytes, dict[str, str]]:
        n = next(self._counter)
        body = {"type": "system.echo", "payload": {"message": f"bench {self.run} {n}"}}
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = signed_headers(self.key_id, self.secret, "POST", path, data)
        headers["Content-Type"] = "application/json"
        if path == JOBS_PATH:
            headers["Idempotency-Key"] = f"bench-{self.run}-{n}"
        return data, headers


def post_job(conn: load.Connection, signer: Signer) -> int:
    data, headers = signer.job_request()
    return conn.send("POST", JOBS_PATH, data, headers)


def post_floor(conn: load.Connection, signer: Signer) -> int:
    data, headers = signer.job_request(FLOOR_PATH)
    return conn.send("POST", FLOOR_PATH, data, headers)


def web_command_floor(port: int) -> list[str]:
    """The production web command serving the app with the floor endpoint (bench/floor.py)."""
    command = web_command(port)
    if command[-1] != "wsgi:app":
        raise RuntimeError(f"the web command no longer ends with wsgi:app: {command}")
    return [*command[:-1], "bench.floor:build()"]


@dataclass
class OpenLoop:
    latencies_ms: list[float]
    sent: int
    errors: Counter[str]
    achieved_rate: float


def open_loop(base: str, signer: Signer, rate: float, seconds: float, senders: int) -> OpenLoop:
    total = max(1, int(rate * seconds))
    signed = [("POST", JOBS_PATH, *signer.job_request()) for _ in range(total)]  # well inside the tolerance
    # Hard stop: a stalled server costs at most this long; what was not sent counts as errors.
    answers = load.open_loop(base, signed, rate, senders, max(10.0, seconds / 2), REQUEST_TIMEOUT)
    latencies = sorted(a.latency_ms for a in answers if a.status == 202)
    errors = Counter(a.error or f"HTTP {a.status}" for a in answers if a.status != 202)
    elapsed = max(a.answered for a in answers) - min(a.scheduled for a in answers)
    return OpenLoop(latencies, total, errors, total / elapsed if elapsed > 0 else 0.0)


def closed_loop(base: str, signer: Signer, call: Any, concurrency: int, seconds: float) -> tuple[float, int]:
    """Requests/s answered 2xx by `concurrency` threads sending back to back; and the errors."""
    barrier = threading.Barrier(concurrency + 1)
    counts: list[tuple[int, int]] = []
    lock = threading.Lock()
    deadline = 0.0

    def client() -> None:
        conn = load.Connection(base, REQUEST_TIMEOUT)
        ok = bad = 0
        barrier.wait()
        while time.perf_counter() < deadline:
            try:
                status = call(conn, signer)
            except (http.client.HTTPException, OSError):
                status = 0
            if 200 <= status < 300:
                ok += 1
            else:
                bad += 1
        conn.close()
        with lock:
            counts.append((ok, bad))

    threads = [threading.Thread(target=client, name=f"client-{n}", daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline = time.perf_counter() + seconds
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return sum(ok for ok, _ in counts) / elapsed, sum(bad for _, bad in counts)


def _published(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.hlen("dramatiq:default.msgs"))
    finally:
        client.close()


def bench_backend(st: Stack, backend: str, report: Report) -> None:
    rate = env_float("BENCH_RATE", 100)
    seconds = env_float("BENCH_SECONDS", 20)
    senders = env_int("BENCH_SENDERS", 8)
    concurrency = env_int("BENCH_CONCURRENCY", 8)
    closed_seconds = env_float("BENCH_CLOSED_SECONDS", 5)
    rounds = max(1, env_int("BENCH_CLOSED_ROUNDS", 2))
    with tenant_database(st, backend, API_RATE_LIMIT_PER_MINUTE=0) as (env, tenant):
        signer = Signer(tenant["key_id"], tenant["secret"])
        port = free_port()
        web = Process(web_command_floor(port), env, f"gunicorn-{backend}", st.tmp).start()
        try:
            base = wait_for_web(web, port, "gunicorn")
            warm = load.Connection(base, REQUEST_TIMEOUT)
            for _ in range(50):
                if post_job(warm, signer) != 202 or post_floor(warm, signer) != 202:
                    raise RuntimeError(f"warm-up refused:\n{web.log()[-2000:]}")
            warm.close()

            print(f"\n[P1a / {backend}] open loop: POST {JOBS_PATH} at {rate:g} req/s for {seconds:g} s")
            result = open_loop(base, signer, rate, seconds, senders)
            p50, p95, p99 = (percentile(result.latencies_ms, q) for q in (50, 95, 99))
            n_errors = sum(result.errors.values())
            print(f"  p50 {p50:.2f} ms   p95 {p95:.2f} ms   p99 {p99:.2f} ms   max {result.latencies_ms[-1]:.2f} ms")
            print(
                f"  sent {result.sent}, achieved {result.achieved_rate:.1f} req/s, errors {n_errors} {dict(result.errors)}"
            )
            print(f"  goal p95 <= {GOAL_P95_MS:g} ms: {'met' if p95 <= GOAL_P95_MS else 'NOT met'}")

            print(f"[P1b / {backend}] closed loop: {concurrency} threads x {closed_seconds:g} s each, {rounds} rounds")
            calls = {"floor": post_floor, "jobs": post_job}
            rates: dict[str, list[float]] = {name: [] for name in calls}
            errors = dict.fromkeys(calls, 0)
            for n in range(rounds):
                for name in list(calls)[:: 1 if n % 2 == 0 else -1]:
                    measured, failed = closed_loop(base, signer, calls[name], concurrency, closed_seconds)
                    rates[name].append(measured)
                    errors[name] += failed
            floor, posts = (sum(rates[name]) / rounds for name in calls)
            r = ratio(posts, floor)
            each = {name: " / ".join(f"{x:.1f}" for x in rates[name]) for name in calls}
            print(
                f"  baseline floor POST {FLOOR_PATH}  {floor:8.1f} req/s  (rounds {each['floor']}; errors "
                f"{errors['floor']})"
            )
            print(
                f"  signed POST {JOBS_PATH}             {posts:8.1f} req/s  (rounds {each['jobs']}; errors "
                f"{errors['jobs']})"
            )
            print(f"  ratio {r:.2f}x floor; goal >= {GOAL_RATIO:g}x floor: {'met' if r >= GOAL_RATIO else 'NOT met'}")
            print(f"  jobs published to Redis: {_published(st.redis.url)} (none consumed: no workers run in P1)")
        except Exception:
            print(web.log()[-4000:])
            raise
        finally:
            web.stop(10)
    report.add(
        f"P1a api {backend}",
        "open-loop p50/p95/p99",
        f"{p50:.2f}/{p95:.2f}/{p99:.2f} ms",
        f"p95 <= {GOAL_P95_MS:g} ms",
        p95 <= GOAL_P95_MS,
    )
    report.add(
        f"P1a api {backend}",
        "open-loop rate, errors",
        f"{result.achieved_rate:.1f} req/s of {rate:g}, {n_errors} errors",
    )
    report.add(
        f"P1b api {backend}",
        "POST vs floor req/s",
        f"{posts:.1f} vs {floor:.1f} = {r:.2f}x",
        f">= {GOAL_RATIO:g}x floor",
        r >= GOAL_RATIO,
    )


def _wait_ready(web: Process, base: str) -> None:
    """`wait_for_web` for the benches that hold the base URL rather than the port (bench/batch.py,
    bench/scans.py)."""
    wait_for_web(web, int(base.rpartition(":")[2]), "gunicorn")


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    return per_backend(bench_backend, report, st)


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
