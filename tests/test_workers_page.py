"""The workers page: one row per worker process from its heartbeats (queues, threads busy, the
jobs it runs now, memory, since), a process gone quiet shown silent."""

from __future__ import annotations

import json
from pathlib import Path

from app.extensions import queue
from app.services import workers as processes
from tests.fakes.processes import wait_until
from tests.helpers import submit


def beat(pid: int, *, jobs=(), ago: float = 0) -> processes.Process:
    process = processes.Process(
        id=f"host-a:{pid}", host="host-a", pid=pid, queues=["default", "email"], threads=8,
        jobs=list(jobs), rss_bytes=50 * 1048576, started_at="2026-01-01T00:00:00+00:00", interval=5.0,
    )  # fmt: skip
    processes.beat(process)
    if ago:
        process.last_heartbeat -= ago
        queue.redis.hset(processes.PROCESSES_KEY, process.id, json.dumps(process.__dict__))
    return process


def row(html: str, worker_id: str) -> str:
    return html[html.index(f'data-worker-id="{worker_id}"') :].split("</tr>")[0]


def test_heartbeats_are_rows_and_a_silent_process_is_shown_silent(app, viewer):
    job = {"id": "0f6c1a3e-0000-4000-8000-000000000001", "actor": "system_echo", "since": "2026-01-01T00:00:00+00:00"}
    beat(101, jobs=[job])
    beat(102, ago=16)  # three 5 s heartbeats missed
    html = viewer.get("/admin/workers").text
    alive, silent = row(html, "host-a:101"), row(html, "host-a:102")
    assert "alive" in alive and "1 / 8" in alive and "default, email" in alive and "50.0 MiB" in alive
    assert f'href="/admin/jobs/{job["id"]}"' in alive
    assert "silent" in silent and "0 / 8" in silent and 'class="silent"' in silent


def test_a_real_worker_reports_its_running_job_and_leaves_when_stopped(app, viewer, workers):
    proc = workers.start(["default"], threads=3)
    wait_until(lambda: processes.processes(), 30, 0.2, what="a heartbeat")
    (me,) = processes.processes()
    # The heartbeat is the worker's, a child of the `dramatiq` main process we started.
    assert int(Path(f"/proc/{me.pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == proc.proc.pid
    assert "default" in me.queues and "email" not in me.queues
    assert me.threads == 3 and me.rss_bytes and me.rss_bytes > 10 * 1048576 and not me.silent
    job_id = submit(payload={"message": "slow", "sleep_seconds": 12})
    wait_until(lambda: [j["id"] for p in processes.processes() for j in p.jobs] == [job_id], 20, 0.2, what="the job")
    assert f'href="/admin/jobs/{job_id}"' in row(viewer.get("/admin/workers").text, me.id)
    proc.stop(timeout=20)
    wait_until(lambda: processes.processes() == [], 20, 0.2, what="the worker to leave the list")


def test_a_scheduler_is_a_row_of_its_own_and_not_counted_as_a_worker(app, viewer, workers):
    proc = workers.start_scheduler()
    wait_until(lambda: processes.processes(), 30, 0.2, what="the scheduler's heartbeat")
    (me,) = processes.processes()
    assert me.role == "scheduler" and me.pid == proc.proc.pid and not me.silent
    html = row(viewer.get("/admin/workers").text, me.id)
    assert "scheduler" in html and "alive" in html
    assert processes.alive() == 0 and processes.alive("scheduler") == 1
    proc.stop(timeout=20)
    wait_until(lambda: processes.processes() == [], 20, 0.2, what="the scheduler to leave the list")
