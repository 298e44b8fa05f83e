"""P2 traced: the P2 run (bench/throughput.py) with OpenTelemetry on, against the same run off.

    python -m bench.tracing

Tracing on means OTEL_EXPORTER_OTLP_ENDPOINT pointing at a real OTLP/HTTP receiver on loopback
(tests/fakes/otlp.py, which decodes every export as a collector would), for the submitting app
and the workers; every job then has its producer and consumer spans, its SQL and Redis spans,
all batched and exported. BENCH_JOBS jobs (default 5000), --processes each of
BENCH_TRACING_PROCESSES (default "1"), off then on, BENCH_TRACING_ROUNDS times (default 2);
the figure is the best rate of each.
"""

from __future__ import annotations

from bench import throughput
from bench.common import Report, Stack, backends, env_int, env_ints, exit_on_sigterm, print_table, ratio, stack
from tests.fakes.otlp import OtlpReceiver

NAME = "P2 traced"


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    report = report if report is not None else Report()
    if st is None:
        with stack() as own:
            return run(report, own)
    n = env_int("BENCH_JOBS", 5000)
    timeout = float(env_int("BENCH_JOB_TIMEOUT", 120))
    rounds = env_int("BENCH_TRACING_ROUNDS", 2)
    collector = OtlpReceiver().start()
    try:
        for backend in backends():
            for processes in env_ints("BENCH_TRACING_PROCESSES", "1"):
                print(f"\n[{NAME} / {backend}] {n} system.echo jobs, --processes {processes}, tracing off vs on")
                off: list[float] = []
                on: list[float] = []
                for _ in range(rounds):
                    plain = throughput.opsdeck(st, backend, processes, n, timeout)
                    off.append(plain.rate if plain.done >= n else 0.0)
                    print(f"  off: {plain.done}/{n} in {plain.seconds:.2f} s = {plain.rate:.0f} jobs/s")
                    collector.clear()
                    traced = throughput.opsdeck(
                        st, backend, processes, n, timeout, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url
                    )
                    on.append(traced.rate if traced.done >= n else 0.0)
                    spans = len(collector.received())
                    print(
                        f"  on:  {traced.done}/{n} in {traced.seconds:.2f} s = {traced.rate:.0f} jobs/s,"
                        f" {spans} spans received ({spans / n:.1f} per job)"
                    )
                r = ratio(max(on), max(off))
                print(f"  best on {max(on):.0f} vs off {max(off):.0f} jobs/s = {r:.2f}x")
                report.add(
                    f"{NAME} {backend} p={processes}",
                    "jobs/s tracing on vs off",
                    f"{max(on):.0f} vs {max(off):.0f} = {r:.2f}x",
                )
    finally:
        collector.close()
    return report


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
