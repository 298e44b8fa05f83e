"""Opsdeck: background operations for platforms. `create_app` is the only way in."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, render_template_string, request
from werkzeug.exceptions import HTTPException

from app.config import ROOT, Config


def create_app(config: Any = None) -> Flask:
    """Build the app. `config` is a Config instance (default: Config from the environment)."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    app.config.from_object(config or Config())
    _check_secrets(app)

    from app.extensions import db, migrate, queue, socketio

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    queue.init_app(app)
    socketio.init_app(app, async_mode="threading")

    from app import jobtypes, models  # noqa: F401  (registers models and job types)
    from app.services import outbox

    jobtypes.load()
    outbox.install()

    from app import api, cli, health

    api.register(app)
    app.register_blueprint(health.bp)
    cli.register(app)
    _register_error_handlers(app)
    return app


def _check_secrets(app: Flask) -> None:
    if app.config.get("TESTING") or app.config.get("OPSDECK_ENV") == "development":
        return
    missing = [name for name in ("SECRET_KEY", "OPSDECK_ENCRYPTION_KEYS") if not app.config.get(name)]
    if missing:
        raise RuntimeError(f"refusing to start without {', '.join(missing)} (see README: Configuration)")


_HTML_ERROR = "<!doctype html><title>{{ code }} {{ name }}</title><h1>{{ code }} {{ name }}</h1><p>{{ text }}</p>"


def _register_error_handlers(app: Flask) -> None:
    from app.api.errors import ApiProblem
    from app.extensions import db

    def wants_problem() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response | tuple[str, int]:
        if wants_problem():
            return ApiProblem(err.code or 500, err.name, err.description).response()
        return render_template_string(_HTML_ERROR, code=err.code, name=err.name, text=err.description), err.code or 500

    @app.errorhandler(Exception)
    def server_error(err: Exception) -> Response | tuple[str, int]:
        db.session.rollback()
        logging.getLogger("opsdeck").exception("unhandled error on %s %s", request.method, request.path)
        if wants_problem():
            return ApiProblem(500, "Internal server error", "The error was logged.").response()
        return render_template_string(
            _HTML_ERROR, code=500, name="Internal server error", text="The error was logged."
        ), 500
