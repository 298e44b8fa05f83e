"""P6: rows/s deleting the oldest 500,000 of 1,000,000 succeeded jobs on PostgreSQL through a
retention run (batches of 5,000, a commit each), against one unbatched DELETE of the same rows
in the same run, and the longest single statement of the run.

    BENCH_DATABASE_URL=postgresql://… python -m bench.retention

BENCH_RETENTION_ROWS (default 1,000,000) rows are written with generate_series, finish times
spread over two days so that the older half is past the 1-day `jobs_succeeded` policy. The
table is filled twice (TRUNCATE between), VACUUM ANALYZEd each time.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import event, text

from bench.common import Report, Stack, database, env_int, exit_on_sigterm, migrate, print_table, ratio, stack
from bench.throughput import _app

NAME = "P6 retention"
GOAL_RATIO = 0.25
GOAL_STATEMENT_MS = 50.0

FILL = """
INSERT INTO jobs (id, type, queue, priority, status, payload, attempts, max_attempts, next_attempt_at,
                  created_at, updated_at, finished_at)
SELECT md5(i::text || :salt), 'system.echo', 'default', 'normal', 'succeeded', '{}'::jsonb, 1, 3,
       now() - i * (interval '1 second' * :step), now() - i * (interval '1 second' * :step),
       now() - i * (interval '1 second' * :step), now() - i * (interval '1 second' * :step)
FROM generate_series(1, :n) AS i
"""


def _fill(conn_url: str, n: int, salt: str) -> None:
    import psycopg

    with psycopg.connect(conn_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("TRUNCATE jobs")
        sql = FILL.replace(":salt", "%(salt)s").replace(":step", "%(step)s").replace(":n", "%(n)s")
        conn.execute(sql, {"salt": salt, "step": 2 * 86400 / n, "n": n})
        conn.execute("VACUUM ANALYZE jobs")


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    report = report if report is not None else Report()
    if not os.environ.get("BENCH_DATABASE_URL"):
        print(f"\n[{NAME}] skipped: it measures PostgreSQL (set BENCH_DATABASE_URL)")
        report.add(NAME, "rows/s vs one DELETE", "skipped (no BENCH_DATABASE_URL)")
        return report
    if st is None:
        with stack() as own:
            return run(report, own)
    n = env_int("BENCH_RETENTION_ROWS", 1_000_000)
    with database("postgres", st.tmp) as url:
        env = st.env(url)
        migrate(env)
        with _app(env) as app:
            from app.extensions import db
            from app.services import retention

            db_url = app.config["SQLALCHEMY_DATABASE_URI"]
            _fill(db_url, n, "a")
            cutoff_sql = "DELETE FROM jobs WHERE status = 'succeeded' AND finished_at < now() - interval '1 day'"
            began = time.perf_counter()
            with db.engine.begin() as conn:
                baseline_rows = conn.execute(text(cutoff_sql)).rowcount
            baseline = baseline_rows / (time.perf_counter() - began)

            _fill(db_url, n, "b")
            longest = [0.0]
            started: dict[int, float] = {}

            def before(conn, cursor, statement, parameters, context, executemany):
                started[id(cursor)] = time.perf_counter()

            def after(conn, cursor, statement, parameters, context, executemany):
                took = (time.perf_counter() - started.pop(id(cursor), time.perf_counter())) * 1000
                longest[0] = max(longest[0], took)

            event.listen(db.engine, "before_cursor_execute", before)
            event.listen(db.engine, "after_cursor_execute", after)
            try:
                record = retention.run(kinds=["jobs_succeeded"], triggered_by="bench")
            finally:
                event.remove(db.engine, "before_cursor_execute", before)
                event.remove(db.engine, "after_cursor_execute", after)
            deleted = record.counts.get("jobs_succeeded", 0)
            rate = deleted / (record.duration_ms / 1000) if record.duration_ms else 0.0
            r = ratio(rate, baseline)
            print(f"\n[{NAME}] {n} jobs, oldest {baseline_rows} past the policy")
            print(f"  one unbatched DELETE: {baseline:,.0f} rows/s")
            print(
                f"  retention run ({record.status}): {deleted} rows in {record.duration_ms} ms = {rate:,.0f} rows/s "
                f"({r:.2f}x); longest statement {longest[0]:.1f} ms"
            )
            met_rate, met_stmt = r >= GOAL_RATIO, longest[0] <= GOAL_STATEMENT_MS
            print(
                f"  goals: >= {GOAL_RATIO:g}x {'met' if met_rate else 'NOT met'}; "
                f"no statement over {GOAL_STATEMENT_MS:g} ms {'met' if met_stmt else 'NOT met'}"
            )
            report.add(
                NAME,
                "rows/s vs one DELETE",
                f"{rate:,.0f} vs {baseline:,.0f} = {r:.2f}x",
                f">= {GOAL_RATIO:g}x",
                met_rate,
            )
            report.add(NAME, "longest statement", f"{longest[0]:.1f} ms", f"<= {GOAL_STATEMENT_MS:g} ms", met_stmt)
    return report


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
