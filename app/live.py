"""The live feed: Socket.IO namespace /admin.

Web processes accept connections (authenticated, active operators only) and join them to one
room; any process publishes with `publish()`. Web processes emit through their SocketIO
(which fans out through Redis); workers and the scheduler through a write-only SocketIO on
the same message queue (app/broker/connection.py), so any number of processes share one feed.

Every event has one shape: {"id", "type", "occurred_at", "tenant_id", "subject", "data"}.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import Counter
from typing import Any

from flask import Flask, current_app, session
from flask_login import current_user
from flask_socketio import SocketIO, join_room
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app.extensions import db, queue, socketio
from app.models.base import utcnow

log = logging.getLogger(__name__)

NAMESPACE = "/admin"
FEED_ROOM = "feed"
#: The newest events, kept in Redis for the feed panel of a freshly loaded page.
RECENT_KEY = "opsdeck:live:recent"
RECENT_SIZE = 50
#: Events that move the dashboard's figures but are not feed items (nor kept in RECENT_KEY).
FIGURES_ONLY = frozenset({"jobs.throughput"})
_SESSION_SIDS = "opsdeck:live:session:{}"
_USER_SIDS = "opsdeck:live:user:{}"


def event(
    event_type: str, *, subject: str, data: dict[str, Any] | None = None, tenant_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": utcnow().isoformat(),
        "tenant_id": tenant_id,
        "subject": subject,
        "data": data or {},
    }


def _emitter() -> Any:
    return current_app.extensions.get("opsdeck_live_emitter") or socketio


def publish(
    event_type: str, *, subject: str, data: dict[str, Any] | None = None, tenant_id: str | None = None
) -> dict[str, Any]:
    """Send an event to every connected operator. Never raises: the feed is best-effort and
    must not fail the work it reports on."""
    payload = event(event_type, subject=subject, data=data, tenant_id=tenant_id)
    try:
        _emitter().emit(event_type, payload, namespace=NAMESPACE, to=FEED_ROOM)
        if event_type in FIGURES_ONLY:
            return payload
        pipe = queue.redis.pipeline()
        pipe.lpush(RECENT_KEY, json.dumps(payload))
        pipe.ltrim(RECENT_KEY, 0, RECENT_SIZE - 1)
        pipe.execute()
    except Exception as err:
        log.warning("live event %s not published: %s", event_type, err)
    return payload


_PENDING = "opsdeck_live_pending"


def publish_after_commit(
    event_type: str, *, subject: str, data: dict[str, Any] | None = None, tenant_id: str | None = None
) -> None:
    """Publish once the current database transaction commits; dropped on rollback. For code
    inside a transaction its caller commits (a view under `write`, a scheduler sweep)."""
    session = db.session()
    if not session.in_transaction():
        session.begin()  # so that a rollback ends something, and drops the event with it
    session.info.setdefault(_PENDING, []).append((event_type, subject, data, tenant_id))


def install(session_class: Any = Session) -> None:
    """Hook publish_after_commit into SQLAlchemy sessions (idempotent)."""
    if sa_event.contains(session_class, "after_commit", _after_commit):
        return
    sa_event.listen(session_class, "after_commit", _after_commit)
    sa_event.listen(session_class, "after_transaction_end", _after_transaction_end)


def _after_commit(session: Session) -> None:
    for event_type, subject, data, tenant_id in session.info.pop(_PENDING, ()):
        publish(event_type, subject=subject, data=data, tenant_id=tenant_id)


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the whole transaction ended without a commit (or after one)
        session.info.pop(_PENDING, None)


def recent(limit: int = 20) -> list[dict[str, Any]]:
    try:
        return [json.loads(item) for item in queue.redis.lrange(RECENT_KEY, 0, limit - 1)]
    except Exception:
        return []


def listen_now() -> None:
    """In a web process (gunicorn's post_worker_init): subscribe to the feed's Redis channel now.
    python-socketio does it at the first client's connect, in a background thread, so an
    event published while that subscription was being made never reached the process."""
    server = socketio.server
    if server is not None and not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()


def init_publisher(app: Flask) -> None:
    """In a worker or scheduler process: emit through a write-only SocketIO on Redis."""
    from app.broker import connection

    emitter = SocketIO()
    emitter.init_app(None, client_manager=connection.live_queue(app.config, write_only=True))
    app.extensions["opsdeck_live_emitter"] = emitter


class ThroughputCounter:
    """Counts high-volume transitions and publishes them once a second (`jobs.throughput`),
    instead of one event per succeeded job. The dashboard reads it to refresh its figures; the
    feed does not list it."""

    def __init__(self, app: Flask, interval: float = 1.0) -> None:
        self.app, self.interval = app, interval
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, outcome: str, job_type: str) -> None:
        with self._lock:
            self._counts[(outcome, job_type)] += 1

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="opsdeck-live-throughput", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return
        data: dict[str, Any] = {"interval_seconds": self.interval, "by_type": {}}
        for (outcome, job_type), n in counts.items():
            data[outcome] = data.get(outcome, 0) + n
            data["by_type"].setdefault(job_type, {})[outcome] = n
        with self.app.app_context():
            try:  # counted before it is announced: a page refreshed on the event sees it
                from app.services import stats

                stats.count({"succeeded": data.get("succeeded", 0), "failed": data.get("failed", 0)})
            except Exception as err:  # Redis down: the live feed and counters pause, jobs go on
                log.warning("throughput not counted: %s", err)
            publish("jobs.throughput", subject="jobs", data=data)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:
                log.exception("throughput flush failed")


# -- the namespace (web processes) -------------------------------------------------
def _remember(sid: str) -> None:
    token = session.get("live_token")
    try:
        pipe = queue.redis.pipeline()
        for key in (_SESSION_SIDS.format(token), _USER_SIDS.format(current_user.id)):
            pipe.sadd(key, sid)
            pipe.expire(key, 86400)
        pipe.execute()
    except Exception as err:
        log.warning("live: could not record connection %s: %s", sid, err)


def on_connect(auth: Any = None) -> bool:
    """Only an authenticated, active operator may connect."""
    if not current_user.is_authenticated or not current_user.is_active or not session.get("live_token"):
        return False
    from flask import request

    join_room(FEED_ROOM)
    _remember(request.sid)  # type: ignore[attr-defined]
    return True


def on_disconnect(reason: Any = None) -> None:
    from flask import request

    sid = request.sid  # type: ignore[attr-defined]
    try:
        token = session.get("live_token")
        pipe = queue.redis.pipeline()
        if token:
            pipe.srem(_SESSION_SIDS.format(token), sid)
        if current_user.is_authenticated:
            pipe.srem(_USER_SIDS.format(current_user.id), sid)
        pipe.execute()
    except Exception:
        pass


def _kick(key: str) -> int:
    """Disconnect every connection recorded under `key`, in whichever web process holds it."""
    try:
        sids = [s.decode() for s in queue.redis.smembers(key)]
        queue.redis.delete(key)
    except Exception as err:
        log.warning("live: could not read connections to end: %s", err)
        return 0
    for sid in sids:
        socketio.server.disconnect(sid, namespace=NAMESPACE)
    return len(sids)


def end_session(token: str | None) -> int:
    """At logout: that browser session's connections stop receiving events."""
    return _kick(_SESSION_SIDS.format(token)) if token else 0


def end_user(user_id: int) -> int:
    """At deactivation: every connection of that user."""
    return _kick(_USER_SIDS.format(user_id))


def register(app: Flask) -> None:
    socketio.on_event("connect", on_connect, namespace=NAMESPACE)
    socketio.on_event("disconnect", on_disconnect, namespace=NAMESPACE)
