"""Schemathesis against the running API (gunicorn, the production web command): every operation
in /api/v1/openapi.json, every request signed, every phase and check, a fixed seed and a bounded
number of cases (tests/schemathesis.toml). No 5xx, no status code, media type or body the document
does not declare, no schema-valid request refused or invalid one taken beyond the rules listed
there; and an upload sent again answered as the first time, in the same media type (the check in
tests/schemathesis_hooks.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.fakes.processes import BIN, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.fuzz]

CONFIG = ROOT / "tests" / "schemathesis.toml"


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only, to keep the run near a minute. What only PostgreSQL refuses (U+0000 in text)
    was found by hand against it and is pinned in tests/test_api_validation.py, on both."""
    return f"sqlite:///{tmp_path / 'opsdeck.db'}"


def test_api_conforms_to_its_openapi_document(app, tenant, workers, tmp_path):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    url = workers.start_web()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPSDECK_KEY_ID": tenant.key_id, "OPSDECK_SECRET": tenant.secret}
    args = [str(BIN / "st"), "--config-file", str(CONFIG), "run", f"{url}/api/v1/openapi.json", "--no-color"]
    run = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"{report[-50_000:]}\n{workers.logs()}"
    # Every operation was tested and every phase ran: a run that skipped them would prove nothing.
    summary = report[report.index("SUMMARY") :]
    assert f"Selected: {operations}/{operations}" in summary and f"Tested: {operations}" in summary, summary
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, summary
