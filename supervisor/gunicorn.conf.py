"""gunicorn settings for the web programs (`gunicorn -c supervisor/gunicorn.conf.py … wsgi:app`).

Only the hook prometheus_client's multiprocess mode asks for: when a gunicorn worker exits,
its per-process gauge files are removed (README: Metrics). Its counters stay in the directory:
a total must not drop because one process restarted.
"""

from __future__ import annotations

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    from app.config import Config

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Config().PROMETHEUS_MULTIPROC_DIR
    if os.path.isdir(path):
        multiprocess.mark_process_dead(worker.pid, path)
