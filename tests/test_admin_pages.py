"""Admin pages through the Flask client: auth, roles, CSRF, pages, filters, actions, audit."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import ApiKey, AuditEntry, Job, Tenant
from app.services import users
from tests.helpers import PASSWORD, csrf_token, job_row, login, post, submit


def test_pages_require_login(app):
    client = app.test_client()
    for url in ("/admin/", "/admin/jobs", "/admin/dead", "/admin/tenants", "/admin/audit"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_login_sets_a_hardened_session_and_logout_ends_it(app, admin_user):
    client = app.test_client()
    response = login(client, admin_user.email)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/admin/").status_code == 200
    assert post(client, "/admin/logout").status_code == 302
    assert client.get("/admin/").status_code == 302


def test_wrong_password_is_refused_and_audited(app, admin_user):
    client = app.test_client()
    response = login(client, admin_user.email, "wrong password")
    assert response.status_code == 200 and "Wrong email or password" in response.text
    assert db.session.query(AuditEntry).filter_by(action="user.login_failed").count() == 1


def test_login_without_csrf_token_is_refused(app, admin_user):
    client = app.test_client()
    response = client.post("/admin/login", data={"email": admin_user.email, "password": PASSWORD})
    assert response.status_code in (200, 400)
    assert client.get("/admin/").status_code == 302


def test_next_parameter_cannot_redirect_off_site(app, admin_user):
    client = app.test_client()
    page = client.get("/admin/login?next=https://evil.example/")
    response = client.post(
        "/admin/login?next=https://evil.example/",
        data={"email": admin_user.email, "password": PASSWORD, "csrf_token": csrf_token(page.text)},
    )
    assert response.headers["Location"] == "/admin/"


@pytest.mark.parametrize("app_config", [{"ADMIN_LOGIN_LIMIT_PER_ACCOUNT": "3 per 15 minutes"}])
def test_failed_logins_are_throttled_per_account(app, admin_user, app_config):
    client = app.test_client()
    codes = [login(client, admin_user.email, "nope").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert login(client, admin_user.email, "nope").status_code == 429
    assert login(client, admin_user.email).status_code == 429  # even the right password, for now
    other = app.test_client()
    assert login(other, "viewer@example.com", "nope").status_code == 200  # another account is not blocked


@pytest.mark.parametrize("app_config", [{"ADMIN_LOGIN_LIMIT_PER_IP": "2 per 15 minutes"}])
def test_failed_logins_are_throttled_per_ip(app, admin_user, app_config):
    client = app.test_client()
    assert [login(client, f"u{i}@example.com", "nope").status_code for i in range(2)] == [200, 200]
    assert login(client, "u9@example.com", "nope").status_code == 429


def test_deactivated_user_is_logged_out_everywhere(app, admin, admin_user):
    assert admin.get("/admin/").status_code == 200
    users.create_user("second@example.com", PASSWORD, "admin")  # the last admin cannot be deactivated
    users.set_active(admin_user, False, actor="test")
    assert admin.get("/admin/").status_code == 302
    assert login(app.test_client(), admin_user.email).status_code == 200  # refused


def test_security_headers_on_every_page(app, admin):
    response = admin.get("/admin/jobs")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "cdn" not in response.text.lower()
    assert "<script>" not in response.text  # no inline script (CSP forbids it)


def test_jobs_page_lists_filters_and_paginates(app, admin, tenant):
    ids = [submit(payload={"message": str(i)}, tenant_id=tenant.tenant_id) for i in range(55)]
    first = admin.get("/admin/jobs")
    assert first.status_code == 200
    shown = re.findall(r'data-job-id="([^"]+)"', first.text)
    assert len(shown) == 50
    older = re.search(r'href="([^"]*cursor=[^"]+)"', first.text).group(1).replace("&amp;", "&")
    rest = re.findall(r'data-job-id="([^"]+)"', admin.get(older).text)
    assert sorted(shown + rest) == sorted(ids)
    assert re.findall(r'data-job-id="([^"]+)"', admin.get(f"/admin/jobs?q={ids[3][:13]}").text) == [ids[3]]
    assert admin.get("/admin/jobs?status=dead").text.count("data-job-id=") == 0
    assert "No jobs match" in admin.get("/admin/jobs?status=dead").text
    assert (
        admin.get(f"/admin/jobs?tenant={tenant.tenant_id}&queue=default&type=system.echo").text.count("data-job-id=")
        == 50
    )
    bad = admin.get("/admin/jobs?created_from=yesterday")
    assert bad.status_code == 200 and "use YYYY-MM-DD" in bad.text


def test_job_detail_shows_payload_error_and_traceback(app, admin):
    job_id = submit(payload={"message": "<script>alert(1)</script>"})
    job = db.session.get(Job, job_id)
    job.status, job.error, job.traceback = "dead", "EchoFailure: boom", "Traceback (most recent call last): …"
    db.session.commit()
    page = admin.get(f"/admin/jobs/{job_id}")
    assert page.status_code == 200
    assert "EchoFailure: boom" in page.text and "Traceback" in page.text
    assert "<script>alert(1)</script>" not in page.text  # escaped
    assert admin.get("/admin/jobs/nope").status_code == 404


def test_admin_retries_and_cancels_one_job_and_it_is_audited(app, admin):
    job_id = submit(payload={"message": "x"})
    assert post(admin, f"/admin/jobs/{job_id}/cancel").status_code == 302
    assert job_row(job_id).status == "cancelled"
    assert post(admin, f"/admin/jobs/{job_id}/retry").status_code == 302
    assert job_row(job_id).status in {"pending", "queued"}
    entries = db.session.query(AuditEntry).filter(AuditEntry.actor == "user:admin@example.com").all()
    assert {"job.cancel", "job.retry"} <= {e.action for e in entries}
    assert {e.ip for e in entries if e.action.startswith("job.")} == {"127.0.0.1"}  # from which IP


def test_viewer_sees_pages_but_every_mutation_is_refused(app, viewer, tenant):
    job_id = submit(payload={"message": "x"})
    pages = ("/admin/", "/admin/jobs", "/admin/dead", "/admin/tenants", "/admin/audit", "/admin/users")
    for url in (*pages, f"/admin/jobs/{job_id}"):
        assert viewer.get(url).status_code == 200, url
    assert 'name="job_id"' not in viewer.get("/admin/jobs").text  # no bulk controls
    for url, data in [
        (f"/admin/jobs/{job_id}/cancel", {}),
        ("/admin/jobs/bulk", {"action": "cancel", "scope": "all"}),
        ("/admin/tenants", {"name": "sneaky"}),
        (f"/admin/tenants/{tenant.tenant_id}/keys", {"mode": "rotate"}),
        (f"/admin/keys/{tenant.key_id}/revoke", {}),
        ("/admin/users", {"email": "new@example.com", "role": "admin", "password": PASSWORD}),
        (f"/admin/users/{users.find('viewer@example.com').id}/role", {"role": "admin"}),
    ]:
        assert post(viewer, url, data).status_code == 403, url
    assert job_row(job_id).status == "pending"
    assert db.session.query(Tenant).count() == 1 and db.session.get(ApiKey, tenant.key_id).active
    assert fresh_user("new@example.com") is None and fresh_user("viewer@example.com").role == "viewer"


def test_mutations_without_csrf_token_are_refused(app, admin):
    job_id = submit(payload={"message": "x"})
    assert admin.post(f"/admin/jobs/{job_id}/cancel").status_code == 400
    assert job_row(job_id).status == "pending"


def test_bulk_retry_of_selected_or_all_matching_runs_as_a_job(app, admin):
    dead = [submit(payload={"message": str(i)}) for i in range(3)]
    db.session.query(Job).update({"status": "dead"})
    db.session.commit()
    response = post(admin, "/admin/jobs/bulk?status=dead", {"action": "retry", "scope": "selected", "job_id": dead[:2]})
    assert response.status_code == 302
    bulk = db.session.query(Job).filter_by(type="jobs.bulk").one()
    assert bulk.payload["job_ids"] == dead[:2] and bulk.payload["action"] == "retry"
    response = post(admin, "/admin/jobs/bulk?status=dead", {"action": "retry", "scope": "all"})
    assert response.status_code == 302
    second = db.session.query(Job).filter_by(type="jobs.bulk").order_by(Job.created_at.desc()).first()
    assert second.payload["filter"] == {"all_tenants": True, "status": "dead"}


def test_bulk_apply_changes_matching_jobs_in_batches_and_audits(app):
    from app.services import jobs

    ids = [submit(payload={"message": str(i)}) for i in range(7)]
    db.session.query(Job).filter(Job.id.in_(ids[:5])).update({"status": "dead"})
    db.session.commit()
    seen = []
    summary = jobs.bulk_apply(
        "retry",
        flt=jobs.JobFilter(all_tenants=True, status="dead"),
        actor="test",
        on_progress=lambda *progress: seen.append(progress),
    )
    assert summary == {"examined": 5, "changed": 5} and seen == [(0, 0, 5), (5, 5, 5)]
    assert {job_row(i).status for i in ids[:5]} <= {"pending", "queued"}
    assert db.session.query(AuditEntry).filter_by(action="job.bulk_retry").count() == 1
    assert jobs.bulk_apply("cancel", job_ids=ids, actor="test") == {"examined": 7, "changed": 7}


def test_tenant_and_key_lifecycle_secret_shown_once(app, admin):
    created = post(admin, "/admin/tenants", {"name": "initech"}, token_from="/admin/tenants")
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="key-secret">([^<]+)<', created.text).group(1)
    tenant = db.session.query(Tenant).filter_by(name="initech").one()
    detail = admin.get(f"/admin/tenants/{tenant.id}")
    assert secret not in detail.text and tenant.keys[0].id in detail.text
    rotated = post(admin, f"/admin/tenants/{tenant.id}/keys", {"mode": "rotate", "grace_hours": "1"})
    assert rotated.status_code == 200
    db.session.expire_all()
    keys = db.session.query(ApiKey).filter_by(tenant_id=tenant.id).order_by(ApiKey.created_at).all()
    assert len(keys) == 2 and keys[0].expires_at is not None and keys[1].active
    assert post(admin, f"/admin/keys/{keys[1].id}/revoke").status_code == 302
    db.session.expire_all()
    assert not db.session.get(ApiKey, keys[1].id).active
    dup = post(admin, "/admin/tenants", {"name": "initech"}, token_from="/admin/tenants")
    assert dup.status_code == 302 and "already exists" in admin.get("/admin/tenants").text


def test_audit_log_is_browsable_and_filterable(app, admin):
    for _ in range(3):
        post(admin, "/admin/tenants", {"name": f"t{_}"}, token_from="/admin/tenants")
    page = admin.get("/admin/audit?action=tenant.create")
    assert page.text.count("<td>tenant.create</td>") == 3
    assert "user:admin@example.com" in page.text
    assert admin.get("/admin/audit?action=nothing").text.count("No audit entries match") == 1


def test_dashboard_shows_queue_figures(app, admin):
    submit(payload={"message": "x"})
    submit(payload={"message": "later"}, delay_seconds=600)
    page = admin.get("/admin/")
    assert page.status_code == 200 and ">default<" in page.text
    row = re.search(r'>default</a></td>\s*<td class="num">(\d+)</td>.*?<td class="num">(\d+)</td>', page.text, re.S)
    assert row.group(1) == "1" and row.group(2) == "1"  # one waiting, one delayed


def test_job_detail_lists_every_attempt(app, admin):
    from datetime import timedelta

    from app.models.base import utcnow
    from app.services.jobs import ledger

    job_id = submit(payload={"message": "x"}, max_attempts=3)
    ledger.claim(job_id, "host:1", 30)
    ledger.fail(job_id, "host:1", error="EchoFailure: first", traceback=None, retry_in=1)
    ledger.claim(job_id, "host:2", 30)
    db.session.get(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    ledger.recover_expired()
    ledger.claim(job_id, "host:3", 30)
    ledger.succeed(job_id, "host:3", {"ok": True})
    table = admin.get(f"/admin/jobs/{job_id}").text.split('id="attempts"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td>", table)
    assert rows == [("1", "host:1"), ("2", "host:2"), ("3", "host:3")]
    assert "EchoFailure: first" in table and "lost (lease expired)" in table and "succeeded" in table


def test_throughput_is_counted_in_redis_and_rolled_up_into_history(app):
    from datetime import UTC, datetime, timedelta

    from app.extensions import queue
    from app.models import JobStat
    from app.services import stats

    now = datetime(2026, 11, 23, 10, 30, 20, tzinfo=UTC)
    stats.count({"succeeded": 5, "failed": 1}, now=now.timestamp())
    stats.count({"succeeded": 2}, now=now.timestamp())
    stats.count({"succeeded": 7, "failed": 2}, now=(now - timedelta(minutes=45)).timestamp())
    assert stats.rollup(now=now) == {"minutes": 2}
    minute = stats.series("minute", 60, now=now)
    assert len(minute) == 60 and minute[-1] == {"start": now.replace(second=0), "succeeded": 7, "failed": 1}
    hours = stats.series("hour", 24, now=now)
    assert hours[-1]["succeeded"] == 7 and hours[-2]["succeeded"] == 7 and hours[-2]["failed"] == 2
    assert stats.series("day", 30, now=now)[-1] == {
        "start": now.replace(hour=0, minute=0, second=0),
        "succeeded": 14,
        "failed": 3,
    }
    # History survives Redis losing everything; a rollup after that never shrinks a minute.
    queue.redis.flushall()
    stats.count({"succeeded": 1}, now=now.timestamp())
    stats.rollup(now=now)
    assert stats.series("minute", 60, now=now)[-1]["succeeded"] == 7
    assert stats.rollup(now=now) == {"minutes": 1}  # idempotent
    assert db.session.query(JobStat).filter_by(granularity="day").one().succeeded == 14


def chart_data(page: str) -> dict:
    import html
    import json

    return json.loads(html.unescape(re.search(r"data-charts='([^']*)'", page).group(1)))


def test_dashboard_carries_each_ranges_chart_data(app, admin):
    from app.services import stats

    stats.count({"succeeded": 3, "failed": 1})
    stats.rollup()
    charts = chart_data(admin.get("/admin/").text)
    assert {k: len(v["t"]) for k, v in charts.items()} == {"hour": 60, "day": 24, "month": 30}
    assert charts["hour"]["succeeded"][-1] == 3 and charts["hour"]["failed"][-1] == 1
    assert charts["hour"]["t"][1] - charts["hour"]["t"][0] == 60  # epoch seconds, one bucket a minute


def test_minutes_not_yet_rolled_up_are_read_live_from_redis(app):
    from datetime import UTC, datetime, timedelta

    from app.extensions import queue
    from app.services import stats

    now = datetime(2026, 11, 23, 10, 30, 20, tzinfo=UTC)
    stats.count({"succeeded": 4}, now=(now - timedelta(minutes=1)).timestamp())  # the minute that just ended
    stats.count({"succeeded": 2, "failed": 1}, now=now.timestamp())
    drawn = stats.with_live_minutes(stats.series("minute", 60, now=now))
    assert [(b["succeeded"], b["failed"]) for b in drawn[-3:]] == [(0, 0), (4, 0), (2, 1)]
    # Once rolled up, Redis losing its counters does not empty the chart.
    stats.rollup(now=now)
    queue.redis.flushall()
    drawn = stats.with_live_minutes(stats.series("minute", 60, now=now))
    assert [(b["succeeded"], b["failed"]) for b in drawn[-2:]] == [(4, 0), (2, 1)]


def test_every_chart_shows_the_minute_before_its_rollup(app, admin):
    from app.services import stats

    stats.count({"succeeded": 3, "failed": 1})  # no rollup yet
    charts = chart_data(admin.get("/admin/").text)
    for series in charts.values():  # this minute, this hour, today
        assert (series["succeeded"][-1], series["failed"][-1]) == (3, 1)


def test_hours_and_today_include_minutes_not_yet_rolled_up(app):
    from datetime import UTC, datetime, timedelta

    from app.services import stats

    now = datetime(2026, 11, 23, 10, 30, 20, tzinfo=UTC)
    stats.count({"succeeded": 5}, now=(now - timedelta(minutes=20)).timestamp())
    stats.rollup(now=now - timedelta(minutes=20))  # this hour and today hold 5 in the database
    stats.count({"succeeded": 2, "failed": 1}, now=now.timestamp())  # not rolled up yet
    stats.count({"succeeded": 7}, now=(now - timedelta(minutes=45)).timestamp())  # 09:45, nor this
    minutes = stats.with_live_minutes(stats.series("minute", 60, now=now))
    hours = stats.with_live_total("hour", stats.series("hour", 24, now=now), minutes)
    days = stats.with_live_total("day", stats.series("day", 30, now=now), hours)
    assert [(b["succeeded"], b["failed"]) for b in hours[-3:]] == [(0, 0), (7, 0), (7, 1)]
    assert [(b["succeeded"], b["failed"]) for b in days[-2:]] == [(0, 0), (14, 1)]
    # A rolled-up figure larger than what Redis still holds stays (Redis lost a counter).
    stats.rollup(now=now)
    from app.extensions import queue

    queue.redis.flushall()
    minutes = stats.with_live_minutes(stats.series("minute", 60, now=now))
    hours = stats.with_live_total("hour", stats.series("hour", 24, now=now), minutes)
    assert [(b["succeeded"], b["failed"]) for b in hours[-2:]] == [(7, 0), (7, 1)]


def test_dashboard_live_part_is_served_alone(app, admin):
    part = admin.get("/admin/?part=live").text
    assert part.lstrip().startswith('<div id="dashboard-live"') and "<html" not in part
    assert "data-charts=" in part and 'id="throughput-chart"' not in part  # the chart stays, its data changes


def fresh_user(email: str):
    db.session.expire_all()  # the pages changed the rows in their own sessions
    return users.find(email)


def test_admin_manages_users_and_cannot_lock_everyone_out(app, admin, admin_user):
    response = post(admin, "/admin/users", {"email": "Ops@Example.com", "role": "viewer", "password": PASSWORD})
    assert response.status_code == 302
    ops = fresh_user("ops@example.com")
    assert ops.role == "viewer" and ops.active
    assert "ops@example.com" in admin.get("/admin/users").text

    short = post(admin, "/admin/users", {"email": "x@example.com", "role": "viewer", "password": "short"})
    assert short.status_code == 302 and fresh_user("x@example.com") is None
    assert "password" in admin.get("/admin/users").text.lower()

    assert post(admin, f"/admin/users/{ops.id}/role", {"role": "admin"}).status_code == 302
    assert fresh_user("ops@example.com").role == "admin"
    assert post(admin, f"/admin/users/{ops.id}/deactivate").status_code == 302
    assert not fresh_user("ops@example.com").active

    # The only active admin left can be neither demoted nor deactivated.
    post(admin, f"/admin/users/{admin_user.id}/role", {"role": "viewer"})
    post(admin, f"/admin/users/{admin_user.id}/deactivate")
    me = fresh_user(admin_user.email)
    assert me.role == "admin" and me.active
    assert "last active admin" in admin.get("/admin/users").text

    actions = [e.action for e in db.session.query(AuditEntry).filter(AuditEntry.target == "ops@example.com")]
    assert sorted(actions) == ["user.create", "user.deactivate", "user.role"]


def test_admin_sets_a_tenants_contact(app, admin, tenant):
    url = f"/admin/tenants/{tenant.tenant_id}"
    assert post(admin, f"{url}/contact", {"contact_email": "ops@acme.example"}).status_code == 302
    assert "ops@acme.example" in admin.get(url).text
    post(admin, f"{url}/contact", {"contact_email": "nope"})
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.tenant_id).contact_email == "ops@acme.example"
    assert db.session.query(AuditEntry).filter_by(action="tenant.contact").count() == 1
