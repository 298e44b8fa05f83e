"""The retention admin page: policies edited (audited), a run or dry run queued as a job, run
history, legal holds placed and released; viewers read only."""

from __future__ import annotations

from app.extensions import db
from app.models import AuditEntry, Job, LegalHold, RetentionPolicy
from app.services import retention
from tests.helpers import post


def test_policies_runs_and_holds(app, admin, tenant):
    page = admin.get("/admin/retention")
    assert page.status_code == 200 and "jobs_succeeded" in page.text and 'href="/admin/retention"' in page.text
    assert post(admin, "/admin/retention/policies/jobs_failed", {"days": "14", "batch_size": "1000"}).status_code == 302
    db.session.expire_all()
    policy = db.session.get(RetentionPolicy, "jobs_failed")
    assert (policy.days, policy.batch_size, policy.enabled) == (14, 1000, False)  # unchecked box: off
    post(admin, "/admin/retention/policies/jobs_failed", {"days": "x", "batch_size": "1"})
    db.session.expire_all()
    assert db.session.get(RetentionPolicy, "jobs_failed").days == 14

    assert post(admin, "/admin/retention/run", {"dry_run": "1"}).status_code == 302
    (job,) = db.session.query(Job).filter_by(type="retention.run").all()
    assert job.payload["dry_run"] is True and job.payload["triggered_by"] == "user:admin@example.com"
    retention.run(dry_run=True, triggered_by="test")
    assert "(dry)" in admin.get("/admin/retention").text

    post(admin, "/admin/retention/holds", {"tenant": tenant.tenant_id, "reason": "subpoena"})
    hold = db.session.query(LegalHold).one()
    assert hold.reason == "subpoena" and "subpoena" in admin.get("/admin/retention").text
    post(admin, f"/admin/retention/holds/{hold.id}/release")
    assert db.session.query(LegalHold).count() == 0
    actions = {e.action for e in db.session.query(AuditEntry)}
    assert {"retention.policy", "retention.hold", "retention.release"} <= actions


def test_viewers_see_retention_but_change_nothing(app, viewer, tenant):
    assert viewer.get("/admin/retention").status_code == 200
    assert 'name="days"' not in viewer.get("/admin/retention").text
    for url, data in [
        ("/admin/retention/policies/audit_log", {"days": "1", "batch_size": "1"}),
        ("/admin/retention/run", {}),
        ("/admin/retention/holds", {"tenant": tenant.tenant_id, "reason": "x"}),
    ]:
        assert post(viewer, url, data).status_code == 403, url
    assert db.session.query(Job).count() == 0 and db.session.query(LegalHold).count() == 0
