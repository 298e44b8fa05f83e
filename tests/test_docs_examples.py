"""The README's and the docs' shell examples, run against a live Opsdeck (tests/fakes/stack.py):
each marked block (`<!-- example: NAME -->`) in bash, with OPSDECK_URL, OPSDECK_KEY_ID and
OPSDECK_SECRET of a fresh tenant, its output checked by the check of the same name. How the
examples are marked: docs/development.md, "The docs"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.docs_examples import examples, script
from tests.fakes.stack import LiveStack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("bash", "curl", "openssl", "jq")),
        reason="the examples need bash, curl, openssl and jq",
    ),
]


@dataclass
class Live:
    stack: LiveStack
    tenant: dict[str, str]


@dataclass
class Check:
    verify: Callable[[list[str], Live], None]
    #: Run after the example, in the same shell (to show what it set).
    epilogue: str = ""
    #: Give the example the tenant's key and secret (the credentials examples read them from a file).
    with_key: bool = True


def lines(out: list[str]) -> list[Any]:
    return [json.loads(line) for line in out]


def credentials(out: list[str], live: Live) -> None:
    assert out == [live.stack.url, live.tenant["key_id"], live.tenant["secret"]]


def echo_job(out: list[str], live: Live) -> None:
    (job,) = lines(out[-1:])
    assert job["type"] == "system.echo" and job["status"] in {"pending", "queued", "running", "succeeded"}, job


def signed_get(out: list[str], live: Live) -> None:
    assert isinstance(json.loads("".join(out))["data"], list)


def first_job_status(out: list[str], live: Live) -> None:
    assert lines(out) == [{"status": "succeeded", "result": {"message": "hello"}, "attempts": 1}]


def queued_mail(out: list[str], live: Live) -> None:
    mail = json.loads("".join(out))
    assert mail["status"] == "queued" and mail["to"] == "ana@example.com", mail


def list_jobs(out: list[str], live: Live) -> None:
    pages = lines(out)
    assert 1 <= len(pages) <= 2 and all(isinstance(p, list) and len(p) <= 2 for p in pages), pages


def batch(out: list[str], live: Live) -> None:
    data = json.loads("".join(out))["data"]
    assert [j["payload"]["message"] for j in data] == ["a", "b"] and data[0]["idempotency_key"] == "order-1"


def email_template(out: list[str], live: Live) -> None:
    one, many = (json.loads(chunk) for chunk in "\n".join(out).replace("}\n{", "}\x00{").split("\x00"))
    assert one["status"] == "queued" and one["digest_key"] == "kyc", one
    assert [m["to"] for m in many["data"]] == ["ben@example.com", "eve@example.com"], many


def webhook_endpoint(out: list[str], live: Live) -> None:
    secret, event = out
    assert secret.startswith("whsec_"), secret
    assert json.loads(event)["client_id"] == "inv-1042-paid" and json.loads(event)["type"] == "invoice.paid"


def upload_scan(out: list[str], live: Live) -> None:
    assert lines(out) == [{"status": "clean", "name": "payouts.csv", "size": 21}]


def daraja_callback(out: list[str], live: Live) -> None:
    payment, ack = lines(out)
    assert payment == {"status": "expected", "phone": "+254712345678"}
    assert ack == {"ResultCode": 0, "ResultDesc": "Accepted"}


def cli_first_job(out: list[str], live: Live) -> None:
    job = json.loads("\n".join(out[: out.index("}") + 1]))
    assert job["status"] == "succeeded" and job["result"] == {"message": "from the command line"}, job
    assert any(job["id"] in line for line in out[out.index("}") + 1 :])  # the table lists it


def readyz_and_metrics(out: list[str], live: Live) -> None:
    ready, counted = out
    assert json.loads(ready)["database"] == "ok" and json.loads(ready)["status"] in {"ok", "degraded"}, ready
    assert int(counted) >= 1


SHOW_KEY = 'printf "%s\\n" "$OPSDECK_URL" "$OPSDECK_KEY_ID" "$OPSDECK_SECRET"'

CHECKS: dict[str, Check] = {
    "readme-credentials": Check(credentials, epilogue=SHOW_KEY, with_key=False),
    "readme-first-job": Check(echo_job),
    "credentials": Check(credentials, epilogue=SHOW_KEY, with_key=False),
    "opsdeck-api": Check(signed_get, epilogue="opsdeck_api GET '/api/v1/jobs?limit=1'"),
    "first-job-status": Check(first_job_status),
    "first-email": Check(queued_mail),
    "curl": Check(echo_job),
    "list-jobs": Check(list_jobs),
    "batch": Check(batch),
    "email-template": Check(email_template),
    "webhook-endpoint": Check(webhook_endpoint),
    "upload-scan": Check(upload_scan),
    "daraja-callback": Check(daraja_callback),
    "readyz-and-metrics": Check(readyz_and_metrics),
    "cli-first-job": Check(cli_first_job),
}


def test_every_marked_example_has_a_check_and_every_check_an_example() -> None:
    """A marked block nobody runs, or a check whose block is gone, fails here."""
    assert set(examples()) == set(CHECKS)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    stack = LiveStack().start()
    try:
        yield Live(stack, stack.tenant("docs"))
    finally:
        stack.close()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_against_a_live_opsdeck(name: str, live: Live, tmp_path: Path) -> None:
    check = CHECKS[name]
    # The dev stack's credentials file, for the examples that read it.
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "demo-credentials.json").write_text(json.dumps({"tenant": live.tenant}))
    # The venv's bin first, as after `source .venv/bin/activate`: the `opsdeck` command.
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    env["OPSDECK_URL"] = live.stack.url
    if check.with_key:
        env |= {"OPSDECK_KEY_ID": live.tenant["key_id"], "OPSDECK_SECRET": live.tenant["secret"]}
    code = script(name) + check.epilogue + "\n"
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, f"example {name} failed:\n{out.stdout}\n{out.stderr}\n{live.stack.logs()[-4000:]}"
    said = [line for line in out.stdout.splitlines() if line.strip()]
    check.verify(said, live)
