"""`make bench`: P1a/P1b (API latency and throughput), P1c (batch submissions), P2 (job
throughput, and with tracing on), P9 (a high-priority job behind a low-priority backlog), P3 (admin pages with
1,000,000 jobs), P8 (live-feed latency), P4 (webhook deliveries), P10 email (mails/s), P5 (scans),
P6 (retention deletes, PostgreSQL only), P7 (provisioning) and scale-out (1 vs 2 worker
processes), one Redis for all, then a summary table. Each figure is held against a baseline
measured in this same run."""

from __future__ import annotations

import platform
import time

from bench import (
    admin_pages,
    api_latency,
    batch,
    email,
    live_latency,
    priority,
    provisioning,
    results,
    retention,
    scaling,
    scans,
    throughput,
    tracing,
    webhooks,
)
from bench.common import Report, backends, exit_on_sigterm, print_table, stack


def main() -> int:
    exit_on_sigterm()
    began = time.perf_counter()
    print(
        f"Opsdeck benchmarks on {platform.python_implementation()} {platform.python_version()}, backends: "
        f"{', '.join(backends())}"
    )
    report = Report()
    with stack() as st:
        api_latency.run(report, st)
        batch.run(report, st)
        throughput.run(report, st)
        tracing.run(report, st)
        priority.run(report, st)
        admin_pages.run(report, st)
        live_latency.run(report, st)
        webhooks.run(report, st)
        email.run(report, st)
        scans.run(report, st)
        retention.run(report, st)
        provisioning.run(report, st)
        scaling.run(report, st)
    print(f"\nSummary ({time.perf_counter() - began:.0f} s)")
    print_table(report.rows)
    print(f"written: {results.write(report.rows, time.perf_counter() - began)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
