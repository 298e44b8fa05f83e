"""Server-rendered admin pages at /admin: one blueprint, one routes module per area."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.admin.forms import ActionForm
from app.extensions import db

bp = Blueprint("admin", __name__, url_prefix="/admin")

#: Pages that need no login.
PUBLIC_ENDPOINTS = {"admin.login"}


@bp.before_request
def _require_login() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return redirect(url_for("admin.login", next=request.full_path))
    return None


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mutating routes: admins only; viewers get 403."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated or not current_user.is_admin:
            abort(403, "Your role is read-only.")
        return view(*args, **kwargs)

    return wrapper


def actor() -> str:
    """Who an admin action is audited as."""
    return f"user:{current_user.email}"


#: Rows per page on every admin list.
PAGE = 50


def paged(query: Any, model: Any) -> Any:
    """One page of a list, newest first, at the request's cursor (a stale cursor: the first page)."""
    from flask import flash

    from app.services import pagination

    try:
        return pagination.newest_first(query, model, cursor=request.args.get("cursor") or None, limit=PAGE)
    except pagination.BadCursor:
        flash("That page link is no longer valid; showing the first page.", "error")
        return pagination.newest_first(query, model, cursor=None, limit=PAGE)


def list_args() -> dict[str, str]:
    """The request's filters, for the next page's link."""
    return {k: v for k, v in request.args.items() if k != "cursor" and v}


def names(model: Any) -> dict[str, str]:
    """id -> name of every row of `model` (for the pages' tenant, router and plan columns)."""
    return dict(db.session.execute(select(model.id, model.name)).all())


def choice(name: str, allowed: tuple[str, ...]) -> str | None:
    """A filter from the query string, None (with a message) when it is not one of `allowed`."""
    value = request.args.get(name) or None
    if value not in (None, *allowed):
        flash(f"{name}: unknown value {value!r}", "error")
        return None
    return value


def checked_form() -> None:
    """A POST's CSRF token, or 400."""
    if not ActionForm().validate_on_submit():
        abort(400, "Missing CSRF token.")


def register(app: Flask) -> None:
    # Importing the area modules attaches their routes to bp.
    from app.admin import (  # noqa: F401
        audit,
        auth,
        dashboard,
        email,
        jobs,
        layout,
        payments,
        provisioning,
        retention,
        scans,
        schedules,
        tenants,
        users,
        webhooks,
        workers,
    )
    from app.services import alerts

    app.register_blueprint(bp)
    app.add_url_rule("/", "index", lambda: redirect(url_for("admin.dashboard")))
    app.jinja_env.filters.update(layout.FILTERS)
    app.context_processor(layout.layout_context)
    app.jinja_env.globals["long_wait_alerts"] = alerts.active  # templates/admin/_alerts.html
    workers.register_live()
