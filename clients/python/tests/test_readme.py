"""The README's examples that talk to Opsdeck, run as written against the live server: each
fenced block after a `<!-- run -->` marker (Python in a fresh interpreter, shell in bash with
the `opsdeck` command on PATH). The Flask receiving route (`<!-- run: flask -->`) is given a
delivery signed as Opsdeck signs, and one signed with another secret."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from opsdeck_client.webhooks import sign
from tests.conftest import README, Live

BLOCK = re.compile(r"<!-- run(?:: (?P<kind>[\w-]+))? -->\s*```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)


def blocks(kind: str | None = None) -> list[tuple[str, str]]:
    found = [(m["lang"], m["code"]) for m in BLOCK.finditer(README.read_text()) if m["kind"] == kind]
    assert found, f"README.md has no <!-- run{': ' + kind if kind else ''} --> blocks"
    return found


@pytest.mark.integration
@pytest.mark.parametrize("n", range(len(blocks())))
def test_readme_example(n: int, live: Live, opsdeck_command: str, tmp_path: Path) -> None:
    lang, code = blocks()[n]
    env = {**live.env(), "PATH": f"{Path(opsdeck_command).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if lang == "python":
        command = [sys.executable, "-c", code]
    else:
        assert lang == "sh", lang
        command = ["bash", "-euo", "pipefail", "-c", code]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (
        f"README block {n} ({lang}) failed:\n{code}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    )


def test_readme_flask_route_verifies_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("flask")
    ((lang, code),) = blocks("flask")
    secret = "whsec_" + base64.b64encode(b"readme-endpoint-secret-0123").decode()
    monkeypatch.setenv("OPSDECK_WEBHOOK_SECRET", secret)
    scope: dict[str, Any] = {"__name__": "readme_webhooks"}
    exec(compile(code, "README.md", "exec"), scope)
    http = scope["app"].test_client()
    body = b'{"type":"order.paid","timestamp":"2026-01-01T00:00:00Z","data":{"order":7}}'
    now = int(time.time())

    def post(with_secret: str) -> int:
        headers = {
            "webhook-id": "evt_1",
            "webhook-timestamp": str(now),
            "webhook-signature": sign(with_secret, "evt_1", now, body),
        }
        return int(http.post("/hooks/opsdeck", data=body, headers=headers).status_code)

    assert post(secret) == 204
    assert post("whsec_" + base64.b64encode(b"someone-else").decode()) == 400
