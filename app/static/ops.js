// Opsdeck admin, the workers page: heartbeats pushed to its own Socket.IO room ("workers"),
// rows updated in place, and a process shown silent once its heartbeats stop.
(function () {
  "use strict";
  var table = document.getElementById("workers-table");
  if (!table || typeof io === "undefined") return;
  var body = table.querySelector("tbody"), empty = document.getElementById("workers-empty");
  var stateLine = document.getElementById("workers-state");

  function el(tag, cls, text) { var n = document.createElement(tag); if (cls) n.className = cls; if (text != null) n.textContent = text; return n; }
  function ago(iso) {
    var s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s >= 86400) return Math.floor(s / 86400) + " d ago";
    if (s >= 3600) return Math.floor(s / 3600) + " h ago";
    if (s >= 60) return Math.floor(s / 60) + " min ago";
    return Math.floor(s) + " s ago";
  }
  function time(iso) { var t = el("time", null, iso ? ago(iso) : "—"); if (iso) { t.setAttribute("datetime", iso); t.title = iso; } return t; }
  function cell(row, cls) { var td = row.querySelector("td." + cls); td.textContent = ""; return td; }

  function markSilence() {
    body.querySelectorAll("tr[data-worker-id]").forEach(function (row) {
      var silent = (Date.now() - Date.parse(row.dataset.lastHeartbeat)) / 1000 > parseFloat(row.dataset.silentAfter);
      row.classList.toggle("silent", silent);
      var badge = row.querySelector("td.w-state .state");
      badge.className = "state " + (silent ? "state-bad" : "state-ok");
      badge.textContent = silent ? "silent" : "alive";
      var beat = row.querySelector("td.w-beat time"); if (beat) beat.textContent = ago(beat.getAttribute("datetime"));
    });
  }

  function update(p) {
    var row = body.querySelector('tr[data-worker-id="' + p.id + '"]');
    if (!row) {
      row = el("tr"); row.dataset.workerId = p.id;
      var first = el("td", "nowrap"); first.appendChild(el("code", null, p.host)); first.appendChild(document.createTextNode(" pid "));
      first.appendChild(el("code", null, String(p.pid))); row.appendChild(first);
      var st = el("td", "w-state"); st.appendChild(el("span", "state state-ok", "alive")); row.appendChild(st);
      ["w-queues", "w-busy nowrap", "w-jobs", "w-rss nowrap", "w-started nowrap", "w-beat nowrap"].forEach(function (c) { row.appendChild(el("td", c)); });
      body.appendChild(row);
      table.classList.remove("hidden"); if (empty) empty.classList.add("hidden");
    }
    row.dataset.lastHeartbeat = p.last_heartbeat; row.dataset.silentAfter = String(p.silent_after);
    var scheduler = p.role === "scheduler";
    cell(row, "w-queues").textContent = scheduler ? "scheduler" : p.queues.join(", ");
    cell(row, "w-busy").textContent = scheduler ? "—" : p.busy + " / " + p.threads;
    var jobs = cell(row, "w-jobs");
    if (!p.jobs.length) jobs.textContent = "—";
    p.jobs.forEach(function (job, i) {
      if (i) jobs.appendChild(el("br"));
      var a = el("a"); a.href = "/admin/jobs/" + job.id; a.appendChild(el("code", null, job.id.substr(0, 8)));
      jobs.appendChild(a); jobs.appendChild(document.createTextNode(" " + job.actor));
    });
    cell(row, "w-rss").textContent = p.rss_bytes ? (p.rss_bytes / 1048576).toFixed(1) + " MiB" : "—";
    cell(row, "w-started").appendChild(time(p.started_at));
    cell(row, "w-beat").appendChild(time(p.last_heartbeat));
    row.classList.add("fresh");
    markSilence();
  }

  function remove(p) {
    var row = body.querySelector('tr[data-worker-id="' + p.id + '"]'); if (row) row.remove();
    if (!body.children.length) { table.classList.add("hidden"); if (empty) empty.classList.remove("hidden"); }
  }

  // A connection of its own, in the workers room only this page joins: heartbeats never reach the feed.
  var socket = io("/admin", { transports: ["websocket"], forceNew: true });
  socket.on("connect", function () { socket.emit("watch", "workers"); stateLine.textContent = "Updates live."; table.dataset.live = "1"; });
  socket.on("disconnect", function () { stateLine.textContent = "Disconnected; reload to see the latest."; delete table.dataset.live; });
  socket.on("workers.heartbeat", update);
  socket.on("workers.gone", remove);
  setInterval(markSilence, 1000);
})();
