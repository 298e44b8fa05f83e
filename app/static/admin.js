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

  if (typeof io === "undefined") return;  // login page: no feed

  var feed = document.getElementById("feed-events"), state = document.getElementById("feed-state");
  var page = document.body.dataset.page;
  // WebSocket only: long-polling would need sticky sessions across the web processes.
  var socket = io("/admin", { transports: ["websocket"] });

  socket.on("connect", function () { state.textContent = "live"; });
  socket.on("disconnect", function () { state.textContent = "disconnected"; });
  socket.on("connect_error", function () { state.textContent = "offline"; });

  function el(tag, cls, text) { var n = document.createElement(tag); if (cls) n.className = cls; if (text != null) n.textContent = text; return n; }

  function addToFeed(ev) {
    var empty = feed.querySelector(".empty"); if (empty) empty.remove();
    var li = el("li", "ev ev-" + ev.type.replace(/\./g, "-"));
    li.appendChild(el("strong", null, ev.type)); li.appendChild(document.createTextNode(" "));
    var summary = ev.subject;
    if (ev.type === "jobs.throughput") summary = (ev.data.succeeded || 0) + " succeeded, " + (ev.data.failed || 0) + " failed";
    if (ev.type === "retention.progress") summary = ev.data.kind + ": " + ev.data.deleted + " deleted";
    if (ev.type === "scan.infected" || ev.type === "scan.error") summary = ev.data.name + ": " + (ev.data.signature || ev.data.error || ev.data.status);
    if (ev.type === "jobs.bulk_progress") summary = ev.data.action + ": " + ev.data.done + "/" + ev.data.total + " examined, " + ev.data.changed + " changed";
    var d = ev.data || {};
    if (ev.type === "subscription.provisioned" || ev.type === "subscription.expired") summary = d.username + " (" + d.status + ")";
    if (ev.type === "provisioning.failed") summary = d.username + ": " + (d.error || "failed");
    if (ev.type === "payment.failed" || ev.type === "payment.held") summary = d.phone + ": " + (d.reason || d.status);
    if (ev.type === "payment.unmatched") summary = d.checkout_request_id + ": result " + d.result_code + (d.amount_paid ? ", paid " + d.amount_paid : "") + ", not registered";
    if (ev.type === "payment.processed") summary = d.phone + " paid " + (d.amount_paid || d.amount_expected) + " → " + d.username;
    if (ev.type === "router.online" || ev.type === "router.offline") summary = d.name + " " + d.status + (d.error ? ": " + d.error : "");
    li.appendChild(el("span", "subject", summary));
    var t = el("time", null, ev.occurred_at.substr(11, 8)); t.setAttribute("datetime", ev.occurred_at); t.title = ev.occurred_at;
    li.appendChild(t);
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > 50) feed.removeChild(feed.lastChild);
  }

  function addDeadRow(ev) {
    var table = document.getElementById("jobs-table"); if (!table) return;
    if (table.querySelector('tr[data-job-id="' + ev.subject + '"]')) return;
    var empty = document.getElementById("jobs-empty"); if (empty) empty.remove();
    table.classList.remove("hidden");
    var tr = el("tr", "fresh"); tr.dataset.jobId = ev.subject;
    if (table.querySelector("thead input[data-select-all]")) {
      var td = el("td"), box = el("input"); box.type = "checkbox"; box.name = "job_id"; box.value = ev.subject; td.appendChild(box); tr.appendChild(td);
    }
    var link = el("a"); link.href = "/admin/jobs/" + ev.subject; link.appendChild(el("code", null, ev.subject.substr(0, 8)));
    var first = el("td"); first.appendChild(link); tr.appendChild(first);
    tr.appendChild(el("td", null, ev.data.job_type));
    tr.appendChild(el("td", null, "")); tr.appendChild(el("td", null, ""));
    var st = el("td"); st.appendChild(el("span", "state state-bad", "dead")); tr.appendChild(st);
    tr.appendChild(el("td", null, ev.data.attempt + "/" + ev.data.max_attempts));
    tr.appendChild(el("td", null, "just now"));
    tr.appendChild(el("td", "error", (ev.data.error || "").substr(0, 80)));
    table.querySelector("tbody").insertBefore(tr, table.querySelector("tbody").firstChild);
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

  function bump(name, n) {
    document.querySelectorAll('[data-live-count="' + name + '"]').forEach(function (node) {
      node.textContent = String(parseInt(node.textContent || "0", 10) + n);
    });
  }

  // The dashboard's figures and charts follow the feed: a refresh of its live part when work
  // is reported, at most every 2 s (pushed, not polled: nothing is fetched while nothing happens).
  var refreshTimer = null;
  function refreshDashboard() {
    if (page !== "dashboard" || refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      fetch("/admin/?part=live", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var live = document.getElementById("dashboard-live");
          if (html && live) { var box = document.createElement("div"); box.innerHTML = html;
            var fresh = box.querySelector("#dashboard-live"); if (fresh) live.replaceWith(fresh); }
        });
    }, 2000);
  }

  socket.onAny(function (type, ev) {
    if (!ev || !ev.type) return;
    addToFeed(ev);
    if (type.indexOf("job") === 0) refreshDashboard();
    if (type === "jobs.throughput") { bump("succeeded", ev.data.succeeded || 0); bump("failed", ev.data.failed || 0); }
    if (type === "job.dead" && page === "dead") addDeadRow(ev);
    if (type === "job.dead" || type === "job.failed") updateRow(ev);
    if (type === "jobs.bulk_progress" || type === "jobs.bulk_completed") bulkProgress(ev);
    if (page === "retention" && type.indexOf("retention.") === 0) retentionProgress(ev);
  });
})();
