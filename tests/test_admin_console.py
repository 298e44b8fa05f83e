"""The operators' console through the Flask client: every queue on the dashboard with its depth,
per job type figures, the jobs search, live rows as the list draws them, the feed's data."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

from app.extensions import db
from app.jobtypes import all_queue_names
from app.models import Job
from app.models.base import utcnow
from app.services import stats, tenants
from tests.helpers import post, submit


def shown(page: str) -> list[str]:
    return re.findall(r'<tr data-job-id="([^"]+)"', page)


def test_dashboard_lists_every_configured_queue_with_its_depth_over_the_hour(app, admin):
    now = utcnow().timestamp()
    for minutes_ago, waiting in ((30, 7), (10, 3)):
        queues = [stats.QueueStats("email", waiting=waiting)]
        stats.record_depth(queues, now=now - 60 * minutes_ago)
    submit(payload={"message": "x"})
    page = admin.get("/admin/").text
    assert re.findall(r'<tr data-queue="([^"]+)"', page) == all_queue_names()
    assert 'aria-label="email depth, peak 7"' in page
    history = stats.depth_history(["email", "default"], now=now)
    assert len(history["email"]) == 60 and history["email"][-31] == 7 and history["email"][-11] == 3
    assert history["default"][-1] == 1  # the page recorded this minute's sample


def test_per_job_type_count_failure_rate_and_runtime_percentiles_over_the_last_hour(app, admin):
    now = utcnow()
    for i in range(20):
        job = db.session.get(Job, submit(payload={"message": str(i)}))
        job.status = "dead" if i < 2 else "succeeded"
        job.started_at, job.finished_at = now - timedelta(seconds=30), now - timedelta(seconds=30 - (i + 1) / 10)
    old = db.session.get(Job, submit(payload={"message": "old"}))
    old.status, old.started_at, old.finished_at = "succeeded", now - timedelta(hours=2), now - timedelta(hours=2)
    db.session.commit()
    [echo] = stats.job_type_stats()
    assert (echo.count, echo.dead, round(echo.failure_rate, 2)) == (20, 2, 0.1)
    assert round(echo.percentile(50), 2) == 1.0 and round(echo.percentile(95), 2) == 1.9
    row = admin.get("/admin/").text.split('data-type="system.echo"')[1].split("</tr>")[0]
    assert re.findall(r'<td class="num[^"]*">([^<]+)</td>', row) == ["20", "2", "10.0 %", "1.0 s", "1.9 s"]


def test_jobs_search_by_type_status_queue_tenant_time_and_text(app, admin):
    acme, globex = tenants.create_tenant("acme"), tenants.create_tenant("globex")
    a = submit(payload={"message": "order ORD-7781, 100% sure"}, tenant_id=acme.tenant_id)
    b = submit(payload={"message": "order ORD-1200"}, tenant_id=globex.tenant_id, priority="high")
    c = submit(payload={"message": "c"}, tenant_id=acme.tenant_id)
    job = db.session.get(Job, c)
    job.status, job.error = "dead", "SMTPRecipientsRefused: mailbox_unavailable for bob@example.com"
    db.session.get(Job, a).created_at = utcnow() - timedelta(days=3)
    db.session.commit()

    assert shown(admin.get("/admin/jobs?text=ord-7781").text) == [a]  # payload, any case
    assert shown(admin.get("/admin/jobs?text=mailbox_unavailable").text) == [c]  # error, `_` literal
    assert shown(admin.get("/admin/jobs?text=mailboxXunavailable").text) == []
    assert shown(admin.get("/admin/jobs?text=100%25 sure").text) == [a]  # `%` literal
    assert shown(admin.get("/admin/jobs?text=ORD-&status=pending").text) == [b, a]
    assert shown(admin.get(f"/admin/jobs?text=ORD-&tenant={acme.tenant_id}").text) == [a]
    assert shown(admin.get("/admin/jobs?text=ORD-&queue=default_high").text) == [b]
    assert shown(admin.get("/admin/jobs?status=dead&type=system.echo").text) == [c]
    since = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert shown(admin.get(f"/admin/jobs?text=ORD-&created_from={since}").text) == [b]
    assert shown(admin.get(f"/admin/jobs?text=ORD-&created_to={since}").text) == [a]
    assert shown(admin.get("/admin/dead?text=bob@example").text) == [c]
    short = admin.get("/admin/jobs?text=OR")
    assert "at least 3 characters" in short.text and len(shown(short.text)) == 3  # ignored, said so


def test_a_bulk_action_on_all_matching_keeps_the_text_search(app, admin):
    """The bulk job's filter holds the text: it reaches the jobs the list shows, no others."""
    from app.services import jobs

    wanted = submit(payload={"message": "order ORD-9912"})
    other = submit(payload={"message": "something else"})
    response = post(admin, "/admin/jobs/bulk?text=ord-99", {"action": "cancel", "scope": "all"})
    assert response.status_code == 302
    bulk = db.session.query(Job).filter_by(type="jobs.bulk").one()
    assert bulk.payload["filter"] == {"all_tenants": True, "text": "ord-99"}
    flt = jobs.JobFilter.from_dict(bulk.payload["filter"])
    bulk.status = "running"  # as its worker runs it (its payload holds the text: it matches, running)
    db.session.commit()
    assert jobs.bulk_apply("cancel", flt=flt, actor="test") == {"examined": 2, "changed": 1}
    db.session.expire_all()
    assert db.session.get(Job, wanted).status == "cancelled" and db.session.get(Job, other).status != "cancelled"
    # Retrying all that match later does not run the bulk action again (its payload holds the text).
    db.session.get(Job, bulk.id).status = "dead"
    db.session.commit()
    assert jobs.bulk_apply("retry", flt=flt, actor="test") == {"examined": 2, "changed": 1}
    db.session.expire_all()
    assert db.session.get(Job, bulk.id).status == "dead" and db.session.get(Job, wanted).status == "pending"


def test_a_live_row_is_the_row_the_list_draws(app, admin):
    acme = tenants.create_tenant("acme")
    job_id = submit(payload={"message": "x"}, tenant_id=acme.tenant_id)
    listed = admin.get("/admin/jobs").text
    row = re.search(r'<tr data-job-id="[^"]+">.*?</tr>', listed, re.S).group(0)
    live = admin.get(f"/admin/jobs/{job_id}/row?select=1").text.strip()
    assert live == row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", live, re.S)
    assert len(cells) == 9 and all(c.strip() for c in cells) and ">acme<" in live
    assert admin.get("/admin/jobs/nope/row").status_code == 404


def test_the_feed_carries_recent_events_links_and_tenants_but_not_throughput(app, admin):
    from app import live

    acme = tenants.create_tenant("acme")
    live.publish("job.dead", subject="j1", tenant_id=acme.tenant_id, data={"job_type": "system.echo"})
    live.publish("jobs.throughput", subject="jobs", data={"succeeded": 3})
    page = admin.get("/admin/jobs").text
    events = json.loads(html.unescape(re.search(r"data-events='([^']*)'", page).group(1)))
    feed = json.loads(html.unescape(re.search(r"data-feed='([^']*)'", page).group(1)))
    assert [e["type"] for e in events] == ["job.dead"]
    assert feed["tenants"] == {acme.tenant_id: "acme"}
    assert feed["links"]["job"] == "/admin/jobs/__id__" and feed["links"]["scan"] == "/admin/scans/__id__"
    assert "job" in feed["families"]


def test_favicon_and_uplot_are_served_from_opsdeck(app, admin):
    page = admin.get("/admin/").text
    assert 'rel="icon" href="/static/favicon.svg"' in page
    assert "/static/vendor/uPlot.iife.min.js" in page and "/static/vendor/uPlot.min.css" in page
    assert admin.get("/static/favicon.svg").status_code == 200
    assert admin.get("/static/vendor/uPlot.iife.min.js").status_code == 200
