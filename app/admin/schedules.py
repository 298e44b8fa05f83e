"""Periodic schedules: each one's interval, next and last run; run now, pause and resume
(admins; audited). Every scheduler process honours what is decided here (app/services/scheduler.py)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, url_for

from app.admin import actor, admin_required, bp, checked_form
from app.services import scheduler


def _table() -> list[scheduler.Schedule]:
    return scheduler.table(current_app._get_current_object())  # type: ignore[attr-defined]


@bp.get("/schedules", endpoint="schedules")
def schedules_page() -> Any:
    return render_template("admin/schedules/index.html", views=scheduler.overview(_table()))


@bp.get("/schedules/<name>", endpoint="schedule_detail")
def schedule_detail(name: str) -> Any:
    views = [v for v in scheduler.overview(_table()) if v.schedule.name == name]
    if not views:
        abort(404, f"No schedule {name!r}.")
    return render_template("admin/schedules/detail.html", view=views[0], runs=scheduler.recent_runs(name))


@bp.post("/schedules/<name>/<action>", endpoint="schedule_action")
@admin_required
def schedule_action(name: str, action: str) -> Any:
    checked_form()
    known = [s.name for s in _table()]
    try:
        if action == "run":
            scheduler.request_run(name, actor=actor(), known=known)
            flash(f"{name}: asked to run now; the next scheduler to look runs it within seconds.", "ok")
        elif action in ("pause", "resume"):
            changed = scheduler.set_paused(name, action == "pause", actor=actor(), known=known)
            flash(f"{name} {'paused' if action == 'pause' else 'resumed'}." if changed else f"{name}: no change.", "ok")
        else:
            abort(404)
    except scheduler.UnknownSchedule:
        abort(404, f"No schedule {name!r}.")
    return redirect(url_for("admin.schedules"))
