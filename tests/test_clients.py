"""The client libraries, each run by its own toolchain against a live Opsdeck
(clients/SCENARIOS.md): the suites' unit tests on clients/test-vectors.json, then the scenarios.
A suite that skipped anything fails here: a skip would hide a scenario that never ran."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.processes import ROOT
from tests.fakes.stack import LiveStack

pytestmark = pytest.mark.slow
CLIENTS = ROOT / "clients"


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    live = LiveStack().start()
    yield live
    live.close()


def run_suite(stack: LiveStack, name: str, command: list[str], cwd: Path, timeout: float = 600) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPSDECK_")},
        **stack.client_env(name),
        "OPSDECK_CLIENT_INTEGRATION": "1",
    }
    out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    said = out.stdout + out.stderr
    assert out.returncode == 0, f"{name} suite failed:\n{said[-12000:]}\n{stack.logs()}"
    return said


def test_python_client_and_cli(stack: LiveStack) -> None:
    said = run_suite(
        stack, "python", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], CLIENTS / "python"
    )
    summary = said.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary and "failed" not in summary, summary


def need(tool: str) -> None:
    """make test installs the clients' toolchains: there (CI) a missing one fails; elsewhere skipped."""
    if not shutil.which(tool):
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed (make test installs it)")
        pytest.skip(f"{tool} is not installed (make test installs it)")


def test_typescript_client(stack: LiveStack) -> None:
    need("npm")
    said = run_suite(stack, "typescript", ["npm", "test", "--silent"], CLIENTS / "typescript")
    assert re.search(r"^# pass [1-9]", said, re.M), said[-3000:]
    for counted in ("fail", "cancelled", "skipped", "todo"):  # node's TAP summary
        assert re.search(rf"^# {counted} 0$", said, re.M), said[-3000:]


def test_php_client(stack: LiveStack) -> None:
    need("phpunit")
    said = run_suite(stack, "php", ["phpunit", "--colors=never"], CLIENTS / "php")
    assert re.search(r"^OK \(\d+ tests?, \d+ assertions?\)$", said, re.M), said[-3000:]
