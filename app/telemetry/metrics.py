"""Prometheus metrics: the series, the one-line hooks services call, `GET /metrics`, and the
collector that reads queue depths from the ledger at scrape time.

Every web, worker and scheduler process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode) and `/metrics` adds them up.
prometheus_client decides between in-memory and file-backed values from the environment when
it is imported, so nothing is created at import here: `configure(path)` (called by create_app,
before anything counts) sets the variable, installs a file-backed value class for that
directory and builds the series. Processes that exit leave their files: counters must not go
back down while the rest run; the directory is emptied when the whole stack starts (docs/operations.md,
Metrics).

Labels are closed sets (Flask endpoint names, job types, queues, fixed outcomes): never a path,
an id or anything a client chooses.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger("opsdeck.metrics")

#: Request latency buckets (seconds): most answers take milliseconds; uploads take longer.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Job duration buckets (seconds), up to the default actor time limit (600 s).
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)
#: HTTP methods kept as they are; anything else a client sends is counted as `other`.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STARTED = "opsdeck.metrics.started"


class Series:
    """Every series a process writes, built against the current value class (see configure)."""

    def __init__(self) -> None:
        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), registry=None)

        job = ("type", "queue")
        http = ("endpoint", "method", "status")
        self.http_requests = counter("opsdeck_http_requests", "HTTP requests answered, by Flask endpoint.", http)
        self.http_duration = Histogram(
            "opsdeck_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            list(http),
            registry=None,
            buckets=HTTP_BUCKETS,
        )
        self.api_auth_failures = counter("opsdeck_api_auth_failures", "Signed API requests refused (401).", ["reason"])
        self.jobs = {
            "enqueued": counter("opsdeck_jobs_enqueued", "Job messages published to the broker.", job),
            "started": counter("opsdeck_jobs_started", "Job attempts started (claimed by a worker).", job),
            "succeeded": counter("opsdeck_jobs_succeeded", "Job attempts that succeeded.", job),
            "retried": counter("opsdeck_jobs_retried", "Failed job attempts scheduled to run again.", job),
            "dead": counter("opsdeck_jobs_dead", "Jobs that went dead (attempts used up, or not retryable).", job),
        }
        self.job_duration = Histogram(
            "opsdeck_job_duration_seconds",
            "Time one job attempt ran in a worker.",
            ["type"],
            registry=None,
            buckets=JOB_BUCKETS,
        )
        self.emails = counter("opsdeck_emails", "Mails by the outcome of a send attempt.", ["outcome"])
        self.email_suppressions = counter("opsdeck_email_suppressions", "Addresses suppressed by a send.", ["reason"])
        self.webhook_attempts = counter("opsdeck_webhook_attempts", "Webhook delivery attempts.", ["outcome"])
        self.scans = counter("opsdeck_scans", "Scan verdicts (rescans included).", ["verdict"])
        self.scanned_bytes = counter("opsdeck_scanned_bytes", "Bytes of files given a verdict by clamd.")
        self.provisioning = counter("opsdeck_provisioning", "Subscriptions provisioned, failed, expired.", ["outcome"])
        self.retention_rows = counter("opsdeck_retention_deleted_rows", "Rows deleted by retention.", ["kind"])
        self.retention_bytes = counter("opsdeck_retention_deleted_bytes", "Bytes of files deleted by retention.")
        self.long_waits = counter("opsdeck_queue_long_waits", "Long-wait alerts raised, by queue.", ["queue"])


_series: Series | None = None
_dir: str | None = None
_value_class: Any = None


def configure(path: str) -> str:
    """Point this process's series at the directory `path` (created if missing); a no-op when
    they already are. Sets PROMETHEUS_MULTIPROC_DIR, so processes started from this one use
    the same directory. Returns the absolute path."""
    global _series, _dir, _value_class
    path = os.path.abspath(path)
    if path == _dir:
        return path
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    previous = _value_class
    _value_class = values.ValueClass = values.MultiProcessValue()
    _series, _dir = Series(), path
    if previous is not None:  # another app in this process (tests): release the old files
        previous.close_all_files()
    return path


def init_app(app: Flask) -> None:
    """Configure the multiprocess directory, time every request, and serve `GET /metrics`."""
    configure(app.config["PROMETHEUS_MULTIPROC_DIR"])
    app.before_request_funcs.setdefault(None, []).insert(0, _request_started)  # first: time all of it
    app.after_request(_request_finished)
    app.add_url_rule("/metrics", "metrics", view)


def process_exited(pid: int | None = None) -> None:
    """Drop a finished process's per-process gauge files (`live*` modes). Its counters stay."""
    path = _dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        _multiprocess.mark_process_dead(pid or os.getpid(), path)


# -- hooks (hot paths: a label lookup and an increment, no I/O besides the mmap) -------------
def _request_started() -> None:
    request.environ[_STARTED] = time.perf_counter()


def _request_finished(response: Response) -> Response:
    series = _series
    if series is not None:
        method = request.method if request.method in METHODS else "other"
        labels = (request.endpoint or "unmatched", method, str(response.status_code))
        series.http_requests.labels(*labels).inc()
        started = request.environ.get(_STARTED)
        if started is not None:
            series.http_duration.labels(*labels).observe(time.perf_counter() - started)
    return response


def api_auth_failed(reason: str) -> None:
    if _series is not None:
        _series.api_auth_failures.labels(reason.replace(" ", "_")).inc()


def jobs_enqueued(items: Iterable[Any]) -> None:
    """Outbox items (job_type, queue_name) just published to the broker."""
    if _series is not None:
        counter = _series.jobs["enqueued"]
        for item in items:
            counter.labels(item.job_type, item.queue_name).inc()


def job_event(event: str, job_type: str, queue: str, seconds: float | None = None) -> None:
    """A job attempt `started`, `succeeded`, `retried` or went `dead`; `seconds` it ran."""
    if _series is not None:
        _series.jobs[event].labels(job_type, queue).inc()
        if seconds is not None:
            _series.job_duration.labels(job_type).observe(seconds)


def email_outcome(outcome: str, count: int = 1) -> None:
    if _series is not None:
        _series.emails.labels(outcome).inc(count)


def email_suppressed(reason: str, count: int = 1) -> None:
    if _series is not None:
        _series.email_suppressions.labels(reason).inc(count)


def webhook_attempt(outcome: str) -> None:
    if _series is not None:
        _series.webhook_attempts.labels(outcome).inc()


def scan_verdict(verdict: str, size: int = 0) -> None:
    if _series is not None:
        _series.scans.labels(verdict).inc()
        if size:
            _series.scanned_bytes.inc(size)


def provisioning_outcome(outcome: str) -> None:
    if _series is not None:
        _series.provisioning.labels(outcome).inc()


def retention_deleted(kind: str | None = None, rows: int = 0, size: int = 0) -> None:
    if _series is not None:
        if kind is not None and rows:
            _series.retention_rows.labels(kind).inc(rows)
        if size:
            _series.retention_bytes.inc(size)


def long_wait_raised(queue: str) -> None:
    if _series is not None:
        _series.long_waits.labels(queue).inc()


# -- the scrape --------------------------------------------------------------------------------
class QueueCollector:
    """Queue depths and worker count, read when scraped (the admin dashboard's queries: one
    grouped query over the ledger's status index, one HGETALL of the heartbeats)."""

    def collect(self) -> Iterator[Metric]:
        from app.services import stats, workers

        depth = GaugeMetricFamily(
            "opsdeck_queue_jobs", "Jobs in the ledger by queue and state.", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "opsdeck_queue_oldest_waiting_seconds", "Age of the oldest due, waiting job (0: none).", labels=["queue"]
        )
        try:
            queues = stats.queue_stats()
        except Exception:
            log.warning("metrics: queue figures unavailable", exc_info=True)
            queues = None
        yield GaugeMetricFamily(
            "opsdeck_queue_stats_up", "1 when the ledger answered this scrape.", value=int(queues is not None)
        )
        if queues is not None:
            now = time.time()
            for q in queues:
                for state in ("waiting", "delayed", "running", "retrying", "dead"):
                    depth.add_metric([q.name, state], getattr(q, state))
                age = now - q.oldest_waiting.timestamp() if q.oldest_waiting else 0.0
                oldest.add_metric([q.name], max(0.0, age))
            yield depth
            yield oldest
            yield _long_waits()
        alive = workers.alive()
        if alive is not None:
            yield GaugeMetricFamily("opsdeck_workers_alive", "Worker processes with a recent heartbeat.", value=alive)


def _long_waits() -> Metric:
    """1 for each queue in a long-wait episode (app/services/alerts.py), 0 for the others."""
    from app import jobtypes
    from app.services import alerts

    gauge = GaugeMetricFamily(
        "opsdeck_queue_long_wait",
        "1 while the queue's oldest waiting job is past its long-wait threshold.",
        labels=["queue"],
    )
    open_ = {alert.queue for alert in alerts.active()}
    for name in sorted(set(jobtypes.all_queue_names()) | open_):
        gauge.add_metric([name], int(name in open_))
    return gauge


def view() -> Response:
    """`GET /metrics`: every process's samples added up, plus the queue collector."""
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return Response(
                "unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain"
            )
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry, path=_dir)
    registry.register(QueueCollector())
    response = Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
