"""Dashboard: figures at a glance, every queue with its depth over the hour, throughput
charts (drawn by uPlot from the data the live part carries) and per job type runtimes."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from app.admin import bp
from app.services import stats, workers

#: The chart ranges: (key, label, granularity, buckets).
RANGES = [
    ("hour", "Last hour", "minute", 60),
    ("day", "24 hours", "hour", 24),
    ("month", "30 days", "day", 30),
]


def _chart_data(series: list[dict[str, Any]]) -> dict[str, list[int]]:
    """uPlot's columns: bucket starts (epoch seconds), succeeded, failed."""
    return {
        "t": [int(b["start"].timestamp()) for b in series],
        "succeeded": [b["succeeded"] for b in series],
        "failed": [b["failed"] for b in series],
    }


def sparkline(points: list[int | None], width: int = 120, height: int = 24) -> str:
    """An SVG polyline's points for a depth history (gaps drawn as zero), scaled to its peak."""
    values = [p or 0 for p in points]
    top = max(values + [1])
    step = width / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - v / top * (height - 2) - 1:.1f}" for i, v in enumerate(values))


@bp.get("/")
def dashboard() -> Any:
    queues = stats.queue_stats()
    stats.record_depth(queues)
    depth = stats.depth_history([q.name for q in queues])
    minutes = stats.with_live_minutes(stats.series("minute", 60))
    hours = stats.with_live_total("hour", stats.series("hour", 24), minutes)
    days = stats.with_live_total("day", stats.series("day", 30), hours)
    charts = {"hour": _chart_data(minutes), "day": _chart_data(hours), "month": _chart_data(days)}
    totals = {
        "succeeded": sum(b["succeeded"] for b in minutes),
        "failed": sum(b["failed"] for b in minutes),
        "waiting": sum(q.waiting for q in queues),
        "running": sum(q.running for q in queues),
        "retrying": sum(q.retrying for q in queues),
        "dead": sum(q.dead for q in queues),
    }
    template = "admin/_dashboard_live.html" if request.args.get("part") == "live" else "admin/dashboard.html"
    return render_template(
        template,
        queues=queues,
        depth={name: (sparkline(points), max([p or 0 for p in points])) for name, points in depth.items()},
        workers_alive=workers.alive(),
        charts=charts,
        ranges=RANGES,
        totals=totals,
        types=stats.job_type_stats(),
    )
