"""Settings: one table (`SETTINGS`: the variable, how its text is read, its default, what it
means), read from the environment (and `.env`) when a Config is created, never at import.
A process under test (`OPSDECK_ENV=test` in its environment) never reads `.env`, and the tests'
own TestConfig reads neither: nothing a developer keeps there changes what the suite tests.

Every value is checked when the process starts: a value Opsdeck cannot use stops it with an
error that names the variable, instead of being taken silently or failing later. The
configuration table in docs/configuration.md is generated from this one (`python -m app.config`), and a
test holds them equal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.config.readers import (
    ConfigError,
    addresses,
    base_url,
    boolean,
    check_scan_storage,
    choice,
    country_code,
    extensions,
    file_url,
    hh_mm,
    integer,
    number,
    seconds_list,
    storage_url,
    text,
    words,
)

ROOT = Path(__file__).resolve().parents[2]
#: The `.env` file Config reads (its variables fill in what the environment does not set).
DOTENV = ROOT / ".env"

#: Job families that can be switched off with OPSDECK_DISABLED_FAMILIES.
FAMILIES = ("system", "email", "webhooks", "scans", "retention", "provisioning")


@dataclass(frozen=True)
class Setting:
    """One environment variable: `parse` reads its text, `default` (a value, or a function of
    the var directory for paths under it) stands when it is unset or empty."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    #: The default as the docs show it (when its value would not read well).
    shown: str | None = None
    #: Who reads it: Opsdeck's Config, or (documented here all the same) another program.
    read_by: str = "config"

    def read(self, var: Path, environ: Mapping[str, str]) -> Any:
        raw = environ.get(self.name, "")
        if raw.strip() == "":
            return self.default(var) if callable(self.default) else self.default
        try:
            return self.parse(raw)
        except ValueError as err:
            raise ConfigError(f"{self.name}={raw!r}: {err}") from None

    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        value = self.default
        if value in ("", []):
            return "empty"
        if isinstance(value, bool):
            return f"`{int(value)}`"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        return f"`{value}`"


# A table, one setting a line: kept as written.
# fmt: off
#: Every setting, in the order the docs list them.
SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", text, lambda var: f"sqlite:///{var / 'opsdeck.db'}", "SQLAlchemy URL; PostgreSQL in production (`postgresql://user@host/db`, psycopg 3); connecting gives up after 10 s unless the URL sets `connect_timeout`", shown="`sqlite:///var/opsdeck.db`"),
    Setting("DATABASE_PING_AFTER_SECONDS", number, 1.0, 'PostgreSQL: a pooled connection idle longer than this is pinged before use, and replaced if dead (`0`: at every checkout)'),
    Setting("DATABASE_WARM_CONNECTIONS", integer, 4, "Database connections each web and worker process opens as it boots, before its first request or message (at most the pool's size; `0`: none). On PostgreSQL they count against `max_connections`: `supervisor/opsdeck.conf` runs 11 such processes, 44 connections at the default"),
    Setting("REDIS_URL", text, "redis://127.0.0.1:6379/0", "Dramatiq broker, rate limits, locks, the live feed's message queue"),
    Setting("REDIS_SENTINELS", addresses, [], "comma-separated `host:port` of Redis Sentinels: when set, every process asks them for the master `REDIS_SENTINEL_MASTER` and follows a failover (`REDIS_URL` then gives only the database number and the master's password)"),
    Setting("REDIS_SENTINEL_MASTER", text, "opsdeck", "the name under which the sentinels monitor the master"),
    Setting("REDIS_SENTINEL_PASSWORD", text, "", "password of the sentinels themselves (empty: none)"),
    Setting("SECRET_KEY", text, "", "Flask session signing", shown="— (required in production)"),
    Setting("OPSDECK_ENCRYPTION_KEYS", words, [], "comma-separated Fernet keys; the first encrypts, all decrypt (rotate by prepending a new key)", shown="— (required in production)"),
    Setting("PORT", integer, 5000, "port of `python wsgi.py` and the dev stack's web process"),
    Setting("WEB_CONCURRENCY", integer, 2, "gunicorn worker processes of the web program (`supervisor/gunicorn.conf.py`)", read_by="gunicorn"),
    Setting("WEB_THREADS", integer, 32, "threads per web process (each open live-feed WebSocket holds one)", read_by="gunicorn"),
    Setting("OPSDECK_ENV", text, "production", "`development` relaxes the secrets check (set by `make run`'s `.env`); `test` (the test suite and the processes it starts) never reads `.env`"),
    Setting("OPSDECK_VAR_DIR", text, lambda var: str(var), "where the embedded SQLite file and dev data live", shown="`var/`"),
    Setting("OPSDECK_DISABLED_FAMILIES", words, [], 'comma-separated families switched off (`email,webhooks,…`): their job types are refused with 422'),
    Setting("API_SIGNATURE_TOLERANCE", integer, 300, 'seconds a request timestamp may differ from the server clock'),
    Setting("API_KEY_ROTATION_GRACE_HOURS", number, 24, 'after `flask tenants rotate-key`, older keys keep working this long (0: revoked at once)'),
    Setting("API_RATE_LIMIT_PER_MINUTE", integer, 6000, 'per-tenant API requests (a bulk call: its items) per minute (0 disables)'),
    Setting("MAX_CONTENT_LENGTH", integer, 1024 * 1024, 'largest request body in bytes (413 above)'),
    Setting("IDEMPOTENCY_TTL_HOURS", integer, 48, 'how long Idempotency-Key responses are kept'),
    Setting("API_BATCH_MAX_ITEMS", integer, 1000, 'most items in one bulk call (`/jobs/batch`, `/events/batch`)'),
    Setting("API_BATCH_MAX_BYTES", integer, 5 * 1024 * 1024, 'largest body of a bulk call (413 above)'),
    Setting("JOB_LEASE_SECONDS", integer, 30, "a running job's lease; a lost worker's jobs are re-queued after it expires"),
    Setting("OUTBOX_RELAY_INTERVAL", number, 2.0, 'seconds between relay passes (publish pending, recover lost jobs)'),
    Setting("OUTBOX_GRACE_SECONDS", number, 5.0, 'age before the relay re-publishes a pending job (the submitter publishes first)'),
    Setting("OUTBOX_MAX_BROKER_DELAY", integer, 60, 'longest delay handed to Redis; longer delays wait in the ledger'),
    Setting("OUTBOX_BATCH_SIZE", integer, 500, 'jobs per relay pass'),
    Setting("JOB_MAX_ATTEMPTS_LIMIT", integer, 25, 'the largest `max_attempts` a request may ask for'),
    Setting("WORKER_TIME_LIMIT_SECONDS", integer, 600, 'default actor time limit (actors may set a shorter `time_limit`)'),
    Setting("WORKER_HEARTBEAT_SECONDS", number, 5.0, "between a worker or scheduler process's heartbeats for the workers page; a process that missed three is shown silent"),
    Setting("QUEUE_LONG_WAIT_SECONDS", integer, 300, "seconds a queue's oldest due job may wait before a long-wait alert (live feed, dashboard, a mail to the admins, a `queue.long_wait` webhook event), once per episode"),
    Setting("QUEUE_LONG_WAIT_OVERRIDES", words, [], 'comma-separated `queue:seconds` thresholds for particular queues (`email:60,scans:120`; a family\'s name covers its `_high` and `_low` queues)'),
    Setting("QUEUE_LONG_WAIT_CHECK_SECONDS", integer, 30, 'how often the scheduler compares every queue with its long-wait threshold'),
    Setting("SMTP_HOST", text, "127.0.0.1", "the relay (the dev stack's sink by default)"),
    Setting("SMTP_PORT", integer, 1025, 'its port'),
    Setting("SMTP_USERNAME", text, "", 'login, when a username is set'),
    Setting("SMTP_PASSWORD", text, "", 'login, when a username is set'),
    Setting("SMTP_SECURITY", choice("none", "starttls", "ssl"), "none", "`none`, `starttls` or `ssl` (any other value refuses to start: credentials never go out without TLS by mistake)"),
    Setting("SMTP_TIMEOUT", number, 30.0, 'seconds for each SMTP command'),
    Setting("SMTP_CA_FILE", text, "", "CA bundle for the relay's certificate (starttls/ssl; empty: the system's CAs; certificates are always verified)"),
    Setting("EMAIL_FROM", text, "Opsdeck <opsdeck@localhost>", 'sender; its domain names the Message-IDs'),
    Setting("EMAIL_BATCH_SIZE", integer, 100, 'most mails per batch (one SMTP connection)'),
    Setting("EMAIL_DELAY", number, 1.0, "seconds between batches, and between the scheduler's checks for due mail"),
    Setting("EMAIL_RATE_PER_MINUTE", integer, 100, 'mails per minute to the relay, across all worker processes (0: no limit)'),
    Setting("EMAIL_DIGEST_WINDOW", integer, 600, 'seconds mails with one (tenant, recipient, digest_key) are gathered'),
    Setting("EMAIL_RETRY_SCHEDULE", seconds_list, [60, 300, 1800, 7200, 21600], "seconds before each retry of a temporary failure; attempts = entries + 1"),
    Setting("EMAIL_LEASE_SECONDS", integer, 120, 'how long a claimed mail is held by its batch before another may take it'),
    Setting("OPSDECK_PUBLIC_URL", base_url, "http://localhost:5000", "where Opsdeck is reachable (unsubscribe links)"),
    Setting("WEBHOOK_RETRY_SCHEDULE", seconds_list, [5, 300, 1800, 7200, 18000, 36000, 36000], "seconds before each retry of a failed delivery (±20% jitter); attempts = entries + 1"),
    Setting("WEBHOOK_TIMEOUT", number, 15.0, 'seconds for a whole delivery attempt'),
    Setting("WEBHOOK_CONNECT_TIMEOUT", number, 5.0, 'seconds to connect, within `WEBHOOK_TIMEOUT`'),
    Setting("WEBHOOK_ALLOWED_NETWORKS", words, [], 'comma-separated CIDRs endpoints may resolve to although not public (empty: public addresses only; the dev stack of `make run` allows loopback, `127.0.0.0/8,::1/128`, unless set)'),
    Setting("WEBHOOK_ROTATION_GRACE", integer, 24 * 3600, "seconds an endpoint's previous secret keeps signing after a rotation"),
    Setting("WEBHOOK_DISABLE_AFTER", integer, 5 * 86400, 'seconds (5 days) an endpoint may fail without a success before it is disabled'),
    Setting("WEBHOOK_RETRY_AFTER_MAX", integer, 3600, 'longest `Retry-After` honoured, in seconds'),
    Setting("WEBHOOK_MAX_PAYLOAD_BYTES", integer, 256 * 1024, 'largest event payload (JSON bytes); 413 above'),
    Setting("CLAMD_URL", text, lambda var: f"unix://{var / 'clamav' / 'clamd.sock'}", "clamd's socket: `unix:///path/clamd.sock` or `tcp://host:3310`", shown="`unix://var/clamav/clamd.sock`"),
    Setting("CLAMD_TIMEOUT", number, 60.0, 'seconds for connecting to clamd and for each read or write of a scan'),
    Setting("CLAMD_FDPASS", boolean, True, 'on a unix socket, hand clamd the open file (`FILDES`) instead of streaming it (`INSTREAM`); `0` streams (needed only when something between Opsdeck and clamd forwards bytes but not descriptors, or a security module on clamd refuses passed descriptors: that shows as a protocol error, retried and ending in `error`, never `clean`)'),
    Setting("SCAN_MAX_BYTES", integer, 25 * 1024 * 1024, "largest upload (25 MiB); 413 above. Keep it at or below clamd's `MaxFileSize` and `MaxScanSize` (and `StreamMaxLength` when streaming), with `AlertExceedsMax yes`"),
    Setting("SCAN_ALLOWED_EXTENSIONS", extensions, ["pdf", "png", "jpg", "jpeg", "gif", "webp", "txt", "csv", "docx", "xlsx", "odt", "zip"], "extensions accepted (each checked against the content libmagic detects)"),
    Setting("SCAN_STORAGE_URL", storage_url, lambda var: file_url(var / "files"), "where kept files live (never served directly): `file:///absolute/path` (on several machines, a filesystem they all mount) or `s3://bucket/prefix` on any S3-compatible store", shown="`var/files` as a `file://` URL"),
    Setting("SCAN_QUARANTINE_URL", storage_url, lambda var: file_url(var / "quarantine"), "where infected files are moved: the same kind of URL as `SCAN_STORAGE_URL` (both `file://`, or both `s3://` on the same endpoint), not inside it", shown="`var/quarantine` as a `file://` URL"),
    Setting("S3_ENDPOINT_URL", base_url, "", "the S3-compatible endpoint (`https://minio.internal:9000`); empty: AWS S3"),
    Setting("S3_REGION", text, "us-east-1", "the store's region (signs every request)"),
    Setting("S3_ACCESS_KEY_ID", text, "", "access key of the store; empty: boto3's own credential chain (`AWS_*` variables, `~/.aws`, an instance or pod role)"),
    Setting("S3_SECRET_ACCESS_KEY", text, "", "its secret key (set with `S3_ACCESS_KEY_ID`)"),
    Setting("SCAN_RETRY_SCHEDULE", seconds_list, [10, 60, 300, 1800], "seconds before each retry when clamd gives no verdict; attempts = entries + 1, then `error`"),
    Setting("SCAN_RESCAN_DAYS", integer, 30, "clean files with a verdict younger than this are rescanned when clamd's signatures change"),
    Setting("SCAN_SIGNATURE_CHECK_SECONDS", integer, 300, 'how often the scheduler asks clamd for its signature DB version'),
    Setting("PROVISION_RETRY_SCHEDULE", seconds_list, [5, 15, 30, 60, 120], "seconds before each retry of a failed router call; attempts = entries + 1"),
    Setting("ROUTER_TIMEOUT", number, 10.0, 'seconds to connect to a router and for each API reply'),
    Setting("ROUTER_CA_FILE", text, "", "CA bundle for routers' API-SSL certificates (empty: the system's CAs)"),
    Setting("ROUTER_CHECK_SECONDS", integer, 60, 'between router checks'),
    Setting("EXPIRY_CHECK_SECONDS", integer, 60, 'between expiry checks'),
    Setting("PHONE_DEFAULT_COUNTRY_CODE", country_code, "254", "country calling code of phone numbers given without one: the national form (`0712345678`) is read as `+254712345678`, and digits without a plus must start with it (`254712345678`, as Daraja sends them). Phones are kept as E.164 (`+254712345678`)"),
    Setting("MPESA_ALLOWED_NETWORKS", words, [], 'CIDRs the M-Pesa callback is accepted from (empty: anyone holding the token; Safaricom publishes its ranges)'),
    Setting("TRUSTED_PROXIES", words, [], 'CIDRs of proxies whose `X-Forwarded-For` is believed'),
    Setting("RETENTION_AT", hh_mm, "02:00", "when the daily retention run starts (HH:MM, UTC)"),
    Setting("RETENTION_TIME_BUDGET", number, 1800.0, 'seconds one run may take; the rest waits for the next run'),
    Setting("RETENTION_PAUSE_SECONDS", number, 0.0, 'pause between delete batches'),
    Setting("SESSION_COOKIE_SECURE", boolean, False, '`1` behind TLS: the admin session cookie is sent over HTTPS only'),
    Setting("ADMIN_SESSION_HOURS", integer, 12, 'lifetime of an admin session, in hours'),
    Setting("ADMIN_LOGIN_LIMIT_PER_ACCOUNT", text, "5 per 15 minutes", 'failed logins allowed per account (Flask-Limiter syntax)'),
    Setting("ADMIN_LOGIN_LIMIT_PER_IP", text, "20 per 15 minutes", 'failed logins allowed per client IP'),
    Setting("LOG_FORMAT", choice("json", "text"), "json", "`json`: one JSON object per line on stdout; `text`: readable lines (`make run` sets it)"),
    Setting("LOG_LEVEL", choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True), "INFO", "the root log level of every process"),
    Setting("SENTRY_DSN", text, "", 'Sentry DSN for errors from the web process, every worker and the scheduler; empty: Sentry is not initialised at all'),
    Setting("SENTRY_ENVIRONMENT", text, "", "environment of every Sentry event", shown="`OPSDECK_ENV`"),
    Setting("SENTRY_RELEASE", text, "", "release of every Sentry event (empty: the checked-out commit, read from `.git` when there is one)", shown="the git commit"),
    Setting("SENTRY_REPORT_RETRIES", boolean, False, '`1`: report every failed attempt of a job to Sentry, not only the one that leaves it dead'),
    Setting("SENTRY_TRACES_SAMPLE_RATE", number, 0.0, 'share of requests and jobs sent to Sentry as performance traces (0: errors only)'),
    Setting("OTEL_EXPORTER_OTLP_ENDPOINT", text, "", "OTLP/HTTP collector for traces (`http://collector:4318`); empty: tracing off. The other standard `OTEL_*` variables (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_HEADERS`, …) are read by the OpenTelemetry SDK"),
    Setting("PROMETHEUS_MULTIPROC_DIR", text, lambda var: str(var / "metrics"), "where every process writes its Prometheus samples (`GET /metrics` adds them up); empty it when the whole stack starts, never while it runs (see [Metrics](operations.md#metrics))", shown="`var/metrics`"),
    Setting("METRICS_TOKEN", text, "", 'bearer token `GET /metrics` requires (`Authorization: Bearer …`); empty: open'),
    Setting("OPSDECK_DEV_REDIS_PORT", integer, 6390, "dev stack only: port of its own redis-server", read_by="the dev stack"),
    Setting("OPSDECK_DEV_ROUTER_PORT", integer, 18728, "dev stack only: port of its demo router (the RouterOS API test server)", read_by="the dev stack"),
    Setting("TEST_DATABASE_URL", text, "postgresql://postgres@127.0.0.1:5432/test", "tests only: PostgreSQL server for the PostgreSQL half of the suite (skipped, and reported as skipped, when unreachable)", read_by="the tests"),
    Setting("dramatiq_queue_prefetch", integer, 0, "Dramatiq's own: messages a worker prefetches per queue", shown="threads × 2", read_by="Dramatiq"),

)
# fmt: on
#: Settings by name.
BY_NAME = {setting.name: setting for setting in SETTINGS}


def under_test(environ: Mapping[str, str]) -> bool:
    """A process the test suite started (or the suite itself): OPSDECK_ENV=test."""
    return environ.get("OPSDECK_ENV", "").strip().lower() == "test"


def load_dotenv_file() -> None:
    """Load DOTENV into the environment (existing variables win); not in a process under test."""
    if under_test(os.environ):
        return
    try:
        from dotenv import load_dotenv
    except ImportError:  # pragma: no cover - python-dotenv is in requirements
        return
    load_dotenv(DOTENV, override=False)


#: Retired variables and what replaces them: set, they stop the process (a value that silently
#: did not count would put files somewhere else).
REPLACED = {
    "SCAN_STORAGE_DIR": "SCAN_STORAGE_URL=file:///the/same/path",
    "SCAN_QUARANTINE_DIR": "SCAN_QUARANTINE_URL=file:///the/same/path",
}


def check_replaced(environ: Mapping[str, str]) -> None:
    for name, instead in REPLACED.items():
        if environ.get(name, "").strip():
            raise ConfigError(f"{name} is no longer read: set {instead} instead")


class Config:
    """Production-safe settings from the environment and `.env`, or from `environ` alone when
    given (raises ConfigError for a bad value)."""

    # Set from SETTINGS in __init__; declared for the settings this class reads itself.
    DATABASE_URL: str
    ADMIN_SESSION_HOURS: int
    SCAN_STORAGE_URL: str
    SCAN_QUARANTINE_URL: str

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        if environ is None:
            load_dotenv_file()
            environ = os.environ
        check_replaced(environ)
        var = Path(BY_NAME["OPSDECK_VAR_DIR"].read(ROOT / "var", environ))
        for setting in SETTINGS:
            if setting.read_by == "config":
                setattr(self, setting.name, setting.read(var, environ))
        self.VAR_DIR = str(var)
        check_scan_storage(self.SCAN_STORAGE_URL, self.SCAN_QUARANTINE_URL)
        self.SQLALCHEMY_DATABASE_URI = _normalise_db_url(self.DATABASE_URL)
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = _engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.PERMANENT_SESSION_LIFETIME = self.ADMIN_SESSION_HOURS * 3600
        self.RATELIMIT_SWALLOW_ERRORS = True  # Redis down: do not lock operators out
        self.RATELIMIT_KEY_PREFIX = "opsdeck-limiter"
        self.WTF_CSRF_TIME_LIMIT = None  # tied to the session instead
        self.TESTING = False
        self.DEBUG = False


def settings_markdown() -> str:
    """The configuration table of docs/configuration.md."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.shown_default()} | {s.doc} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


class TestConfig(Config):
    """Tests: every setting its default or an override; neither `.env` nor the environment is read."""

    def __init__(self, **overrides: Any) -> None:
        super().__init__(environ={})
        self.TESTING = True
        self.OPSDECK_ENV = "test"
        self.SECRET_KEY = "test-secret-key"
        self.SENTRY_DSN = ""  # never a developer's Sentry; a test passes its own DSN as an override
        # Each test app its own metrics directory (worker processes it starts inherit it), never
        # the one in the environment: create_app exported the previous app's there.
        if "PROMETHEUS_MULTIPROC_DIR" not in overrides:
            self.PROMETHEUS_MULTIPROC_DIR = _scratch_dir("opsdeck-metrics-")
        if "SQLALCHEMY_ENGINE_OPTIONS" not in overrides and "SQLALCHEMY_DATABASE_URI" in overrides:
            overrides["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(overrides["SQLALCHEMY_DATABASE_URI"])
        for key, value in overrides.items():
            setattr(self, key, value)


def _scratch_dir(prefix: str) -> str:
    """A new temporary directory, removed when the process exits (tests)."""
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, True)
    return path


def _normalise_db_url(url: str) -> str:
    # Heroku-style URLs and bare postgresql:// both mean psycopg 3 here.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several processes share the file: wait for locks instead of failing at once.
        # Connections are cheap but set up with PRAGMAs: keep one per thread instead of
        # opening and closing overflow connections under load.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}, "pool_size": 32, "max_overflow": 32}
    # No pool_pre_ping: app/db/postgres.py pings only connections idle past DATABASE_PING_AFTER_SECONDS.
    # LIFO keeps the busy connections warm (and their prepared statements); the idle tail ages.
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 20, "pool_use_lifo": True}
    # libpq waits for an unreachable server as long as the OS lets it (minutes) unless the URL
    # says otherwise; a request or a booting process waits 10 s at most.
    if "connect_timeout" not in make_url(url).query:
        options["connect_args"] = {"connect_timeout": 10}
    return options
