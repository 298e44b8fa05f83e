"""Admin pages with BENCH_ADMIN_JOBS (1,000,000) jobs in the ledger: p50 and p95 of rendering
the dashboard, the jobs list (first and a later keyset page, status, type and time filters,
a text search), Dead letters, a job's detail, the workers and schedules pages, against
/healthz in the same app (the baseline).

    python -m bench.admin_pages

In-process (Flask test client), so the figures are the server's own work, not the network's.
"""

from __future__ import annotations

import random
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import text

from bench.common import Report, Stack, database, env_int, per_backend

NAME = "P3 admin"
PASSWORD = "bench password 1234"
STATUSES = ["succeeded"] * 90 + ["dead"] * 4 + ["queued"] * 3 + ["retrying", "running", "cancelled"]


def _seed(count: int) -> None:
    from sqlalchemy import insert

    from app.extensions import db
    from app.models import Job

    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for i in range(count):
        status = random.choice(STATUSES)
        created = now - timedelta(seconds=count - i)
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "type": "system.echo",
                "queue": random.choice(["default", "default_low"]),
                "priority": "normal",
                "status": status,
                "payload": {"message": str(i)},
                "attempts": 1,
                "max_attempts": 3,
                "created_at": created,
                "updated_at": created,
                "next_attempt_at": created,
                "error": "EchoFailure: x" if status == "dead" else None,
            }
        )
        if len(rows) == 5000:
            db.session.execute(insert(Job), rows)
            db.session.commit()
            rows = []
    if rows:
        db.session.execute(insert(Job), rows)
        db.session.commit()


def _timings_ms(client: Any, url: str, runs: int = 20) -> tuple[float, float]:
    """(p50, p95) of `runs` renders, after one warm-up."""
    client.get(url)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), statistics.quantiles(times, n=20)[-1]


def bench_backend(st: Stack, backend: str, report: Report) -> None:
    from app import create_app
    from app.config import TestConfig, _normalise_db_url
    from app.extensions import db
    from app.services import users

    count = env_int("BENCH_ADMIN_JOBS", 1_000_000)
    with database(backend, st.tmp) as url:
        app = create_app(
            TestConfig(
                SQLALCHEMY_DATABASE_URI=_normalise_db_url(url),
                REDIS_URL=st.redis.url,
                OPSDECK_ENCRYPTION_KEYS=[Fernet.generate_key().decode()],
            )
        )
        with app.app_context():
            db.create_all()
            users.create_user("bench@example.com", PASSWORD, "admin")
            began = time.perf_counter()
            _seed(count)
            # Statistics and a visibility map as a live database has them (autovacuum's VACUUM
            # ANALYZE): without them the planner guesses, and no count reads an index alone.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE jobs" if db.engine.dialect.name == "postgresql" else "ANALYZE"))
            print(f"\n[{NAME} / {backend}] {count} jobs seeded in {time.perf_counter() - began:.1f} s")
        client = app.test_client()
        page = client.get("/admin/login").text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        client.post("/admin/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": token})
        first = client.get("/admin/jobs").text
        older = re.search(r'href="([^"]*cursor=[^"]+)"', first).group(1).replace("&amp;", "&")
        job_id = re.search(r'data-job-id="([^"]+)"', first).group(1)
        baseline, _ = _timings_ms(client, "/healthz")
        hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        pages = {
            "dashboard": "/admin/",
            "jobs, first page": "/admin/jobs",
            "jobs, older page": older,
            "jobs, status=retrying": "/admin/jobs?status=retrying",
            "jobs, type filter": "/admin/jobs?type=system.echo&queue=default_low",
            "jobs, last hour": f"/admin/jobs?created_from={hour_ago}",
            "jobs, text search": "/admin/jobs?text=EchoFailure",
            "dead letters": "/admin/dead",
            "job detail": f"/admin/jobs/{job_id}",
            "workers": "/admin/workers",
            "schedules": "/admin/schedules",
        }
        worst, worst_label = 0.0, ""
        for label, url in pages.items():
            p50, p95 = _timings_ms(client, url)
            if p95 > worst:
                worst, worst_label = p95, label
            print(
                f"  {label:<24} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  ({p50 / baseline:.0f}x /healthz {baseline:.2f} ms)"
            )
        report.add(
            f"{NAME} {backend}",
            f"slowest page's p95, {count:,} jobs",
            f"{worst:.1f} ms ({worst_label})",
            "p95 <= 100 ms",
            worst <= 100,
        )
        with app.app_context():
            db.engine.dispose()


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    return per_backend(bench_backend, report, st)


if __name__ == "__main__":
    from bench.common import exit_on_sigterm, print_table

    exit_on_sigterm()
    print_table(run().rows)
