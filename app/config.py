"""Settings, read from the environment (and `.env`) when a Config is created, never at import.

Every setting has one documented safe default; the README lists them all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent

#: Job families that can be switched off with OPSDECK_DISABLED_FAMILIES.
FAMILIES = ("system", "email", "webhooks", "scans", "retention", "provisioning")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in _env(name, default).split(",") if item.strip()]


def load_dotenv_file() -> None:
    """Load `.env` from the project root into the environment (existing variables win)."""
    try:
        from dotenv import load_dotenv
    except ImportError:  # pragma: no cover - python-dotenv is in requirements
        return
    load_dotenv(ROOT / ".env", override=False)


class Config:
    """Production-safe settings from the environment."""

    def __init__(self) -> None:
        load_dotenv_file()
        var = Path(_env("OPSDECK_VAR_DIR", str(ROOT / "var")))
        self.VAR_DIR = str(var)
        #: SQLAlchemy URL; the embedded default is a SQLite file under var/.
        self.SQLALCHEMY_DATABASE_URI = _normalise_db_url(_env("DATABASE_URL", f"sqlite:///{var / 'opsdeck.db'}"))
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = _engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
        #: PostgreSQL: a pooled connection idle longer than this is pinged before use (0: always).
        self.DATABASE_PING_AFTER_SECONDS = _float("DATABASE_PING_AFTER_SECONDS", 1.0)
        #: Database connections each web and worker process opens as it boots (app/db/warmup.py).
        self.DATABASE_WARM_CONNECTIONS = _int("DATABASE_WARM_CONNECTIONS", 4)
        #: Redis for the Dramatiq broker, rate limits and the live feed.
        self.REDIS_URL = _env("REDIS_URL", "redis://127.0.0.1:6379/0")
        #: Flask session signing key. Empty means: refuse to start outside debug/testing.
        self.SECRET_KEY = _env("SECRET_KEY", "")
        #: Comma-separated Fernet keys; the first encrypts, all decrypt (rotation).
        self.OPSDECK_ENCRYPTION_KEYS = _list("OPSDECK_ENCRYPTION_KEYS")
        self.PORT = _int("PORT", 5000)
        self.OPSDECK_ENV = _env("OPSDECK_ENV", "production")
        #: Families switched off (their job types are refused with 422).
        self.OPSDECK_DISABLED_FAMILIES = _list("OPSDECK_DISABLED_FAMILIES")

        # Admin pages
        #: Send the session cookie over HTTPS only (set in production behind TLS).
        self.SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.PERMANENT_SESSION_LIFETIME = _int("ADMIN_SESSION_HOURS", 12) * 3600
        #: Failed admin logins allowed per account and per client IP (Flask-Limiter syntax).
        self.ADMIN_LOGIN_LIMIT_PER_ACCOUNT = _env("ADMIN_LOGIN_LIMIT_PER_ACCOUNT", "5 per 15 minutes")
        self.ADMIN_LOGIN_LIMIT_PER_IP = _env("ADMIN_LOGIN_LIMIT_PER_IP", "20 per 15 minutes")
        self.RATELIMIT_SWALLOW_ERRORS = True  # Redis down: do not lock operators out
        self.RATELIMIT_KEY_PREFIX = "opsdeck-limiter"
        self.WTF_CSRF_TIME_LIMIT = None  # tied to the session instead

        # Signed API
        self.API_SIGNATURE_TOLERANCE = _int("API_SIGNATURE_TOLERANCE", 300)
        #: After `tenants rotate-key`, the old key keeps working this long.
        self.API_KEY_ROTATION_GRACE_HOURS = _float("API_KEY_ROTATION_GRACE_HOURS", 24)
        self.API_RATE_LIMIT_PER_MINUTE = _int("API_RATE_LIMIT_PER_MINUTE", 6000)
        #: Largest request body accepted (413 above); upload routes raise their own limit.
        self.MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)
        self.IDEMPOTENCY_TTL_HOURS = _int("IDEMPOTENCY_TTL_HOURS", 48)
        #: Bulk calls (POST /jobs/batch, /events/batch): most items, and largest body (413 above).
        self.API_BATCH_MAX_ITEMS = _int("API_BATCH_MAX_ITEMS", 1000)
        self.API_BATCH_MAX_BYTES = _int("API_BATCH_MAX_BYTES", 5 * 1024 * 1024)

        # Ledger, outbox and recovery
        self.JOB_LEASE_SECONDS = _int("JOB_LEASE_SECONDS", 30)
        self.OUTBOX_RELAY_INTERVAL = _float("OUTBOX_RELAY_INTERVAL", 2.0)
        self.OUTBOX_GRACE_SECONDS = _float("OUTBOX_GRACE_SECONDS", 5.0)
        self.OUTBOX_MAX_BROKER_DELAY = _int("OUTBOX_MAX_BROKER_DELAY", 60)
        self.OUTBOX_BATCH_SIZE = _int("OUTBOX_BATCH_SIZE", 500)
        self.JOB_MAX_ATTEMPTS_LIMIT = _int("JOB_MAX_ATTEMPTS_LIMIT", 25)

        # Email
        self.SMTP_HOST = _env("SMTP_HOST", "127.0.0.1")
        self.SMTP_PORT = _int("SMTP_PORT", 1025)
        self.SMTP_USERNAME = _env("SMTP_USERNAME", "")
        self.SMTP_PASSWORD = _env("SMTP_PASSWORD", "")
        #: none | starttls | ssl
        self.SMTP_SECURITY = _env("SMTP_SECURITY", "none")
        self.SMTP_TIMEOUT = _float("SMTP_TIMEOUT", 30.0)
        #: CA bundle the relay's certificate is checked against (empty: the system's CAs).
        self.SMTP_CA_FILE = _env("SMTP_CA_FILE", "")
        self.EMAIL_FROM = _env("EMAIL_FROM", "Opsdeck <opsdeck@localhost>")
        #: Most mails one flush claims and sends over one SMTP connection.
        self.EMAIL_BATCH_SIZE = _int("EMAIL_BATCH_SIZE", 100)
        #: Seconds between batches (and between the scheduler's checks for due mail).
        self.EMAIL_DELAY = _float("EMAIL_DELAY", 1.0)
        #: Mails per minute the relay accepts, across every worker process (0: no limit).
        self.EMAIL_RATE_PER_MINUTE = _int("EMAIL_RATE_PER_MINUTE", 100)
        #: Seconds mails with the same (tenant, recipient, digest_key) are gathered into one.
        self.EMAIL_DIGEST_WINDOW = _int("EMAIL_DIGEST_WINDOW", 600)
        #: Seconds before each retry after a temporary (4xx or connection) failure; attempts = entries + 1.
        self.EMAIL_RETRY_SCHEDULE = [int(x) for x in _list("EMAIL_RETRY_SCHEDULE", "60,300,1800,7200,21600")]
        #: Seconds a claimed mail is held by its flush before another may take it.
        self.EMAIL_LEASE_SECONDS = _int("EMAIL_LEASE_SECONDS", 120)
        #: Where Opsdeck is reachable from the internet (unsubscribe links).
        self.OPSDECK_PUBLIC_URL = _env("OPSDECK_PUBLIC_URL", "http://localhost:5000").rstrip("/")

        # Webhooks
        #: Seconds between attempts after each failure; attempts = entries + 1. ±20% jitter.
        self.WEBHOOK_RETRY_SCHEDULE = [
            int(x) for x in _list("WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000")
        ]
        #: Whole attempt (connect, send, first 4 KiB of the answer), and the connect part of it.
        self.WEBHOOK_TIMEOUT = _float("WEBHOOK_TIMEOUT", 15.0)
        self.WEBHOOK_CONNECT_TIMEOUT = _float("WEBHOOK_CONNECT_TIMEOUT", 5.0)
        #: CIDRs endpoints may resolve to although not public (development, tests). Empty: none.
        self.WEBHOOK_ALLOWED_NETWORKS = _list("WEBHOOK_ALLOWED_NETWORKS")
        #: Seconds the previous signing secret still signs after a rotation.
        self.WEBHOOK_ROTATION_GRACE = _int("WEBHOOK_ROTATION_GRACE", 24 * 3600)
        #: Seconds an endpoint may fail without a single success before it is disabled.
        self.WEBHOOK_DISABLE_AFTER = _int("WEBHOOK_DISABLE_AFTER", 5 * 86400)
        #: Longest Retry-After honoured (seconds); longer answers wait this long.
        self.WEBHOOK_RETRY_AFTER_MAX = _int("WEBHOOK_RETRY_AFTER_MAX", 3600)
        #: Largest event payload accepted (413 above).
        self.WEBHOOK_MAX_PAYLOAD_BYTES = _int("WEBHOOK_MAX_PAYLOAD_BYTES", 256 * 1024)

        # Retention
        #: When the daily run starts (HH:MM, UTC).
        self.RETENTION_AT = _env("RETENTION_AT", "02:00")
        #: Seconds one run may take; what is left waits for the next run.
        self.RETENTION_TIME_BUDGET = _float("RETENTION_TIME_BUDGET", 1800.0)
        #: Seconds between batches (gives the database room on busy systems).
        self.RETENTION_PAUSE_SECONDS = _float("RETENTION_PAUSE_SECONDS", 0.0)

        # Scans
        #: clamd's socket: unix:///path/to/clamd.sock or tcp://host:3310 (dev: the stack's own clamd).
        self.CLAMD_URL = _env("CLAMD_URL", f"unix://{var / 'clamav' / 'clamd.sock'}")
        #: Seconds for connecting to clamd and for each read or write of a scan.
        self.CLAMD_TIMEOUT = _float("CLAMD_TIMEOUT", 60.0)
        #: On a unix socket, hand clamd the open file (FILDES) instead of streaming it (INSTREAM).
        self.CLAMD_FDPASS = _bool("CLAMD_FDPASS", True)
        #: Largest upload (413 above). Keep it at or below clamd's MaxFileSize and MaxScanSize (and
        #: StreamMaxLength when streaming), with AlertExceedsMax yes (README: Scanning).
        self.SCAN_MAX_BYTES = _int("SCAN_MAX_BYTES", 25 * 1024 * 1024)
        #: Extensions accepted (each must match the content libmagic detects; see README).
        self.SCAN_ALLOWED_EXTENSIONS = [
            e.lower().lstrip(".")
            for e in _list("SCAN_ALLOWED_EXTENSIONS", "pdf,png,jpg,jpeg,gif,webp,txt,csv,docx,xlsx,odt,zip")
        ]
        #: Kept files and quarantined files: folders no web server serves.
        self.SCAN_STORAGE_DIR = _env("SCAN_STORAGE_DIR", str(var / "files"))
        self.SCAN_QUARANTINE_DIR = _env("SCAN_QUARANTINE_DIR", str(var / "quarantine"))
        #: Seconds before each retry when clamd gives no verdict; attempts = entries + 1, then `error`.
        self.SCAN_RETRY_SCHEDULE = [int(x) for x in _list("SCAN_RETRY_SCHEDULE", "10,60,300,1800")]
        #: Clean files with a verdict younger than this are rescanned when the signatures change.
        self.SCAN_RESCAN_DAYS = _int("SCAN_RESCAN_DAYS", 30)
        #: Seconds between the scheduler's checks of clamd's signature DB version.
        self.SCAN_SIGNATURE_CHECK_SECONDS = _int("SCAN_SIGNATURE_CHECK_SECONDS", 300)

        # Provisioning
        #: Seconds before each retry of a failed router call; attempts = entries + 1.
        self.PROVISION_RETRY_SCHEDULE = [int(x) for x in _list("PROVISION_RETRY_SCHEDULE", "5,15,30,60,120")]
        #: Seconds for connecting to a router and for each API reply.
        self.ROUTER_TIMEOUT = _float("ROUTER_TIMEOUT", 10.0)
        #: CA bundle for routers' API-SSL certificates (empty: the system's CAs).
        self.ROUTER_CA_FILE = _env("ROUTER_CA_FILE", "")
        #: Seconds between router checks (resources, sessions, online/offline).
        self.ROUTER_CHECK_SECONDS = _int("ROUTER_CHECK_SECONDS", 60)
        #: Seconds between expiry checks (due subscriptions are removed from their router).
        self.EXPIRY_CHECK_SECONDS = _int("EXPIRY_CHECK_SECONDS", 60)
        #: CIDRs the M-Pesa callback is accepted from (empty: anyone holding the callback token).
        self.MPESA_ALLOWED_NETWORKS = _list("MPESA_ALLOWED_NETWORKS")
        #: Proxies whose X-Forwarded-For is believed (CIDRs). Empty: none.
        self.TRUSTED_PROXIES = _list("TRUSTED_PROXIES")

        # Errors (Sentry)
        #: Where errors are reported. Empty: Sentry is not initialised at all.
        self.SENTRY_DSN = _env("SENTRY_DSN", "")
        #: Environment and release of every event (empty: OPSDECK_ENV; the checked-out git commit).
        self.SENTRY_ENVIRONMENT = _env("SENTRY_ENVIRONMENT", "")
        self.SENTRY_RELEASE = _env("SENTRY_RELEASE", "")
        #: Share of requests and jobs traced for performance (0: none, errors only).
        self.SENTRY_TRACES_SAMPLE_RATE = _float("SENTRY_TRACES_SAMPLE_RATE", 0.0)
        #: Report every failed attempt of a job, not only the one that leaves it dead.
        self.SENTRY_REPORT_RETRIES = _bool("SENTRY_REPORT_RETRIES", False)

        # Metrics (Prometheus)
        #: Where every process writes its samples (prometheus_client multiprocess mode); emptied
        #: when the whole stack starts. GET /metrics adds up every file in it.
        self.PROMETHEUS_MULTIPROC_DIR = _env("PROMETHEUS_MULTIPROC_DIR", "") or str(var / "metrics")
        #: Bearer token GET /metrics requires (empty: open; then keep /metrics off the internet).
        self.METRICS_TOKEN = _env("METRICS_TOKEN", "")

        # Logs
        #: json: one JSON object per line on stdout (production); text: readable lines (development).
        self.LOG_FORMAT = _env("LOG_FORMAT", "json")
        self.LOG_LEVEL = _env("LOG_LEVEL", "INFO").upper()

        # Worker runtime
        self.WORKER_TIME_LIMIT_SECONDS = _int("WORKER_TIME_LIMIT_SECONDS", 600)
        self.TESTING = False
        self.DEBUG = False


class TestConfig(Config):
    """Tests: everything explicit, nothing read from a developer's .env beyond the environment."""

    def __init__(self, **overrides: Any) -> None:
        super().__init__()
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
