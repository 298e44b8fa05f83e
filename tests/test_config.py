"""Settings (app/config/): one table, every value checked at start, the docs' table made from it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from app.config import BY_NAME, SETTINGS, Config, ConfigError, settings_markdown
from tests.fakes.processes import ROOT


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMTP_SECURITY", "tls"),  # would have logged in to the relay in the clear
        ("SMTP_PORT", "25a"),
        ("EMAIL_DELAY", "soon"),
        ("SESSION_COOKIE_SECURE", "enable"),  # was read as False
        ("RETENTION_AT", "2am"),  # failed every minute at run time
        ("WEBHOOK_RETRY_SCHEDULE", "5,x,30"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("OPSDECK_PUBLIC_URL", "opsdeck.example"),
    ],
)
def test_a_bad_value_refuses_to_start_naming_its_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=rf"^{name}="):
        Config()


@pytest.mark.parametrize("name", ["SCAN_STORAGE_DIR", "SCAN_QUARANTINE_DIR"])
def test_a_replaced_variable_refuses_to_start_saying_what_replaced_it(monkeypatch, name):
    """Ignored, it would leave every upload in the default folder, away from the files kept."""
    monkeypatch.setenv(name, "/srv/opsdeck/files")
    with pytest.raises(ConfigError, match=rf"^{name} is no longer read: set SCAN_[A-Z]+_URL=file://"):
        Config()


@pytest.mark.parametrize("value", ["tls", "TLS", "STARTTLS", " ssl ", "SSL", "starttls", "smtps", "yes", "true", "1"])
def test_no_smtp_security_but_none_goes_without_tls(monkeypatch, value):
    monkeypatch.setenv("SMTP_SECURITY", value)
    try:
        security = Config().SMTP_SECURITY
    except ConfigError:
        return
    assert security in {"starttls", "ssl"}


def test_values_are_read_as_their_kind(monkeypatch):
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "yes")
    monkeypatch.setenv("SCAN_ALLOWED_EXTENSIONS", ".PDF, txt")
    monkeypatch.setenv("OPSDECK_PUBLIC_URL", "https://ops.example/")
    monkeypatch.setenv("ADMIN_SESSION_HOURS", "2")
    monkeypatch.setenv("EMAIL_RETRY_SCHEDULE", "")  # empty: the default
    config = Config()
    assert config.SESSION_COOKIE_SECURE is True and config.SCAN_ALLOWED_EXTENSIONS == ["pdf", "txt"]
    assert config.OPSDECK_PUBLIC_URL == "https://ops.example" and config.PERMANENT_SESSION_LIFETIME == 7200
    assert config.EMAIL_RETRY_SCHEDULE == [60, 300, 1800, 7200, 21600]


def test_every_setting_opsdeck_reads_is_in_the_table():
    """Each `config["NAME"]` and `.NAME` of an upper-case setting in app/ and workers/ is a
    setting of the table or one the Config derives."""
    derived = {
        "VAR_DIR",
        "SQLALCHEMY_DATABASE_URI",
        "SQLALCHEMY_ENGINE_OPTIONS",
        "SQLALCHEMY_TRACK_MODIFICATIONS",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "PERMANENT_SESSION_LIFETIME",
        "RATELIMIT_SWALLOW_ERRORS",
        "RATELIMIT_KEY_PREFIX",
        "WTF_CSRF_TIME_LIMIT",
        "TESTING",
        "DEBUG",
        "SERVER_NAME",
        "PREFERRED_URL_SCHEME",
        "SECRET_KEY_FALLBACKS",
    }
    read = set()
    for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        read |= set(re.findall(r"config\[\"([A-Z][A-Z0-9_]+)\"\]", path.read_text()))
    assert len(read) > 40  # the search finds what it looks for
    assert read - derived - set(BY_NAME) == set()


def test_the_docs_table_is_the_generated_one():
    readme = (ROOT / "docs" / "configuration.md").read_text()
    assert settings_markdown() in readme, "run `python -m app.config` and paste its table into docs/configuration.md"
    assert len(SETTINGS) == len(BY_NAME)  # no name twice


#: A developer's `.env` and shell that would change what the suite tests.
HOSTILE_DOTENV = {"WEBHOOK_ALLOWED_NETWORKS": "0.0.0.0/0", "API_RATE_LIMIT_PER_MINUTE": "1", "SMTP_PORT": "2525"}
HOSTILE_ENVIRON = {
    "OPSDECK_ENV": "development",  # would read `.env` again
    "MPESA_ALLOWED_NETWORKS": "10.0.0.0/8",
    "OPSDECK_DISABLED_FAMILIES": "webhooks",
    "LOG_LEVEL": "CRITICAL",
    "WEB_CONCURRENCY": "64",  # gunicorn's
    "dramatiq_queue_prefetch": "1",  # Dramatiq's
}
#: What the tests see instead: the defaults.
DEFAULTS = {
    "WEBHOOK_ALLOWED_NETWORKS": [],
    "API_RATE_LIMIT_PER_MINUTE": 6000,
    "SMTP_PORT": 1025,
    "MPESA_ALLOWED_NETWORKS": [],
    "OPSDECK_DISABLED_FAMILIES": [],
    "LOG_LEVEL": "INFO",
}
#: Run in a process the tests start: Config() with the hostile `.env` where it would be read.
CHILD = """
import json, sys
from pathlib import Path
from app import config
config.DOTENV = Path(sys.argv[1])
settings = config.Config()
print(json.dumps({name: getattr(settings, name) for name in sys.argv[2:]}))
"""


def test_the_suite_ignores_a_developers_dotenv_and_environment(app, database_url, redis_server, monkeypatch, tmp_path):
    """A hostile `.env` where the app looks for it and hostile settings in the environment reach
    neither the tests' config nor the processes the tests start."""
    from app import config
    from tests.conftest import make_config, process_env

    dotenv = tmp_path / ".env"
    dotenv.write_text("".join(f"{name}={value}\n" for name, value in HOSTILE_DOTENV.items()))
    monkeypatch.setattr(config, "DOTENV", dotenv)
    assert config.under_test(os.environ)  # the suite runs as a process under test
    assert {name: getattr(Config(), name) for name in DEFAULTS} == DEFAULTS
    assert not set(HOSTILE_DOTENV) & set(os.environ)  # nothing was loaded

    for name, value in HOSTILE_ENVIRON.items():
        monkeypatch.setenv(name, value)
    tests_config = make_config(database_url, redis_server.url)
    assert {name: getattr(tests_config, name) for name in DEFAULTS} == DEFAULTS

    env = process_env(app)
    assert env["OPSDECK_ENV"] == "test"
    assert not {name for name in HOSTILE_ENVIRON if name != "OPSDECK_ENV"} & set(env)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(dotenv), *DEFAULTS], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == DEFAULTS
