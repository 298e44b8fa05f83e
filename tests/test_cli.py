"""The flask commands operators use."""

from __future__ import annotations

import json

from app.extensions import db
from app.models import ApiKey, AuditEntry, Job, User
from app.services import users
from tests.helpers import submit


def test_tenants_create_json_prints_the_secret_once(app):
    result = app.test_cli_runner().invoke(args=["tenants", "create", "initech", "--json"])
    assert result.exit_code == 0, result.output
    issued = json.loads(result.output)
    assert set(issued) == {"tenant_id", "key_id", "secret"}
    key = db.session.get(ApiKey, issued["key_id"])
    assert key.tenant_id == issued["tenant_id"] and issued["secret"].encode() not in key.secret_encrypted
    again = app.test_cli_runner().invoke(args=["tenants", "create", "initech"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_tenants_rotate_key_retires_the_old_one(app, tenant):
    result = app.test_cli_runner().invoke(args=["tenants", "rotate-key", "acme", "--json"])
    assert result.exit_code == 0, result.output
    new = json.loads(result.output)
    assert db.session.get(ApiKey, tenant.key_id).expires_at is not None  # after the default grace
    assert db.session.get(ApiKey, new["key_id"]).active
    result = app.test_cli_runner().invoke(args=["tenants", "rotate-key", "acme", "--grace-hours", "0"])
    assert result.exit_code == 0, result.output
    assert not db.session.get(ApiKey, new["key_id"]).active


def test_users_create_with_password_on_stdin(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "Ops@Example.com", "--role", "admin", "--password-stdin"],
        input="correct horse battery\n",
    )
    assert result.exit_code == 0, result.output
    user = db.session.query(User).one()
    assert user.email == "ops@example.com" and user.role == "admin"
    assert user.password_hash.startswith("$argon2id$")
    assert users.verify_password(user, "correct horse battery")
    assert not users.verify_password(user, "wrong")
    short = runner.invoke(args=["users", "create", "b@example.com", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 10" in short.output


def test_jobs_cancel_retry_and_retry_dead(app):
    runner = app.test_cli_runner()
    job_id = submit(payload={"message": "x"})
    assert runner.invoke(args=["jobs", "cancel", job_id]).exit_code == 0
    assert db.session.get(Job, job_id).status == "cancelled"
    assert runner.invoke(args=["jobs", "cancel", job_id]).exit_code != 0
    assert runner.invoke(args=["jobs", "retry", job_id]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Job, job_id).status in {"pending", "queued"}
    db.session.get(Job, job_id).status = "dead"
    db.session.commit()
    result = runner.invoke(args=["jobs", "retry-dead"])
    assert "retrying 1 dead job(s)" in result.output
    db.session.expire_all()
    assert db.session.get(Job, job_id).status in {"pending", "queued"} and db.session.get(Job, job_id).attempts == 0
    listing = runner.invoke(args=["jobs", "list"])
    assert job_id in listing.output
    actions = [a.action for a in db.session.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions == ["job.cancel", "job.retry", "job.bulk_retry"]  # retry-dead is one bulk action


def test_users_deactivate_and_activate(app):
    runner = app.test_cli_runner()
    users.create_user("ops@example.com", "correct horse battery", "viewer")
    assert "deactivated ops@example.com" in runner.invoke(args=["users", "deactivate", "ops@example.com"]).output
    user = users.find("ops@example.com")
    assert not user.active and user.session_version == 2
    assert "activated ops@example.com" in runner.invoke(args=["users", "activate", "OPS@example.com"]).output
    assert runner.invoke(args=["users", "deactivate", "nobody@example.com"]).exit_code != 0


def test_tenant_contact_is_set_and_cleared(app):
    from app.services import tenants

    runner = app.test_cli_runner()
    assert runner.invoke(args=["tenants", "create", "initech", "--contact", "Ops@Initech.example"]).exit_code == 0
    assert tenants.find_tenant("initech").contact_email == "ops@initech.example"
    assert runner.invoke(args=["tenants", "set-contact", "initech", "not-an-address"]).exit_code != 0
    assert runner.invoke(args=["tenants", "set-contact", "initech"]).exit_code == 0
    db.session.expire_all()
    assert tenants.find_tenant("initech").contact_email is None
