// Opsdeck admin: confirmations, relative times, select-all, and the live feed (Socket.IO /admin).
(function () {
  "use strict";

  // Destructive actions ask first.
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
  });

  // "Select all" checkboxes.
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll('input[name="' + box.dataset.selectAll + '"]').forEach(function (b) { b.checked = box.checked; });
    });
  });

  // Relative times, refreshed; the absolute UTC time stays in the title.
  function ago(iso) {
    var s = (Date.now() - Date.parse(iso)) / 1000, future = s < 0, units = [["d", 86400], ["h", 3600], ["min", 60]];
    s = Math.abs(s);
    var text = Math.floor(s) + " s";
    for (var i = 0; i < units.length; i++) { if (s >= units[i][1]) { text = Math.floor(s / units[i][1]) + " " + units[i][0]; break; } }
    return future ? "in " + text : text + " ago";
  }
  function refreshTimes() {
    document.querySelectorAll("main time[datetime]").forEach(function (t) { t.textContent = ago(t.getAttribute("datetime")); });
  }
  setInterval(refreshTimes, 30000);

  var page = document.body.dataset.page;

  // -- the dashboard's chart (uPlot), drawn from the data its live part carries --------------
  var chart = null, chartRange = "hour";
  var RANGE_FORMATS = { hour: "{HH}:{mm}", day: "{HH}:00", month: "{MM}-{DD}" };
  function chartData() {
    var live = document.getElementById("dashboard-live");
    var all = live && live.dataset.charts ? JSON.parse(live.dataset.charts) : null;
    var d = all && all[chartRange];
    return d ? [d.t, d.succeeded, d.failed] : null;
  }
  function utcDate(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }
  function drawChart() {
    var box = document.getElementById("throughput-chart"), data = chartData();
    if (!box || !data || typeof uPlot === "undefined") return;
    box.dataset.succeeded = String(data[1].reduce(function (a, b) { return a + b; }, 0));
    box.dataset.failed = String(data[2].reduce(function (a, b) { return a + b; }, 0));
    box.dataset.range = chartRange;
    if (chart && chart.opsdeckRange === chartRange) { chart.setData(data); return; }
    if (chart) chart.destroy();
    var tick = uPlot.fmtDate(RANGE_FORMATS[chartRange]);
    var stamp = uPlot.fmtDate(chartRange === "month" ? "{YYYY}-{MM}-{DD}" : "{YYYY}-{MM}-{DD} {HH}:{mm}");
    chart = new uPlot({
      width: Math.max(box.clientWidth, 300), height: 260,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      cursor: { points: { size: 7 } },
      legend: { live: true },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, 4) * 1.1]; } } },
      axes: [
        { values: function (u, splits) { return splits.map(function (ts) { return tick(utcDate(ts)); }); },
          grid: { stroke: "#eef0f3" }, ticks: { stroke: "#dde1e6" } },
        { label: "jobs", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#dde1e6" }, size: 50 },
      ],
      series: [
        { label: "UTC", value: function (u, ts) { return ts == null ? "--" : stamp(utcDate(ts)); } },
        { label: "Succeeded", stroke: "#16794c", fill: "rgba(22,121,76,.12)", width: 2, points: { show: false } },
        { label: "Failed", stroke: "#b42318", fill: "rgba(180,35,24,.10)", width: 2, points: { show: false } },
      ],
    }, data, box);
    chart.opsdeckRange = chartRange;
  }
  document.querySelectorAll("#throughput [data-range]").forEach(function (button) {
    button.addEventListener("click", function () {
      chartRange = button.dataset.range;
      document.querySelectorAll("#throughput [data-range]").forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
      drawChart();
    });
  });
  window.addEventListener("resize", function () {
    var box = document.getElementById("throughput-chart");
    if (chart && box) chart.setSize({ width: Math.max(box.clientWidth, 300), height: 260 });
  });
  drawChart();

  if (typeof io === "undefined") return;  // login page: no feed

  var feed = document.getElementById("feed-events"), state = document.getElementById("feed-state");
  var feedConf = JSON.parse(feed.dataset.feed || "{}"), links = feedConf.links || {}, tenants = feedConf.tenants || {};
  // WebSocket only: long-polling would need sticky sessions across the web processes.
  var socket = io("/admin", { transports: ["websocket"] });
  var connected = "connecting…";

  socket.on("connect", function () { connected = "live"; showState(); });
  socket.on("disconnect", function () { connected = "disconnected"; showState(); });
  socket.on("connect_error", function () { connected = "offline"; showState(); });

  function el(tag, cls, text) { var n = document.createElement(tag); if (cls) n.className = cls; if (text != null) n.textContent = text; return n; }

  function summary(ev) {
    var d = ev.data || {};
    switch (ev.type) {
      case "job.failed": case "job.dead": return d.job_type + " (" + d.attempt + "/" + d.max_attempts + "): " + (d.error || "");
      case "retention.progress": return d.kind + ": " + d.deleted + " deleted";
      case "retention.completed": return (d.status || "") + (d.dry_run ? " (dry run)" : "");
      case "scan.infected": case "scan.error": return d.name + ": " + (d.signature || d.error || d.status);
      case "jobs.bulk_progress": return d.action + ": " + d.done + "/" + d.total + " examined, " + d.changed + " changed";
      case "jobs.bulk_completed": return d.action + ": " + d.examined + " examined, " + d.changed + " changed";
      case "email.batch_sent": return d.sent + " of " + d.size + " sent";
      case "email.failed": return d.to + ": " + (d.error || d.status);
      case "webhook.endpoint_disabled": return d.url + ": " + d.reason;
      case "webhook.delivery_dead": return d.error || "";
      case "subscription.provisioned": case "subscription.expired": return d.username + " (" + d.status + ")";
      case "provisioning.failed": return d.username + ": " + (d.error || "failed");
      case "payment.failed": case "payment.held": return d.phone + ": " + (d.reason || d.status);
      case "payment.unmatched": return "result " + d.result_code + (d.amount_paid ? ", paid " + d.amount_paid : "") + ", not registered";
      case "payment.processed": return d.phone + " paid " + (d.amount_paid || d.amount_expected) + " → " + d.username;
      case "router.online": case "router.offline": return d.name + " " + d.status + (d.error ? ": " + d.error : "");
    }
    return d.message || d.queue || "";
  }

  function linkFor(ev) {
    var url = links[ev.type] || links[ev.type.split(".")[0]];
    return url && ev.subject ? url.replace("__id__", encodeURIComponent(ev.subject)) : null;
  }

  // One drawing for every item, loaded with the page or pushed: type and time on one line,
  // the subject (a link to its page when it has one) and what happened below, then the tenant.
  function item(ev) {
    var li = el("li", "ev ev-" + ev.type.replace(/\./g, "-"));
    li.dataset.type = ev.type; li.dataset.tenant = ev.tenant_id || "";
    var head = el("div", "ev-head");
    head.appendChild(el("strong", "ev-type", ev.type));
    var t = el("time", null, ev.occurred_at.substr(11, 8)); t.setAttribute("datetime", ev.occurred_at); t.title = ev.occurred_at;
    head.appendChild(t);
    li.appendChild(head);
    var body = el("div", "ev-body"), url = linkFor(ev);
    if (ev.subject) {
      var id = el("code", null, ev.subject.length > 12 ? ev.subject.substr(0, 8) : ev.subject); id.title = ev.subject;
      if (url) { var a = el("a", "ev-subject"); a.href = url; a.appendChild(id); body.appendChild(a); }
      else { id.className = "ev-subject"; body.appendChild(id); }
    }
    var text = summary(ev);
    if (text) { body.appendChild(document.createTextNode(" ")); body.appendChild(el("span", "ev-summary", text)); }
    li.appendChild(body);
    if (ev.tenant_id) li.appendChild(el("div", "ev-tenant", tenants[ev.tenant_id] || ev.tenant_id.substr(0, 8)));
    return li;
  }

  var typeFilter = document.getElementById("feed-type"), tenantFilter = document.getElementById("feed-tenant");
  var knownTypes = {};
  (feedConf.families || []).forEach(function (family) { addTypeOption(family, family + ".*"); });
  Object.keys(tenants).forEach(function (id) { var o = el("option", null, tenants[id]); o.value = id; tenantFilter.appendChild(o); });
  function addTypeOption(value, label) {
    if (knownTypes[value]) return; knownTypes[value] = true;
    var o = el("option", null, label); o.value = value; typeFilter.appendChild(o);
  }
  function matches(li) {
    var type = typeFilter.value, tenant = tenantFilter.value;
    if (type && li.dataset.type !== type && li.dataset.type.split(".")[0] !== type) return false;
    return !tenant || li.dataset.tenant === tenant;
  }
  function applyFilters() {
    var shown = 0;
    feed.querySelectorAll("li.ev").forEach(function (li) { var ok = matches(li); li.hidden = !ok; if (ok) shown++; });
    document.getElementById("feed-empty").hidden = shown > 0;
  }
  typeFilter.addEventListener("change", applyFilters);
  tenantFilter.addEventListener("change", applyFilters);

  var paused = false, held = [], pauseButton = document.getElementById("feed-pause");
  function showState() {
    state.textContent = paused ? "paused" + (held.length ? " (" + held.length + " new)" : "") : connected;
  }
  pauseButton.addEventListener("click", function () {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(paused));
    if (!paused) { var pending = held; held = []; pending.forEach(addToFeed); }
    showState();
  });

  function addToFeed(ev) {
    if (paused) { held.push(ev); showState(); return; }
    if (ev.type.split(".").length > 1) addTypeOption(ev.type, ev.type);
    feed.insertBefore(item(ev), feed.firstChild);
    while (feed.children.length > 50) feed.removeChild(feed.lastChild);
    applyFilters();
  }

  JSON.parse(feed.dataset.events || "[]").slice().reverse().forEach(addToFeed);

  // A job that died while Dead letters is open: its row as the list draws it, fetched.
  function addDeadRow(ev) {
    var table = document.getElementById("jobs-table"); if (!table) return;
    if (table.querySelector('tr[data-job-id="' + ev.subject + '"]')) return;
    var url = "/admin/jobs/" + encodeURIComponent(ev.subject) + "/row" + (table.dataset.select === "1" ? "?select=1" : "");
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
      if (!html || table.querySelector('tr[data-job-id="' + ev.subject + '"]')) return;
      var holder = document.createElement("tbody"); holder.innerHTML = html.trim();
      var tr = holder.querySelector("tr"); if (!tr) return;
      tr.classList.add("fresh");
      var empty = document.getElementById("jobs-empty"); if (empty) empty.remove();
      table.classList.remove("hidden");
      var body = table.querySelector("tbody"); body.insertBefore(tr, body.firstChild);
    });
  }

  // A bulk action started from this page: its bar follows the job's progress events.
  function bulkProgress(ev) {
    var box = document.querySelector('.bulk-progress[data-bulk-id="' + ev.subject + '"]'); if (!box) return;
    var bar = box.querySelector("progress"), label = box.querySelector(".bulk-state"), d = ev.data;
    if (ev.type === "jobs.bulk_completed") {
      bar.max = Math.max(d.examined, 1); bar.value = bar.max;
      label.textContent = "done: " + d.examined + " examined, " + d.changed + " changed";
      box.dataset.done = "1";
      return;
    }
    bar.max = Math.max(d.total, d.done, 1); bar.value = d.done;
    label.textContent = d.done + " of " + d.total + " examined, " + d.changed + " changed";
  }

  // The retention page: the running run's progress, then its report (the page reloads once).
  function retentionProgress(ev) {
    var line = document.getElementById("retention-live"); if (!line) return;
    if (ev.type === "retention.progress") { line.textContent = "Running: " + ev.data.kind + ", " + ev.data.deleted + " deleted so far"; return; }
    line.textContent = "Run " + ev.data.status + (ev.data.dry_run ? " (dry)" : "") + "; refreshing…";
    setTimeout(function () { window.location.reload(); }, 800);
  }

  // Rows on this page follow their jobs' failures (successes arrive aggregated, not per job).
  function updateRow(ev) {
    var row = document.querySelector('#jobs-table tr[data-job-id="' + ev.subject + '"]'); if (!row) return;
    var badge = row.querySelector(".state"); if (!badge) return;
    var dead = ev.type === "job.dead";
    badge.className = "state " + (dead ? "state-bad" : "state-warn");
    badge.textContent = dead ? "dead" : "retrying";
    row.classList.add("fresh");
  }

  // The dashboard's figures, tables and chart follow the feed: its live part is fetched again
  // when work is reported, at most every 2 s (pushed, not polled: nothing is fetched while
  // nothing happens). The chart keeps its range and takes the new data.
  var refreshTimer = null;
  function refreshDashboard() {
    if (page !== "dashboard" || refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      fetch("/admin/?part=live", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var live = document.getElementById("dashboard-live");
          if (!html || !live) return;
          var box = document.createElement("div"); box.innerHTML = html;
          var fresh = box.querySelector("#dashboard-live"); if (!fresh) return;
          var panel = live.querySelector("#throughput");
          if (panel) { var cards = fresh.querySelector("#cards"); cards.parentNode.insertBefore(panel, cards.nextSibling); }
          live.replaceWith(fresh);
          drawChart();
        });
    }, 2000);
  }

  socket.onAny(function (type, ev) {
    if (!ev || !ev.type) return;
    if (type.indexOf("job") === 0 || type.indexOf("queue.") === 0) refreshDashboard();
    if (type === "jobs.throughput") return;  // figures only: the dashboard shows them
    addToFeed(ev);
    if (type === "job.dead" && page === "dead") addDeadRow(ev);
    if (type === "job.dead" || type === "job.failed") updateRow(ev);
    if (type === "jobs.bulk_progress" || type === "jobs.bulk_completed") bulkProgress(ev);
    if (page === "retention" && type.indexOf("retention.") === 0) retentionProgress(ev);
  });
})();
