"""Pay a process's first-use costs at boot, before it takes traffic.

A process that has just started would otherwise do, on its first requests, what it never does
again: configure every SQLAlchemy mapper (under a global lock), import the SQL dialect modules
behind `statements.dialect_insert` (under the import lock), and open each thread's database
connection and the first Redis connection; requests arriving meanwhile wait for all of it in
turn. The mappers are configured and the dialects imported when the app is built (nothing is
opened, so a later fork is harmless); `warm` opens connections, and runs where each process
starts: gunicorn's post_worker_init and the workers' before_worker_boot.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack

from flask import Flask
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from app.extensions import db, queue

log = logging.getLogger("opsdeck.warmup")

#: The longest a boot waits for the warm-up. A database or Redis that does not answer (a
#: partition rather than a refusal) costs connect timeouts and redis-py's retries, which
#: would outlast gunicorn's worker timeout and have the arbiter kill the booting process.
DEADLINE_SECONDS = 5.0


def warm(app: Flask, deadline: float = DEADLINE_SECONDS) -> bool:
    """Open `DATABASE_WARM_CONNECTIONS` database connections at once (they go back to the pool,
    which keeps them) and this process's first Redis connection, waiting at most `deadline`
    seconds; True when done in time. A database or Redis that is down is logged, not raised:
    the process starts anyway, and its requests open connections when they can."""
    worker = threading.Thread(target=_open, args=(app,), name="opsdeck-warmup", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        log.warning("warm-up: still waiting for the database or Redis after %.0f s; starting anyway", deadline)
        return False
    return True


def _open(app: Flask) -> None:
    with app.app_context():
        pool = db.engine.pool
        kept = pool.size() if isinstance(pool, QueuePool) else 1  # never more than the pool keeps
        wanted = min(app.config["DATABASE_WARM_CONNECTIONS"], kept)
        try:
            with ExitStack() as held:  # all at once, so the pool opens `wanted`, not one reused
                for _ in range(max(0, wanted)):
                    connection = held.enter_context(db.engine.connect())
                    connection.execute(text("SELECT 1"))
                    connection.rollback()
        except Exception as err:
            log.warning("warm-up: database connections not opened: %s", err, exc_info=True)
        try:
            queue.redis.ping()
        except Exception as err:
            log.warning("warm-up: no Redis connection yet: %s", err, exc_info=True)
