"""MkDocs hooks (mkdocs.yml): pages and files the build makes from the code, so they cannot drift.

- `openapi.json`: the API's OpenAPI document, built by the app itself (`app.api.openapi.build_spec`,
  the same function `GET /api/v1/openapi.json` serves), read by the Redoc page.
- `<!-- bench-results -->` in a page: replaced by `bench/RESULTS.md`, the figures `make bench` wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_MARKER = "<!-- bench-results -->"

#: Run in a child process: the app's import-time state (metrics, Sentry, extensions) stays out of
#: `mkdocs serve`, which calls the hooks at every rebuild.
_SPEC_SCRIPT = """
import json, tempfile
from app import create_app
from app.config import TestConfig
from app.api.openapi import build_spec
database = "sqlite:///" + tempfile.mkdtemp() + "/unused.db"  # never connected to
app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database, REDIS_URL="redis://127.0.0.1:1/0"))
with app.app_context():
    print(json.dumps(build_spec(), indent=2, sort_keys=True))
"""


def openapi_document() -> str:
    """The OpenAPI document of the app in this checkout, as JSON text."""
    out = subprocess.run(
        [sys.executable, "-c", _SPEC_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"could not build the OpenAPI document:\n{out.stderr[-4000:]}")
    json.loads(out.stdout)  # a document, not a stray print
    return out.stdout


def bench_results() -> str:
    """bench/RESULTS.md without its title, its headings one level down (it sits under a page's)."""
    lines = (ROOT / "bench" / "RESULTS.md").read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("#" + line if line.startswith("#") else line for line in lines) + "\n"


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "openapi.json", content=openapi_document()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if BENCH_MARKER in markdown:
        markdown = markdown.replace(BENCH_MARKER, bench_results())
    return markdown
