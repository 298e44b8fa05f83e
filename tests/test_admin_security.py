"""Every admin POST, found in the URL map: refused to viewers (403) and without a CSRF token
(400), and nothing changes either way. A new POST route is covered the day it is added."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry
from tests.helpers import csrf_token

#: POSTs any logged-in user may make (logout) or that come before login.
OPEN_TO_ALL = {"admin.login", "admin.logout"}


def admin_posts(app: Flask) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if (
            rule.endpoint.startswith("admin.")
            and "POST" in (rule.methods or set())
            and rule.endpoint not in OPEN_TO_ALL
        ):
            urls.append(re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"x-\1", re.sub(r"<int:[a-z_]+>", "1", rule.rule)))
    return sorted(urls)


def audit_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_viewers_are_refused_every_admin_post(app, viewer):
    urls = admin_posts(app)
    assert len(urls) >= 20
    token = csrf_token(viewer.get("/admin/").text)
    before = audit_count()
    for url in urls:
        answer = viewer.post(url, data={"csrf_token": token, "reason": "x", "count": "1"})
        assert answer.status_code == 403, (url, answer.status_code)
    assert audit_count() == before


def test_every_admin_post_needs_its_csrf_token(app, admin):
    before = audit_count()
    for url in admin_posts(app):
        answer = admin.post(url, data={"reason": "x"})
        assert answer.status_code == 400, (url, answer.status_code)
        assert "CSRF" in answer.get_data(as_text=True), url
    assert audit_count() == before
