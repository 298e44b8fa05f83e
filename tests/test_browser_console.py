"""The operators' console in headless Chromium: the dashboard's chart, the feed's items, filters
and pause, live rows, and tables whose cells do not wrap."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import live
from app.extensions import db
from app.jobtypes import all_queue_names
from app.models import Job
from app.models.base import utcnow
from app.services import tenants, users
from tests import test_browser
from tests.helpers import submit
from tests.test_browser import CHROMIUM, PASSWORD

browser_page = test_browser.browser_page  # the fixture, shared

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"),
]

#: Pairs of visible feed items whose boxes overlap (the later one starts above the earlier's end).
OVERLAPS = """() => {
  const items = [...document.querySelectorAll('#feed-events li.ev')].filter(li => !li.hidden);
  const out = [];
  for (let i = 1; i < items.length; i++) {
    const a = items[i - 1].getBoundingClientRect(), b = items[i].getBoundingClientRect();
    if (b.top < a.bottom - 0.5) out.push([items[i - 1].textContent, items[i].textContent]);
    // and nothing inside an item leaves it
    for (const child of items[i].querySelectorAll('*')) {
      const r = child.getBoundingClientRect();
      if (r.height && (r.top < b.top - 0.5 || r.bottom > b.bottom + 0.5)) out.push(['outside', child.textContent]);
    }
  }
  return out;
}"""

#: Table cells (times, ids, sizes, figures) whose text takes more than one line.
WRAPPED = """() => {
  const lines = node => {  // line boxes of its text: tops more than half a line apart
    const tops = [], walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      if (!walker.currentNode.textContent.trim()) continue;
      const range = document.createRange(); range.selectNodeContents(walker.currentNode);
      for (const r of range.getClientRects()) if (r.width > 0) tops.push(r.top);
    }
    tops.sort((a, b) => a - b);
    return tops.filter((top, i) => i === 0 || top - tops[i - 1] > 8).length;
  };
  return [...document.querySelectorAll('table.grid time, table.grid code, table.grid td.num')]
    .filter(node => node.offsetParent !== null && !node.closest('td.wrap') && lines(node) > 1)
    .map(node => node.textContent.trim());
}"""

#: The feed item's drawing: the classes of its parts, in order.
SHAPE = """li => [...li.querySelectorAll('*')].map(n => n.tagName + '.' + n.className).join(' ')"""


def log_in(page, url: str, width: int = 1440) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{url}/admin/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Dashboard')")
    page.wait_for_selector("#feed-state:text('live')", timeout=15_000)


def test_dashboard_chart_has_axes_a_legend_and_hover_values_and_follows_the_work(app, workers, browser_page):
    page = browser_page
    users.create_user("admin@example.com", PASSWORD, "admin")
    url = workers.start_web()
    workers.start()
    log_in(page, url, width=1280)
    # Every configured queue, idle or not; the six cards on one row at 1280 px.
    assert page.eval_on_selector_all("#queues tbody tr", "rows => rows.map(r => r.dataset.queue)") == all_queue_names()
    tops = page.eval_on_selector_all(
        "#cards .card", "cards => cards.map(c => Math.round(c.getBoundingClientRect().top))"
    )
    assert len(tops) == 6 and len(set(tops)) == 1, tops
    page.wait_for_selector("#throughput-chart .u-legend")
    assert page.locator("#throughput-chart .u-axis").count() == 2  # time and count
    assert page.inner_text("#throughput-chart .u-legend").split() >= ["UTC"]
    legend = page.inner_text("#throughput-chart .u-legend")
    assert "Succeeded" in legend and "Failed" in legend
    assert page.evaluate("document.querySelector('#throughput-chart canvas').height") >= 200

    for i in range(3):
        submit(payload={"message": f"ok {i}"})
    page.wait_for_function(
        "() => parseInt(document.getElementById('throughput-chart').dataset.succeeded || '0') >= 3", timeout=30_000
    )
    page.wait_for_function("() => parseInt(document.querySelector('[data-figure=succeeded]').textContent) >= 3")
    assert page.locator("#throughput-chart canvas").count() == 1  # updated in place, not redrawn twice
    # Hover over the last bucket: the legend shows its values.
    box = page.locator("#throughput-chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    values = page.eval_on_selector_all("#throughput-chart .u-legend .u-value", "v => v.map(n => n.textContent)")
    assert values[0] != "--" and int(values[1]) >= 0, values
    page.click("#throughput [data-range=day]")
    page.wait_for_selector("#throughput-chart[data-range=day]")
    assert int(page.get_attribute("#throughput-chart", "data-succeeded")) >= 3
    # Per job type: the echo jobs' count and runtimes.
    page.wait_for_selector("#job-types tr[data-type='system.echo']", timeout=30_000)
    assert not page.problems, page.problems


def test_feed_items_do_not_overlap_look_the_same_loaded_or_pushed_and_link_to_their_pages(app, workers, browser_page):
    page = browser_page
    users.create_user("admin@example.com", PASSWORD, "admin")
    acme = tenants.create_tenant("acme")
    job_id = submit(payload={"message": "x"}, tenant_id=acme.tenant_id)
    data = {"job_type": "system.echo", "attempt": 3, "max_attempts": 3, "error": "EchoFailure: " + "long " * 30}
    live.publish("job.dead", subject=job_id, tenant_id=acme.tenant_id, data=data)
    live.publish("retention.progress", subject="run-1", data={"kind": "jobs", "deleted": 500})
    live.publish("jobs.throughput", subject="jobs", data={"succeeded": 9, "failed": 0, "by_type": {}})
    url = workers.start_web()
    log_in(page, url)
    assert page.locator("#feed-events li.ev").count() == 2  # throughput is not a feed item
    loaded = page.eval_on_selector("#feed-events li.ev-job-dead", SHAPE)
    live.publish("job.dead", subject=job_id, tenant_id=acme.tenant_id, data=data)
    live.publish("jobs.throughput", subject="jobs", data={"succeeded": 9, "failed": 0, "by_type": {}})
    for i in range(5):
        live.publish("retention.progress", subject=f"run-{i}", data={"kind": "jobs", "deleted": i})
    page.wait_for_function("() => document.querySelectorAll('#feed-events li.ev').length === 8")
    pushed = page.eval_on_selector_all("#feed-events li.ev-job-dead", f"items => ({SHAPE})(items[0])")
    assert pushed == loaded
    assert page.evaluate(OVERLAPS) == []
    assert page.inner_text("#feed-events li.ev-job-dead .ev-tenant") == "acme"
    link = page.get_attribute("#feed-events li.ev-job-dead a.ev-subject", "href")
    assert link == f"/admin/jobs/{job_id}"
    page.click("#feed-events li.ev-job-dead a.ev-subject")
    page.wait_for_selector(f"h1 code:text('{job_id}')")


def test_feed_filters_by_type_and_tenant_and_pauses(app, workers, browser_page):
    page = browser_page
    users.create_user("admin@example.com", PASSWORD, "admin")
    acme, globex = tenants.create_tenant("acme"), tenants.create_tenant("globex")
    url = workers.start_web()
    log_in(page, url)
    live.publish("job.failed", subject="a" * 36, tenant_id=acme.tenant_id, data={"job_type": "system.echo"})
    live.publish("job.dead", subject="b" * 36, tenant_id=globex.tenant_id, data={"job_type": "system.echo"})
    live.publish("retention.progress", subject="run", data={"kind": "jobs", "deleted": 1})
    page.wait_for_function("() => document.querySelectorAll('#feed-events li.ev').length === 3")
    visible = (
        "() => [...document.querySelectorAll('#feed-events li.ev')].filter(li => !li.hidden).map(li => li.dataset.type)"
    )

    page.select_option("#feed-type", "job")
    assert page.evaluate(visible) == ["job.dead", "job.failed"]
    page.select_option("#feed-tenant", acme.tenant_id)
    assert page.evaluate(visible) == ["job.failed"]
    page.select_option("#feed-type", "retention")
    assert page.evaluate(visible) == [] and page.is_visible("#feed-empty")
    page.select_option("#feed-tenant", "")
    page.select_option("#feed-type", "job.dead")  # an exact type seen is offered too
    assert page.evaluate(visible) == ["job.dead"]
    page.select_option("#feed-type", "")

    page.click("#feed-pause")
    live.publish("retention.progress", subject="held", data={"kind": "jobs", "deleted": 2})
    page.wait_for_selector("#feed-state:text('paused (1 new)')", timeout=10_000)
    assert page.locator("#feed-events li.ev").count() == 3
    page.click("#feed-pause")
    assert page.locator("#feed-events li.ev").count() == 4
    assert page.inner_text("#feed-state") == "live"


def test_a_job_that_dies_is_added_to_dead_letters_live_with_every_cell_filled(app, workers, browser_page):
    page = browser_page
    users.create_user("admin@example.com", PASSWORD, "admin")
    acme = tenants.create_tenant("acme")
    url = workers.start_web()
    workers.start()
    log_in(page, url)
    page.goto(f"{url}/admin/dead")
    page.wait_for_selector("#feed-state:text('live')", timeout=15_000)
    job_id = submit(payload={"message": "doomed", "fail": True}, max_attempts=1, tenant_id=acme.tenant_id)
    row = f'#jobs-table tr[data-job-id="{job_id}"]'
    page.wait_for_selector(row, timeout=30_000)
    cells = page.eval_on_selector_all(
        f"{row} td", "cells => cells.map(c => c.querySelector('input') ? 'box' : c.textContent.trim())"
    )
    headers = page.eval_on_selector_all("#jobs-table thead th", "hs => hs.map(h => h.textContent.trim())")
    assert len(cells) == len(headers) and all(cells), dict(zip(headers, cells, strict=False))
    by_header = dict(zip(headers[1:], cells[1:], strict=True))
    assert by_header["Queue"] == "default" and by_header["Tenant"] == "acme" and by_header["State"] == "dead"
    assert by_header["Error"].startswith("EchoFailure")


@pytest.mark.parametrize("width", [1280, 1920])
def test_times_ids_and_sizes_do_not_wrap_in_table_cells(app, workers, browser_page, width):
    page = browser_page
    users.create_user("admin@example.com", PASSWORD, "admin")
    acme = tenants.create_tenant("a tenant with a rather long name for its column")
    ids = [submit(payload={"message": "m" * 200}, tenant_id=acme.tenant_id) for _ in range(5)]
    past = utcnow() - timedelta(minutes=75)
    for job_id in ids:
        job = db.session.get(Job, job_id)
        job.status, job.created_at = "dead", past
        job.error = "EchoFailure: " + "a very long error message that goes on " * 5
    db.session.commit()
    url = workers.start_web()
    log_in(page, url, width=width)
    for path in ("/admin/", "/admin/jobs", "/admin/dead", "/admin/retention", "/admin/scans", "/admin/audit"):
        page.goto(f"{url}{path}")
        page.wait_for_selector("h1")
        assert page.evaluate(WRAPPED) == [], path
    # Keyboard focus is visible.
    page.goto(f"{url}/admin/jobs")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline
