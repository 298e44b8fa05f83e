"""Unhandled errors: a 500 leaves no half-written row, and its body is problem+json for the API and
HTML for pages, without a stack trace."""

from __future__ import annotations

from app.extensions import db
from app.models import Tenant


def _add_failing_routes(app) -> None:
    def half_written() -> None:
        db.session.add(Tenant(name="half-written"))
        db.session.flush()  # the row is in the transaction when the error happens
        raise RuntimeError("boom: secret detail")

    app.add_url_rule("/api/v1/_boom", "api_boom", half_written)
    app.add_url_rule("/admin-boom", "page_boom", half_written)


def test_a_500_leaves_no_half_written_row_and_no_detail(app):
    _add_failing_routes(app)
    client = app.test_client()

    api = client.get("/api/v1/_boom")
    assert api.status_code == 500 and api.mimetype == "application/problem+json"
    assert api.json["status"] == 500 and "boom" not in api.text and "Traceback" not in api.text

    page = client.get("/admin-boom")
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "boom" not in page.text and "Traceback" not in page.text

    db.session.rollback()
    assert db.session.query(Tenant).filter_by(name="half-written").count() == 0
