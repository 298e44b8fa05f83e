"""Jobs and dead letters: search, detail, retry/cancel one, selected, or all matching."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app import jobtypes
from app.admin import admin_required, bp
from app.admin.forms import ActionForm
from app.extensions import db
from app.models import Job, JobStatus, Tenant
from app.services import jobs, pagination


def _parse_time(name: str, errors: list[str]) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        errors.append(f"{name.replace('_', ' ')}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM")
        return None
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _text_from_args(errors: list[str]) -> str | None:
    term = (request.args.get("text") or "").strip()
    if term and len(term) < jobs.TEXT_MIN:
        errors.append(f"text: at least {jobs.TEXT_MIN} characters")
        return None
    return term or None


def _filter_from_args(status: str | None = None) -> tuple[jobs.JobFilter, list[str]]:
    errors: list[str] = []
    arg_status = status or request.args.get("status") or None
    if arg_status and arg_status not in {s.value for s in JobStatus}:
        errors.append(f"status: unknown state {arg_status!r}")
        arg_status = None
    flt = jobs.JobFilter(
        all_tenants=True,
        tenant_id=request.args.get("tenant") or None,
        status=arg_status,
        job_type=request.args.get("type") or None,
        queue=request.args.get("queue") or None,
        created_from=_parse_time("created_from", errors),
        created_to=_parse_time("created_to", errors),
        id_prefix=(request.args.get("q") or "").strip() or None,
        text=_text_from_args(errors),
    )
    return flt, errors


def _list(template_status: str | None, title: str, endpoint: str) -> Any:
    flt, errors = _filter_from_args(template_status)
    for error in errors:
        flash(error, "error")
    query = jobs.filtered(select(Job), flt)
    try:
        page = pagination.newest_first(query, Job, cursor=request.args.get("cursor") or None, limit=50)
    except pagination.BadCursor:
        flash("That page link is no longer valid; showing the first page.", "error")
        page = pagination.newest_first(query, Job, cursor=None, limit=50)
    tenants = db.session.query(Tenant.id, Tenant.name).order_by(Tenant.name).all()
    return render_template(
        "admin/jobs/list.html",
        page=page,
        flt=flt,
        title=title,
        endpoint=endpoint,
        fixed_status=template_status,
        statuses=[s.value for s in JobStatus],
        job_types=sorted(jobtypes.load()),
        queues=jobtypes.all_queue_names(),
        tenants=tenants,
        tenant_names=dict(tenants),
        form=ActionForm(),
        args={k: v for k, v in request.args.items() if k != "cursor"},
    )


@bp.get("/jobs", endpoint="jobs")
def jobs_page() -> Any:
    return _list(None, "Jobs", "admin.jobs")


@bp.get("/dead")
def dead_letters() -> Any:
    return _list(JobStatus.DEAD.value, "Dead letters", "admin.dead_letters")


@bp.get("/jobs/<job_id>")
def job_detail(job_id: str) -> Any:
    job = db.session.get(Job, job_id)
    if job is None:
        abort(404, "No such job.")
    tenant = db.session.get(Tenant, job.tenant_id) if job.tenant_id else None
    return render_template("admin/jobs/detail.html", job=job, tenant=tenant, form=ActionForm())


@bp.get("/jobs/<job_id>/row")
def job_row(job_id: str) -> Any:
    """The job's row of the jobs table, for a row the live feed adds (drawn as the list draws it)."""
    job = db.session.get(Job, job_id)
    if job is None:
        abort(404, "No such job.")
    tenant_names = {}
    if job.tenant_id:
        tenant = db.session.get(Tenant, job.tenant_id)
        tenant_names = {tenant.id: tenant.name} if tenant else {}
    return render_template(
        "admin/jobs/row.html", job=job, tenant_names=tenant_names, selectable=request.args.get("select") == "1"
    )


@bp.post("/jobs/<job_id>/<action>")
@admin_required
def job_action(job_id: str, action: str) -> Any:
    if action not in {"retry", "cancel"} or not ActionForm().validate_on_submit():
        abort(400, "Unknown action or missing CSRF token.")
    job = db.session.get(Job, job_id)
    if job is None:
        abort(404, "No such job.")
    try:
        getattr(jobs, action)(job, actor=f"user:{current_user.email}")
        db.session.commit()
        flash(f"Job {action} requested.", "ok")
    except jobs.JobStateError as err:
        db.session.rollback()
        flash(str(err), "error")
    return redirect(url_for("admin.job_detail", job_id=job_id))


@bp.post("/jobs/bulk")
@admin_required
def jobs_bulk() -> Any:
    """Selected ids, or every job matching the current filter: runs as a `jobs.bulk` job."""
    form = ActionForm()
    action = request.form.get("action")
    if not form.validate_on_submit() or action not in {"retry", "cancel"}:
        abort(400, "Unknown action or missing CSRF token.")
    selected = request.form.getlist("job_id")
    payload: dict[str, Any] = {"action": action, "actor": f"user:{current_user.email}"}
    if request.form.get("scope") == "all":
        flt, errors = _filter_from_args(request.form.get("status") or None)
        if errors:
            for error in errors:
                flash(error, "error")
            return redirect(request.referrer or url_for("admin.jobs"))
        payload["filter"] = flt.as_dict()
    elif selected:
        payload["job_ids"] = selected
    else:
        flash("Select jobs first, or choose “all matching”.", "error")
        return redirect(request.referrer or url_for("admin.jobs"))
    bulk = jobs.submit("jobs.bulk", payload, priority="high")
    db.session.commit()
    flash(f"{bulk.id} {action}", "bulk")  # rendered as a progress bar the feed moves
    return redirect(request.referrer or url_for("admin.jobs"))
