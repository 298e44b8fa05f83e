"""The `opsdeck` console script as a user runs it, against the live server."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Live

pytestmark = pytest.mark.integration


def opsdeck(
    command: str, live: Live, *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    run = subprocess.run([command, *args], env=live.env(), cwd=cwd, capture_output=True, timeout=300)
    if check:
        assert run.returncode == 0, f"opsdeck {' '.join(args)} → {run.returncode}\n{run.stderr.decode()}"
    return run


def answer(run: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(run.stdout)


def test_jobs_submit_get_wait_and_list(opsdeck_command: str, live: Live) -> None:
    message = f"cli {uuid.uuid4().hex[:8]}"
    job = answer(
        opsdeck(opsdeck_command, live, "jobs", "submit", "system.echo", "--payload", json.dumps({"message": message}))
    )
    assert job["status"] in {"pending", "queued"} and job["replayed"] is False
    assert answer(opsdeck(opsdeck_command, live, "jobs", "get", job["id"]))["id"] == job["id"]
    done = answer(opsdeck(opsdeck_command, live, "jobs", "wait", job["id"], "--timeout", "60"))
    assert done["status"] == "succeeded" and done["result"] == {"message": message}
    table = opsdeck(opsdeck_command, live, "--table", "jobs", "list", "--limit", "3").stdout.decode().splitlines()
    assert table[0].split()[0] == "id" and 3 <= len(table) <= 2 + 3  # a header, a rule, up to 3 rows
    assert job["id"] in [row.split()[0] for row in table[2:]]


def test_a_failed_job_waited_for_exits_1(opsdeck_command: str, live: Live) -> None:
    run = opsdeck(
        opsdeck_command,
        live,
        "jobs",
        "submit",
        "system.echo",
        "--payload",
        '{"fail": true}',
        "--max-attempts",
        "1",
        "--wait",
        check=False,
    )
    assert run.returncode == 1 and answer(run)["status"] == "dead"


def test_cancel_and_retry(opsdeck_command: str, live: Live) -> None:
    job = answer(opsdeck(opsdeck_command, live, "jobs", "submit", "system.echo", "--delay", "3600"))
    assert answer(opsdeck(opsdeck_command, live, "jobs", "cancel", job["id"]))["status"] == "cancelled"
    assert answer(opsdeck(opsdeck_command, live, "jobs", "retry", job["id"]))["status"] in {"pending", "queued"}


def test_scans_upload_wait_and_download(opsdeck_command: str, live: Live, tmp_path: Path) -> None:
    original = tmp_path / "notes.txt"
    original.write_bytes(b"meeting notes\n" + uuid.uuid4().hex.encode())
    scan = answer(opsdeck(opsdeck_command, live, "scans", "upload", str(original), "--wait"))
    assert scan["status"] == "clean"
    opsdeck(opsdeck_command, live, "scans", "download", scan["id"], "-o", str(tmp_path / "copy.txt"))
    assert (tmp_path / "copy.txt").read_bytes() == original.read_bytes()
    to_stdout = opsdeck(opsdeck_command, live, "scans", "download", scan["id"])
    assert to_stdout.stdout == original.read_bytes()
    raw = opsdeck(
        opsdeck_command, live, "request", "GET", f"/api/v1/scans/{scan['id']}/file", "-o", str(tmp_path / "raw")
    )
    assert raw.stdout == b"" and (tmp_path / "raw").read_bytes() == original.read_bytes()


def test_an_infected_upload_waited_for_exits_1(opsdeck_command: str, live: Live, tmp_path: Path) -> None:
    from tests.test_scenarios import EICAR

    (tmp_path / "eicar.txt").write_bytes(EICAR)
    run = opsdeck(opsdeck_command, live, "scans", "upload", str(tmp_path / "eicar.txt"), "--wait", check=False)
    assert run.returncode == 1 and answer(run)["status"] == "infected"


def test_events_publish_and_get(opsdeck_command: str, live: Live) -> None:
    own = f"order-{uuid.uuid4().hex[:8]}"
    event = answer(
        opsdeck(opsdeck_command, live, "events", "publish", "order.paid", "--data", '{"order": 42}', "--id", own)
    )
    assert event["payload"] == {"order": 42} and event["client_id"] == own and event["replayed"] is False
    again = answer(
        opsdeck(opsdeck_command, live, "events", "publish", "order.paid", "--data", '{"order": 42}', "--id", own)
    )
    assert again["id"] == event["id"] and again["replayed"] is True
    assert answer(opsdeck(opsdeck_command, live, "events", "get", own))["id"] == event["id"]


def test_request_any_call(opsdeck_command: str, live: Live) -> None:
    document = answer(opsdeck(opsdeck_command, live, "request", "GET", "/api/v1/openapi.json"))
    assert document["openapi"].startswith("3.")
    body = '{"type": "system.echo", "payload": {"message": "raw"}}'
    run = opsdeck(
        opsdeck_command, live, "request", "post", "/api/v1/jobs", body, "-i", "--idempotency-key", uuid.uuid4().hex
    )
    assert answer(run)["payload"]["message"] == "raw" and b"HTTP 202" in run.stderr


def test_a_422_prints_the_problem_and_exits_non_zero(opsdeck_command: str, live: Live) -> None:
    run = opsdeck(opsdeck_command, live, "jobs", "submit", "no.such.type", check=False)
    assert run.returncode == 1 and run.stdout == b""
    problem = json.loads(run.stderr)
    assert problem["status"] == 422 and "type" in problem["errors"] and problem["title"]
    run = opsdeck(opsdeck_command, live, "request", "GET", "/api/v1/jobs/no-such-job", check=False)
    assert run.returncode == 1 and json.loads(run.stderr)["status"] == 404
