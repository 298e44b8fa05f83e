"""Operators: list, create, change role, deactivate and reactivate. Admins only act; the
last active admin can neither be demoted nor deactivated."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from app.admin import actor, admin_required, bp
from app.admin.forms import ActionForm, UserForm
from app.extensions import db
from app.models import User
from app.services import users


@bp.get("/users", endpoint="users")
def users_page() -> Any:
    return render_template("admin/users/list.html", users=users.list_users(), form=UserForm(), action=ActionForm())


@bp.post("/users")
@admin_required
def user_create() -> Any:
    form = UserForm()
    if not form.validate_on_submit():
        for field, messages in form.errors.items():
            flash(f"{field.replace('_', ' ')}: {'; '.join(messages)}", "error")
        return redirect(url_for("admin.users"))
    try:
        user = users.create_user(form.email.data or "", form.password.data or "", form.role.data, actor=actor())
    except users.UserError as err:
        flash(str(err).capitalize() + ".", "error")
    else:
        flash(f"Created {user.role} {user.email}.", "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/<action>")
@admin_required
def user_action(user_id: int, action: str) -> Any:
    user = db.session.get(User, user_id)
    if user is None or action not in {"activate", "deactivate", "role"} or not ActionForm().validate_on_submit():
        abort(400, "Unknown user or action, or missing CSRF token.")
    try:
        if action == "role":
            users.set_role(user, request.form.get("role", ""), actor=actor())
            flash(f"{user.email} is now {user.role}.", "ok")
        else:
            users.set_active(user, action == "activate", actor=actor())
            flash(f"{user.email} {'activated' if user.active else 'deactivated; their sessions have ended'}.", "ok")
    except users.UserError as err:
        db.session.rollback()
        flash(str(err).capitalize() + ".", "error")
    return redirect(url_for("admin.users"))
