"""The docs against the code, both ways: every setting, `flask` command, API endpoint, job type
and live-feed event the code has is documented, and everything the docs name exists. Plus the
examples' markers, and the site itself: it builds strictly, loads nothing from another host,
and serves the app's own OpenAPI document."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import config
from app.config import BY_NAME
from tests.docs_examples import SOURCES, all_blocks
from tests.fakes.processes import ROOT

DOCS = ROOT / "docs"


def text() -> str:
    """The README, the changelog and every page, as one text."""
    return "\n".join(path.read_text() for path in SOURCES)


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[Flask]:
    """The app, for its URL map and commands (its database is never connected to)."""
    from app import create_app

    database = f"sqlite:///{tmp_path_factory.mktemp('docs-app')}/unused.db"
    yield create_app(config.TestConfig(SQLALCHEMY_DATABASE_URI=database, REDIS_URL="redis://127.0.0.1:1/0"))


# -- settings ---------------------------------------------------------------------------------
#: Upper-case names the docs use that are not settings, and why.
NOT_SETTINGS = {
    "OPSDECK_URL": "the examples' and clients' base URL",
    "OPSDECK_KEY_ID": "the examples' and clients' key id",
    "OPSDECK_SECRET": "the examples' and clients' secret",
    "FLASK_APP": "Flask's own, set by the Makefile",
    "BENCH_DATABASE_URL": "bench/ only",
    "RECORD_EVERY": "a constant of the email recorder, named by the fault suite",
    "SCM_RIGHTS": "a socket option",
    **dict.fromkeys(("SCAN_STORAGE_DIR", "SCAN_QUARANTINE_DIR"), "replaced (app/config/'s REPLACED; the changelog)"),
    **dict.fromkeys(
        (
            "OTEL_SERVICE_NAME",
            "OTEL_RESOURCE_ATTRIBUTES",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_PYTHON_FLASK_EXCLUDED_URLS",
        ),
        "the OpenTelemetry SDK's own (docs/tracing.md)",
    ),
}
_UPPER = re.compile(r"`\$?\{?([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\}?(?:=[^`]*)?`")


def test_every_setting_the_docs_name_exists():
    named = set(_UPPER.findall(text()))
    assert named - set(BY_NAME) - set(NOT_SETTINGS) == set(), "not settings (app/config/), nor in NOT_SETTINGS"
    assert set(NOT_SETTINGS) <= named, "NOT_SETTINGS names something the docs no longer use"


def test_every_setting_is_documented():
    said = text()
    assert [name for name in BY_NAME if f"`{name}`" not in said] == []


# -- flask commands ---------------------------------------------------------------------------
_FLASK = re.compile(r"\bflask (?:--app \S+ )?([a-z][a-z-]*) ([a-z][a-z-]*)\b")


def commands(app: Flask) -> dict[str, set[str]]:
    return {name: set(getattr(group, "commands", {})) for name, group in app.cli.commands.items()}


def test_every_flask_command_the_docs_name_exists(app):
    known = commands(app)
    named = set(_FLASK.findall(text()))
    assert {f"{g} {c}" for g, c in named if c not in known.get(g, set())} == set()


def test_every_opsdeck_command_is_documented(app):
    """Opsdeck's own groups (app/cli.py) completely; of Flask-Migrate's `db`, the upgrade."""
    named = set(_FLASK.findall(text()))
    ours = {(g, c) for g, cmds in commands(app).items() if g != "db" for c in cmds} | {("db", "upgrade")}
    assert ours - named == set()


# -- API endpoints ----------------------------------------------------------------------------
_ENDPOINT = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/api/v1/[A-Za-z0-9_./{}<>-]*[A-Za-z0-9_}>/-])")


def documented_endpoints() -> set[tuple[str, str]]:
    return {(m, re.sub(r"\{[^}]*\}|<[^>]*>", "{}", p).rstrip("/")) for m, p in _ENDPOINT.findall(text())}


def code_endpoints(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                found.add((method, re.sub(r"<[^>]*>", "{}", rule.rule)))
    return found


def _matches(documented: str, route: str) -> bool:
    """A route's `{}` segment stands for any one segment (`…/{}/extend` documents `…/<action>`)."""
    doc, code = documented.split("/"), route.split("/")
    return len(doc) == len(code) and all(c == "{}" or c == d for d, c in zip(doc, code, strict=True))


def test_every_endpoint_the_docs_name_exists(app):
    routes = code_endpoints(app)
    unknown = {(m, p) for m, p in documented_endpoints() if not any(m == rm and _matches(p, rp) for rm, rp in routes)}
    assert unknown == set()


def test_every_endpoint_is_documented(app):
    documented = documented_endpoints()
    missing = {(m, p) for m, p in code_endpoints(app) if not any(m == dm and _matches(dp, p) for dm, dp in documented)}
    assert missing == set()


# -- job types --------------------------------------------------------------------------------
def documented_job_types() -> set[str]:
    page = (DOCS / "api.md").read_text()
    table = page[page.index("| type | public | queue |") :].split("\n\n", 1)[0]
    return {t for row in table.splitlines()[2:] for t in re.findall(r"`([a-z_]+\.[a-z_]+)`", row.split("|")[1])}


def test_the_job_types_table_lists_every_job_type_and_no_other(app):
    from app import jobtypes

    assert documented_job_types() == set(jobtypes.load())


# -- live-feed events -------------------------------------------------------------------------
#: Event types built with an f-string, by their literal prefix: the types each can make.
DYNAMIC_EVENTS = {
    "job.": {"job.failed", "job.dead"},  # workers/middleware.py: dead or failed
    "router.": {"router.online", "router.offline"},  # a router check's new status
    "payment.": {"payment.failed", "payment.held"},  # a callback's outcome other than processing
}
_EVENT = re.compile(r"^[a-z_]+\.[a-z_]+$")


def _event_of(node: ast.expr, assigned: dict[str, ast.expr]) -> tuple[str | None, str | None]:
    """(literal type, f-string prefix) of an event-type expression, following a local name (and
    a service's `events.service_event("…")`, which returns its argument)."""
    if isinstance(node, ast.Name) and node.id in assigned:
        node = assigned[node.id]
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "service_event" and node.args:
        node = node.args[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _EVENT.match(node.value):
        return node.value, None
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return None, str(node.values[0].value)
    return None, None


def published_events() -> tuple[set[str], set[str]]:
    """Types passed to live.publish / publish_after_commit, or put in an outcome's `live` list as
    the first of a (type, data) pair; and the prefixes of those made with an f-string."""
    types: set[str] = set()
    prefixes: set[str] = set()
    for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        if path.name == "live.py":
            continue  # the publisher itself; jobs.throughput is published there (below)
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
                continue
            assigned = {
                target.id: node.value
                for node in ast.walk(func)
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            candidates: list[ast.expr] = []
            pairs: list[ast.expr] = []  # lists or tuples of (type, data) pairs
            for node in ast.walk(func):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in {"publish", "publish_after_commit"} and node.args:
                    candidates.append(node.args[0])
                elif name == "_publish" and node.args:  # workers/provisioning.py: a list of pairs
                    pairs.append(node.args[0])
                elif name == "append" and getattr(node.func.value, "attr", "") == "live" and node.args:
                    pairs.append(ast.List(elts=[node.args[0]]))
                elif name == "Handled" and len(node.args) >= 3:  # payments: Handled(outcome, id, live)
                    pairs.append(node.args[2])
                pairs += [k.value for k in node.keywords if k.arg == "live"]
            for pair_list in pairs:
                for pair in getattr(pair_list, "elts", []):
                    if isinstance(pair, ast.Tuple) and len(pair.elts) == 2:
                        candidates.append(pair.elts[0])
            for candidate in candidates:
                literal, prefix = _event_of(candidate, assigned)
                if literal:
                    types.add(literal)
                if prefix and _EVENT.match(prefix + "x"):
                    prefixes.add(prefix)
    live = (ROOT / "app" / "live.py").read_text()
    types |= set(re.findall(r'publish\("([a-z_]+\.[a-z_]+)"', live))
    return types, prefixes


def documented_events() -> set[str]:
    page = (DOCS / "live-feed.md").read_text()
    table = page[page.index("<!-- live-events") :].split("\n\n", 2)[1]
    return {t for row in table.splitlines()[2:] for t in re.findall(r"`([a-z_]+\.[a-z_]+)`", row.split("|")[1])}


def test_the_feed_table_lists_every_event_type_and_no_other():
    types, prefixes = published_events()
    assert prefixes <= set(DYNAMIC_EVENTS), "an event type made with a new f-string: add it to DYNAMIC_EVENTS"
    assert len(types) > 10  # the search finds what it looks for
    expected = types | {t for prefix in prefixes for t in DYNAMIC_EVENTS[prefix]}
    assert documented_events() == expected


# -- examples ---------------------------------------------------------------------------------
def test_every_shell_block_that_talks_to_opsdeck_is_a_marked_example():
    unmarked = [b.where for b in all_blocks() if b.talks_to_opsdeck and not b.name]
    assert unmarked == [], "mark them <!-- example: NAME --> and give them a check in tests/test_docs_examples.py"


def test_examples_have_one_name_each_and_are_shell():
    named = [b for b in all_blocks() if b.name]
    names = [b.name for b in named]
    assert sorted(set(names)) == sorted(names)
    assert [b.where for b in named if b.lang != "sh"] == []
    assert {b.uses for b in named if b.uses} <= set(names)


# -- the site ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "LANG": "C.UTF-8"},
    )
    assert built.returncode == 0, built.stderr[-6000:]
    return out


def test_the_site_loads_nothing_from_another_host(site):
    remote = re.compile(r"""<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//""", re.I)
    fonts = re.compile(r"fonts\.(?:googleapis|gstatic)\.com")
    offending = [
        str(page.relative_to(site))
        for page in site.rglob("*")
        if page.suffix in {".html", ".css", ".js"}
        and (remote.search(t := page.read_text(errors="replace")) or fonts.search(t))
    ]
    assert offending == []


def _parameters_sorted(value: Any) -> Any:
    """The document with each operation's parameters in name order (the app lists a path's
    parameters in the order of werkzeug's set of rule arguments, which varies by process)."""
    if isinstance(value, dict):
        return {
            k: sorted(map(_parameters_sorted, v), key=lambda p: (p.get("in"), p.get("name")))
            if k == "parameters"
            else _parameters_sorted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_parameters_sorted(v) for v in value]
    return value


def test_the_site_serves_the_apps_openapi_document(site, app):
    from app.api.openapi import build_spec

    with app.app_context():
        served = json.loads(json.dumps(build_spec()))
    assert _parameters_sorted(json.loads((site / "openapi.json").read_text())) == _parameters_sorted(served)
    assert (site / "assets" / "vendor" / "redoc" / "redoc.standalone.js").exists()


def test_the_performance_page_shows_the_latest_results(site):
    page = (site / "performance" / "index.html").read_text()
    first_row = next(
        line for line in (ROOT / "bench" / "RESULTS.md").read_text().splitlines() if line.startswith("| P")
    )
    assert first_row.split("|")[1].strip() in page
