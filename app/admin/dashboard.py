"""Dashboard: per-queue figures, workers alive, the live feed."""

from __future__ import annotations

from typing import Any

from flask import render_template

from app.admin import bp
from app.services import stats


@bp.get("/")
def dashboard() -> Any:
    queues = [q for q in stats.queue_stats() if q.waiting or q.delayed or q.running or q.retrying or q.dead]
    return render_template(
        "admin/dashboard.html", queues=queues, all_queues=stats.queue_stats, workers_alive=stats.workers_alive()
    )
