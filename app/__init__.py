"""Opsdeck: background operations for platforms. `create_app` is the only way in."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, render_template_string, request
from sqlalchemy.orm import configure_mappers
from werkzeug.exceptions import HTTPException

from app.config import ROOT, Config
from app.telemetry import logs, metrics, sentry, tracing


def create_app(config: Any = None) -> Flask:
    """Build the app. `config` is a Config instance (default: Config from the environment)."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder="static")
    app.config.from_object(config or Config())
    sentry.init_sentry(app.config)  # before the broker exists: Sentry patches Broker.__init__
    metrics.init_app(app)  # before anything counts: points prometheus_client at PROMETHEUS_MULTIPROC_DIR
    tracing.init_app(app)  # before the engine exists: engines are instrumented as they are made
    _check_secrets(app)
    from app.services.scans import precheck

    precheck.check_allowed(app.config["SCAN_ALLOWED_EXTENSIONS"])

    from app.extensions import csrf, db, limiter, login, migrate, queue, socketio

    db.init_app(app)
    from app.db import postgres, sqlite

    with app.app_context():
        sqlite.install(db.engine)
        postgres.install(db.engine, app.config["DATABASE_PING_AFTER_SECONDS"])
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    queue.init_app(app)
    from app.broker import connection

    # Every web process accepts connections; events from any process arrive through Redis.
    socketio.init_app(app, async_mode="threading", client_manager=connection.live_queue(app.config))
    login.init_app(app)
    csrf.init_app(app)
    # Flask-Limiter counts on the queue's connection pool: the same Redis, followed through a failover.
    app.config.setdefault("RATELIMIT_STORAGE_URI", "redis://")
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"connection_pool": queue.redis.connection_pool})
    limiter.init_app(app)

    from app import jobtypes, models  # noqa: F401  (registers models and job types)
    from app.services import alerts  # noqa: F401  (declares its service events: webhooks.events.SERVICE_EVENTS)
    from app.services.jobs import outbox

    jobtypes.load()
    outbox.install()
    configure_mappers()  # now, not on the process's first query (app/db/warmup.py)

    from app import admin, api, cli, health, live, public

    live.install()
    from app.services import audit

    api.register(app)
    app.request_class = api.scans.UploadRequest  # scan uploads are parsed straight into storage
    csrf.exempt(api.bp)  # the API is authenticated by signatures, not cookies
    admin.register(app)
    live.register(app)
    public.register(app)
    app.register_blueprint(health.bp)
    cli.register(app)
    _register_error_handlers(app)
    app.after_request(_security_headers)
    app.before_request(lambda: audit.set_origin(request.remote_addr))
    logs.install(app)
    return app


#: No CDN, no inline script or style: everything is served by Opsdeck itself.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _check_secrets(app: Flask) -> None:
    if app.config.get("TESTING") or app.config.get("OPSDECK_ENV") == "development":
        if not app.config.get("SECRET_KEY"):  # development without .env: sessions last a process
            import secrets

            app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
        return
    missing = [name for name in ("SECRET_KEY", "OPSDECK_ENCRYPTION_KEYS") if not app.config.get(name)]
    if missing:
        raise RuntimeError(f"refusing to start without {', '.join(missing)} (see docs/configuration.md)")


_HTML_ERROR = "<!doctype html><title>{{ code }} {{ name }}</title><h1>{{ code }} {{ name }}</h1><p>{{ text }}</p>"


def _register_error_handlers(app: Flask) -> None:
    from app.api.errors import ApiProblem, from_http
    from app.extensions import db

    def wants_problem() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response | tuple[str, int, dict[str, str]]:
        problem = from_http(err)
        if wants_problem():
            return problem.response()
        page = render_template_string(_HTML_ERROR, code=err.code, name=err.name, text=err.description)
        return page, problem.status, problem.headers

    @app.errorhandler(Exception)
    def server_error(err: Exception) -> Response | tuple[str, int]:
        db.session.rollback()
        logging.getLogger("opsdeck").exception("unhandled error on %s %s", request.method, request.path)
        if wants_problem():
            return ApiProblem(500, "Internal server error", "The error was logged.").response()
        return render_template_string(
            _HTML_ERROR, code=500, name="Internal server error", text="The error was logged."
        ), 500
