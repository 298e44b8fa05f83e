"""P8: live-feed latency, from a worker-side publish (another process, write-only SocketIO on
Redis) to receipt by a python-socketio client connected to the production web server, at
BENCH_LIVE_RATE events/s (100) for BENCH_LIVE_SECONDS (10). Baseline: the same rate over bare
Redis pub/sub in this run (publish → subscriber), the floor any Redis-fanned feed pays.

    python -m bench.live_latency
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import redis
import requests
import socketio

from bench.common import BIN, Report, Stack, database, env_float, migrate, percentile, stack
from tests.fakes.processes import ROOT, Process, free_port, wait_until, web_command

NAME = "P8 live"
GOAL_P95_MS = 50.0
PASSWORD = "bench password 1234"


def _login(base: str) -> str:
    http = requests.Session()
    page = http.get(f"{base}/admin/login", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    http.post(
        f"{base}/admin/login",
        data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def _redis_baseline(url: str, rate: float, seconds: float) -> list[float]:
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub()
    pubsub.subscribe("bench-baseline")
    pubsub.get_message(timeout=1)
    latencies: list[float] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                latencies.append((time.time() - float(message["data"])) * 1000)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    start, interval = time.perf_counter(), 1.0 / rate
    for i in range(int(rate * seconds)):
        pause = start + i * interval - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        client.publish("bench-baseline", str(time.time()))
    time.sleep(0.5)
    done.set()
    listener.join(2)
    pubsub.close()
    client.close()
    return sorted(latencies)


def bench(st: Stack, report: Report) -> None:
    rate, seconds = env_float("BENCH_LIVE_RATE", 100), env_float("BENCH_LIVE_SECONDS", 10)
    with database("sqlite", st.tmp) as url:
        env = st.env(url)
        migrate(env)
        subprocess.run(
            [
                str(BIN / "flask"),
                "--app",
                "wsgi.py",
                "users",
                "create",
                "bench@example.com",
                "--role",
                "viewer",
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        web = Process(web_command(port), env, "gunicorn-live", st.tmp).start()
        client = socketio.Client(reconnection=False)
        latencies: list[float] = []
        client.on(
            "bench.ping", lambda ev: latencies.append((time.time() - ev["data"]["sent"]) * 1000), namespace="/admin"
        )
        try:
            wait_until(lambda: _up(base), 30, 0.1, what="gunicorn")
            client.connect(
                base, namespaces=["/admin"], headers={"Cookie": _login(base)}, transports=["websocket"], wait_timeout=10
            )
            print(
                f"\n[{NAME}] {rate:g} events/s for {seconds:g} s: worker-side publish → Redis → web → Socket.IO client"
            )
            subprocess.run(
                [sys.executable, "-m", "bench.live_publisher", str(rate), str(seconds)],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                timeout=seconds + 60,
            )
            time.sleep(1.0)
        finally:
            client.disconnect()
            web.stop()
    sent = int(rate * seconds)
    latencies.sort()
    if not latencies:
        print("  no event arrived")
        report.add(NAME, "publish→client p50/p95", "no events", f"p95 <= {GOAL_P95_MS:g} ms", False)
        return
    p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
    base_lat = _redis_baseline(st.redis.url, rate, min(seconds, 5))
    b50, b95 = (percentile(base_lat, q) for q in (50, 95))
    print(f"  received {len(latencies)}/{sent}; p50 {p50:.2f} ms  p95 {p95:.2f} ms  p99 {p99:.2f} ms")
    print(f"  baseline bare Redis pub/sub: p50 {b50:.2f} ms  p95 {b95:.2f} ms")
    print(f"  goal p95 <= {GOAL_P95_MS:g} ms: {'met' if p95 <= GOAL_P95_MS else 'NOT met'}")
    report.add(
        NAME,
        "publish→client p50/p95/p99",
        f"{p50:.2f}/{p95:.2f}/{p99:.2f} ms",
        f"p95 <= {GOAL_P95_MS:g} ms",
        p95 <= GOAL_P95_MS,
    )
    report.add(NAME, "received, bare Redis p95", f"{len(latencies)}/{sent}, {b95:.2f} ms")


def _up(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    report = report if report is not None else Report()
    if st is None:
        with stack() as own:
            return run(report, own)
    st.flushall()
    bench(st, report)
    return report


if __name__ == "__main__":
    from bench.common import exit_on_sigterm, print_table

    exit_on_sigterm()
    print_table(run().rows)
