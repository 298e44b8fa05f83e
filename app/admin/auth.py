"""Login and logout. Failed logins are throttled per account and per IP (Flask-Limiter on Redis)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app import live
from app.admin import bp
from app.admin.forms import ActionForm, LoginForm
from app.extensions import db, limiter
from app.extensions import login as login_manager
from app.services import audit, users


@login_manager.user_loader
def load_user(user_id: str) -> Any:
    return users.load_session_user(user_id)


login_manager.login_view = "admin.login"


def _failed(response: Any) -> bool:
    """Only failed attempts count against the limits (a success redirects)."""
    return response.status_code != 302


def _account_key() -> str:
    return "login-account:" + request.form.get("email", "").strip().lower()


def _ip_key() -> str:
    return "login-ip:" + (request.remote_addr or "unknown")


def _safe_next(target: str | None) -> str:
    if target and urlsplit(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["ADMIN_LOGIN_LIMIT_PER_ACCOUNT"],
    key_func=_account_key,
    methods=["POST"],
    deduct_when=_failed,
)
@limiter.limit(
    lambda: current_app.config["ADMIN_LOGIN_LIMIT_PER_IP"], key_func=_ip_key, methods=["POST"], deduct_when=_failed
)
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            session.clear()  # no session fixation: a fresh session at login
            login_user(user)
            session["live_token"] = secrets.token_urlsafe(16)
            users.record_login(user, ip=request.remote_addr)
            return redirect(_safe_next(request.args.get("next")))
        audit.record(f"user:{(form.email.data or '').lower()}", "user.login_failed", ip=request.remote_addr)
        db.session.commit()
        flash("Wrong email or password.", "error")
    return render_template("admin/login.html", form=form), 200


@bp.post("/logout")
def logout() -> Any:
    if ActionForm().validate_on_submit():
        live.end_session(session.get("live_token"))
        logout_user()
        session.clear()
    return redirect(url_for("admin.login"))
