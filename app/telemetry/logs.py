"""Logs: JSON lines on stdout, one per request and per job transition, each with the time, level,
request id (accepted from and returned as X-Request-ID), tenant, job id, actor and duration,
and never a secret: every format (json, text, and gunicorn's own lines: supervisor/gunicorn.conf.py)
passes the Sentry scrubber over each line.

Entry points call `configure` (wsgi.py, workers/__init__.py, workers/scheduler.py); the web
app binds the request context in `install`, the worker middleware the job context in `job`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

from app.telemetry import sentry

#: The context every line carries when it is set.
CONTEXT_FIELDS = ("request_id", "tenant", "job_id", "actor")
_context: ContextVar[dict[str, Any] | None] = ContextVar("opsdeck_log_context", default=None)
#: A client's X-Request-ID is kept when it looks like an id (else a new one is made).
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
#: LogRecord attributes that are not extra fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

access = logging.getLogger("opsdeck.access")


def bound() -> dict[str, Any]:
    return _context.get() or {}


def enter(**fields: Any) -> Token[dict[str, Any] | None]:
    """Add fields to every line logged from here (this thread or task) until `leave`."""
    return _context.set({**bound(), **{k: v for k, v in fields.items() if v is not None}})


def leave(token: Token[dict[str, Any] | None]) -> None:
    with contextlib.suppress(ValueError):  # set in another context: nothing to undo here
        _context.reset(token)


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields to every line logged inside the block (this thread or task only)."""
    token = _context.set({**bound(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, scrubber: sentry.Scrubber | None = None) -> None:
        super().__init__()
        self.scrubber = scrubber or sentry.Scrubber()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **bound(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(self.scrubber.scrub(line), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Development: one readable line, the context appended, the traceback after it; the whole
    of it scrubbed, as a JSON line is."""

    def __init__(self, scrubber: sentry.Scrubber | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.scrubber = scrubber or sentry.Scrubber()

    def format(self, record: logging.LogRecord) -> str:
        # Apart, so that a header's value running to the end of the message takes no context with it.
        text = self.scrubber.line(super().format(record))
        context = " ".join(f"{k}={v}" for k, v in bound().items())
        return f"{text} [{self.scrubber.text(context)}]" if context else text


def formatter(config: Any) -> JsonFormatter | TextFormatter:
    """The formatter LOG_FORMAT names (json, or else text), scrubbing the configured secrets too."""
    scrubber = sentry.Scrubber(sentry.config_secrets(config))
    return JsonFormatter(scrubber) if config.get("LOG_FORMAT", "json") == "json" else TextFormatter(scrubber)


class LineHandler(logging.StreamHandler):
    """A StreamHandler that builds its line before taking the handler's lock and holds the lock
    only to write it. The stdlib formats under the lock: with a JSON line and its scrubbing to
    build, a worker's threads queued there (a fifth of their time at 200 jobs/s)."""

    def handle(self, record: logging.LogRecord) -> Any:
        rv = self.filter(record)
        if rv:
            self.emit(rv if isinstance(rv, logging.LogRecord) else record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(line)
                self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _plain_std(handler: logging.Handler) -> bool:
    """A basicConfig handler on stdout or stderr, such as the one `dramatiq` installs in each
    worker process before importing ours: kept, it wrote every line twice, once unscrubbed."""
    std = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    return type(handler) is logging.StreamHandler and any(handler.stream is s for s in std)


def configure(config: Any) -> None:
    """Root logging for a process: LOG_FORMAT json (default) or text, at LOG_LEVEL, on stdout.
    Idempotent (the handler is replaced, not added twice)."""
    handler = LineHandler(sys.stdout)
    handler.set_name("opsdeck")
    handler.setFormatter(formatter(config))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "opsdeck" or _plain_std(h)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.get("LOG_LEVEL", "INFO"))
    # No line carries the caller's file and line, so logging need not walk the stack to find
    # them for every record (the logging HOWTO's "Optimization").
    logging._srcfile = None


def install(app: Flask) -> None:
    """Request ids and one access line per request (method, path, status, duration, tenant)."""

    @app.before_request
    def _start() -> None:
        offered = request.headers.get("X-Request-ID", "")
        g.request_id = offered if REQUEST_ID.match(offered) else uuid.uuid4().hex
        g.request_started = time.perf_counter()
        g.log_context = _context.set({**bound(), "request_id": g.request_id})

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is None:
            return response
        response.headers["X-Request-ID"] = request_id
        duration = (time.perf_counter() - g.request_started) * 1000
        with bind(tenant=g.get("tenant_id")):
            access.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "endpoint": request.endpoint,
                    "duration_ms": round(duration, 2),
                },
            )
        return response

    @app.teardown_request
    def _unbind(_: BaseException | None = None) -> None:
        token = g.pop("log_context", None)
        if token is not None:
            with contextlib.suppress(ValueError):  # set in another context (a copied one): nothing to undo
                _context.reset(token)
