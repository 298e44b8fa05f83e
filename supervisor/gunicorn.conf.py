"""gunicorn settings for the web program: `gunicorn -c supervisor/gunicorn.conf.py --bind … wsgi:app`
(supervisor/opsdeck.conf; the tests and benchmarks start the same command).

- gthread workers: one process per core (`WEB_CONCURRENCY`, default 2), `WEB_THREADS` threads
  each (default 32). Several processes need no sticky sessions: the admin page's live feed
  connects over WebSocket only, and Socket.IO's Redis queue reaches every process.
- post_worker_init: each process subscribes to the live feed's Redis channel as it boots,
  not when its first operator connects (an event published meanwhile would be lost), and
  opens its first database and Redis connections (app/db/warmup.py) before it takes requests.
- child_exit: when a worker exits, prometheus_client's multiprocess mode removes its
  per-process gauge files (docs/operations.md, Metrics). Its counters stay in the directory: a total must
  not drop because one process restarted.
- logger_class: gunicorn's own lines in LOG_FORMAT, scrubbed like every other line (docs/operations.md, Logs).
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn import glogging

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(os.environ.get("WEB_THREADS") or 32)
graceful_timeout = 30


class ScrubbedLogger(glogging.Logger):
    """gunicorn's error log, and its access log when a deployment turns one on (--access-logfile),
    written in LOG_FORMAT through app.telemetry.logs' formatter, wherever gunicorn sends them. Both can hold
    a secret: the error log names the target of a request that failed (and, at debug level, of
    every request), which may be an M-Pesa callback URL with its token; an access log format may
    print request headers. Those header atoms are scrubbed by name too: a bare Opsdeck-Signature
    value has no shape the text patterns would know."""

    def setup(self, cfg: Any) -> None:
        from app.config import Config
        from app.telemetry import logs

        super().setup(cfg)  # gunicorn's handlers, where the settings send its lines
        formatter = logs.formatter(vars(Config()))
        self.scrubber = formatter.scrubber
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        return self.scrubber.scrub(super().atoms(resp, req, environ, request_time))


logger_class = ScrubbedLogger


def post_worker_init(worker: Any) -> None:
    from app import live
    from app.db import warmup

    live.listen_now()
    warmup.warm(worker.wsgi)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    from app.config import Config

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Config().PROMETHEUS_MULTIPROC_DIR
    if os.path.isdir(path):
        multiprocess.mark_process_dead(worker.pid, path)
