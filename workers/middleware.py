"""Dramatiq middleware: a Flask app context per message, and the ledger that moves every job
through its states, retries it with per-actor backoff and jitter, and keeps its lease alive.

Actors never touch job status: they get a ClaimedJob and return a result.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from dramatiq import Message, Middleware
from dramatiq.middleware import Shutdown, SkipMessage
from flask import Flask

from app import live
from app.broker.combining import Combiner
from app.db import warmup
from app.models.base import utcnow
from app.services.jobs import ledger, redelivery
from app.telemetry import logs, metrics, sentry, tracing

log = logging.getLogger("opsdeck.worker")

_local = threading.local()


def current_job() -> ledger.ClaimedJob:
    """The job the current worker thread is running."""
    job = getattr(_local, "job", None)
    if job is None:
        raise RuntimeError("no job is being processed on this thread")
    return job


class AppContext(Middleware):
    """Push a Flask app context around each message (sessions are removed when it pops)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def before_process_message(self, broker: Any, message: Any) -> None:
        ctx = self.app.app_context()
        ctx.push()
        _local.app_ctx = ctx

    def _pop(self) -> None:
        ctx = getattr(_local, "app_ctx", None)
        if ctx is not None:
            _local.app_ctx = None
            ctx.pop()

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        self._pop()

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._pop()


class Claims:
    """Claims of a worker process's threads combined (app/broker/combining.py): the thread whose turn
    it is claims its job together with every job the other threads asked for meanwhile, in one
    statement and one transaction. Under load that is one write transaction for several
    messages (on SQLite, one turn of its single write lock); alone, a thread claims at once."""

    def __init__(self, worker_id: Callable[[], str], lease_seconds: int) -> None:
        self.worker_id, self.lease_seconds = worker_id, lease_seconds
        self.claim: Combiner[str, ledger.ClaimedJob | None] = Combiner(self._run)

    def _run(self, job_ids: list[str]) -> list[ledger.ClaimedJob | None]:
        claimed = ledger.claim_many(job_ids, self.worker_id(), self.lease_seconds)
        taken: set[str] = set()
        jobs: list[ledger.ClaimedJob | None] = []
        for job_id in job_ids:  # a duplicate message in the same batch must not run twice
            job = None if job_id in taken else claimed.get(job_id)
            if job is not None:
                taken.add(job_id)
            jobs.append(job)
        return jobs


class SuccessBuffer:
    """Successes recorded in batches: one transaction for every job that finished in the last
    FLUSH_SECONDS on this worker process, instead of one per job.

    Safe under at-least-once: until its batch commits a job stays `running` under its lease, so
    a worker that dies with a batch in memory has those jobs re-run after the lease expires.
    """

    FLUSH_SECONDS = 0.02
    MAX_BATCH = 200

    def __init__(self, app: Flask, worker_id: Callable[[], str]) -> None:
        self.app, self.worker_id = app, worker_id
        self._items: list[tuple[str, Any, Any]] = []
        self._writes: list[ledger.Write] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, job_id: str, result: Any, writes: list[ledger.Write] | None = None) -> None:
        if self._thread is None:  # not started (e.g. a worker in a test harness): write now
            with self.app.app_context():
                ledger.succeed(job_id, self.worker_id(), result, writes)
            return
        with self._lock:
            self._items.append((job_id, result, utcnow()))
            self._writes.extend(writes or ())
            if len(self._items) >= self.MAX_BATCH:
                self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="opsdeck-success-batches", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            writes, self._writes = self._writes, []
        if not items:
            return
        try:
            with self.app.app_context():
                try:
                    ledger.succeed_many(self.worker_id(), items, _grouped(writes))
                except Exception:  # e.g. a deadlock or a serialisation failure: once more
                    log.warning("success batch failed; retrying once", exc_info=True)
                    ledger.succeed_many(self.worker_id(), items, _grouped(writes))
        except Exception:
            # Left running under their leases: recovery re-runs them (at-least-once).
            log.exception("could not record %d success(es); their leases will expire", len(items))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.FLUSH_SECONDS)
            self._wake.clear()
            self.flush()


def _grouped(writes: list[ledger.Write]) -> list[ledger.Write]:
    """The same statements next to each other (one executemany each), first-seen order kept."""
    order: dict[int, int] = {}
    for stmt, _ in writes:
        order.setdefault(id(stmt), len(order))
    return sorted(writes, key=lambda w: order[id(w[0])])


class Ledger(Middleware):
    """Claim the job row before the actor runs; record the outcome after; heartbeat leases."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.lease_seconds = int(app.config["JOB_LEASE_SECONDS"])
        self.max_broker_delay = int(app.config["OUTBOX_MAX_BROKER_DELAY"])
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.broker: Any = None
        self.throughput = live.ThroughputCounter(app)
        self.successes = SuccessBuffer(app, lambda: self.worker_id)
        self.claims = Claims(lambda: self.worker_id, self.lease_seconds)

    @property
    def actor_options(self) -> set[str]:
        return {"min_backoff", "max_backoff", "retry_schedule", "throws", "max_age"}

    # -- lifecycle ---------------------------------------------------------
    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        warmup.warm(self.app)  # before the first message: its connections are open

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        self.broker = broker
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat_loop, name="opsdeck-lease-heartbeat", daemon=True)
        self._beat.start()
        self.throughput.start()
        self.successes.start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stop.set()

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self.successes.stop()
        self.throughput.stop()
        metrics.process_exited()
        tracing.shutdown()  # a worker process exits without running atexit

    def _heartbeat_loop(self) -> None:
        interval = max(1.0, self.lease_seconds / 3)
        while True:
            try:
                redelivery.keep_alive(self.broker)
            except Exception:
                log.warning("broker heartbeat failed", exc_info=True)
            if self._stop.wait(interval):
                break
            with self._lock:
                ids = list(self._running)
            if not ids:
                continue
            try:
                with self.app.app_context():
                    ledger.heartbeat(self.worker_id, ids, self.lease_seconds)
            except Exception:
                log.exception("lease heartbeat failed for %d job(s)", len(ids))

    # -- messages ----------------------------------------------------------
    def before_process_message(self, broker: Any, message: Any) -> None:
        _local.job = None
        _local.span = tracing.consume(message)  # the claim, the actor and the outcome, under the job's trace
        try:
            job = self.claims.claim(message.message_id)
        except Exception:
            # Database unreachable: hand the message back later rather than run unrecorded work.
            log.exception("claim failed for job %s; re-enqueueing in 10 s", message.message_id)
            broker.enqueue(_fresh(message), delay=10_000)
            raise SkipMessage("claim failed") from None
        if job is None:
            log.info("job %s is finished, cancelled or held by another worker; message skipped", message.message_id)
            raise SkipMessage("job not claimable")
        max_age = broker.get_actor(message.actor_name).options.get("max_age")
        if max_age and job.attempts == 1 and job.due_at and (utcnow() - job.due_at).total_seconds() * 1000 > max_age:
            ledger.fail(
                job.id,
                self.worker_id,
                error=f"AgeLimitExceeded: not started within {max_age} ms",
                traceback=None,
                retry_in=None,
            )
            log.warning("job %s expired before it started (max_age %d ms)", job.id, max_age)
            metrics.job_event("dead", job.type, _base_queue(message.queue_name))
            raise SkipMessage("job too old")
        _local.job, _local.began = job, time.perf_counter()
        metrics.job_event("started", job.type, _base_queue(message.queue_name))
        sentry.tag_job(job.id, job.type, job.tenant_id, message.actor_name)
        _local.log_context = logs.enter(job_id=job.id, actor=message.actor_name, tenant=job.tenant_id)
        with self._lock:
            self._running.add(job.id)
        log.info("job running", extra={"job_type": job.type, "attempt": job.attempts, "max_attempts": job.max_attempts})

    def after_skip_message(self, broker: Any, message: Any) -> None:
        _local.job = None
        self._leave_log_context()
        self._end_span(None, None)

    def _leave_log_context(self) -> None:
        token = getattr(_local, "log_context", None)
        _local.log_context = None
        if token is not None:
            logs.leave(token)

    def _end_span(self, job: ledger.ClaimedJob | None, exception: Any) -> None:
        span, _local.span = getattr(_local, "span", None), None
        if span is not None:
            failed = None if isinstance(exception, ledger.Postpone | Shutdown) else exception
            tracing.consumed(span, job.type if job else None, job.attempts if job else None, failed)

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        job = getattr(_local, "job", None)
        try:
            self._finish(broker, message, exception)
        finally:
            self._leave_log_context()
            self._end_span(job, exception)

    def _finish(self, broker: Any, message: Any, exception: Any) -> None:
        """Record the outcome of the job this thread ran in the ledger (one line logged per transition)."""
        job: ledger.ClaimedJob | None = getattr(_local, "job", None)
        _local.job = None
        if job is None:
            return
        with self._lock:
            self._running.discard(job.id)
        ran, queue_name = time.perf_counter() - _local.began, _base_queue(message.queue_name)
        if exception is None:
            metrics.job_event("succeeded", job.type, queue_name, ran)  # before the batch can commit it
            self.successes.add(job.id, job.result, job.writes)
            self.throughput.add("succeeded", job.type)
            log.info("job succeeded", extra={"job_type": job.type, "duration_ms": round(ran * 1000, 2)})
            return
        if isinstance(exception, Shutdown):
            # Not re-enqueued from here: this worker could fetch it again while it stops.
            # The relay publishes released jobs to the workers still running.
            ledger.release(job.id, self.worker_id)
            sentry.job_outcome("released")
            log.warning("job %s released at shutdown; the relay will re-queue it", job.id)
            return
        if isinstance(exception, ledger.Postpone):
            due = ledger.postpone(job.id, self.worker_id, exception.seconds)
            sentry.job_outcome("postponed")
            if due is not None and exception.seconds <= self.max_broker_delay:
                self._republish(broker, message, job.id, exception.seconds)
            log.debug("job %s postponed %.1f s: %s", job.id, exception.seconds, exception)
            return
        actor = broker.get_actor(message.actor_name)
        throws = actor.options.get("throws")
        retryable = not (throws and isinstance(exception, throws)) and not isinstance(exception, ledger.GiveUp)
        if isinstance(exception, ledger.RetryIn):
            delay: float | None = exception.seconds
        else:
            delay = ledger.retry_delay(job.attempts, actor.options, self.app.config) if retryable else None
        text = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        outcome = ledger.fail(
            job.id, self.worker_id, error=f"{type(exception).__name__}: {exception}", traceback=text, retry_in=delay
        )
        if outcome.status:
            metrics.job_event("retried" if outcome.status == "retrying" else "dead", job.type, queue_name, ran)
            sentry.job_outcome(outcome.status)
        failed = {"job_type": job.type, "duration_ms": round(ran * 1000, 2), "attempt": job.attempts}
        if outcome.status == "retrying":
            log.warning("job retrying in %.1f s: %s", delay or 0, exception, extra=failed)
            if delay is not None and delay <= self.max_broker_delay:
                self._republish(broker, message, job.id, delay)
        elif outcome.status == "dead":
            message.fail()  # also into Dramatiq's dead-letter queue
            log.error("job %s is dead after %d attempt(s): %s", job.id, job.attempts, exception, extra=failed)
        if outcome.status:
            self.throughput.add("failed", job.type)
            live.publish(
                f"job.{'dead' if outcome.status == 'dead' else 'failed'}",
                subject=job.id,
                tenant_id=job.tenant_id,
                data={
                    "job_type": job.type,
                    "attempt": job.attempts,
                    "max_attempts": job.max_attempts,
                    "error": f"{type(exception).__name__}: {exception}"[:500],
                    "next_attempt_at": outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else None,
                },
            )

    def _republish(self, broker: Any, message: Any, job_id: str, delay: float) -> None:
        try:
            broker.enqueue(_fresh(message), delay=int(delay * 1000) or None)
            ledger.mark_published(job_id)
        except Exception:
            log.warning("could not re-enqueue job %s; the relay will", job_id, exc_info=True)


def _fresh(message: Any) -> Message:
    """The same job message (same id) without the broker's per-delivery options (its trace kept)."""
    carried = message.options.get(tracing.TRACEPARENT)
    return Message(
        queue_name=_base_queue(message.queue_name),
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        options={tracing.TRACEPARENT: carried} if carried else {},
        message_id=message.message_id,
    )


def _base_queue(name: str) -> str:
    return name[: -len(".DQ")] if name.endswith(".DQ") else name
