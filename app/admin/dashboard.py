"""Dashboard: per-queue figures, workers alive, the live feed."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from app.admin import bp
from app.services import stats


@bp.get("/")
def dashboard() -> Any:
    queues = [q for q in stats.queue_stats() if q.waiting or q.delayed or q.running or q.retrying or q.dead]
    minutes = stats.with_live_minutes(stats.series("minute", 60))
    hours = stats.with_live_total("hour", stats.series("hour", 24), minutes)
    days = stats.with_live_total("day", stats.series("day", 30), hours)
    charts = [
        ("Last hour, per minute", minutes, "%H:%M"),
        ("Last 24 hours, per hour", hours, "%H:00"),
        ("Last 30 days, per day", days, "%m-%d"),
    ]
    template = "admin/_dashboard_live.html" if request.args.get("part") == "live" else "admin/dashboard.html"
    return render_template(template, queues=queues, workers_alive=stats.workers_alive(), charts=charts)
