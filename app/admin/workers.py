"""Worker processes: each one's heartbeat, what it runs now, silent ones; live (pushed to the
page's own Socket.IO room, `workers`)."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_login import current_user
from flask_socketio import join_room

from app.admin import bp
from app.live import NAMESPACE
from app.services import workers


@bp.get("/workers", endpoint="workers")
def workers_page() -> Any:
    try:
        found, problem = workers.processes(), None
    except Exception as err:  # Redis away: the page says so instead of failing
        found, problem = [], f"Heartbeats unavailable: {type(err).__name__}"
    return render_template("admin/workers/index.html", processes=found, problem=problem)


def on_watch(room: Any = None) -> bool:
    """A page asks for its room's pushes; only the workers room exists, for operators only."""
    if room != workers.ROOM or not current_user.is_authenticated or not current_user.is_active:
        return False
    join_room(workers.ROOM)
    return True


def register_live() -> None:
    from app.extensions import socketio

    socketio.on_event("watch", on_watch, namespace=NAMESPACE)
