"""bench/RESULTS.md: what `make bench` measured, with the machine it ran on."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Row

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _version(*command: str) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({type(err).__name__})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "unknown"


def _postgres() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        return "not measured (BENCH_DATABASE_URL unset)"
    import psycopg

    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])
    except psycopg.Error as err:
        return f"unreachable ({type(err).__name__})"


def machine() -> dict[str, str]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "load average (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis": _version("redis-server", "--version"),
        "postgresql": _postgres(),
        "clamd": _version("clamd", "--version"),
        "kernel": platform.release(),
    }


def write(rows: Sequence[Row], seconds: float, path: Path = RESULTS) -> Path:
    """Each figure with its baseline and ratio (in the value), its goal and whether it was met."""
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` in {seconds:.0f} s. Each value holds the "
        "figure, the baseline measured in the same run and their ratio where there is one.",
        "",
    ]
    lines += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in machine().items()] + [""]
    lines += ["| bench | metric | value | goal | met |", "|---|---|---|---|---|"]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.bench} | {r.metric} | {r.value} | {r.goal} | {met} |")
    path.write_text("\n".join(lines) + "\n")
    return path
