"""P10 (email): mails per second from submit to the SMTP sink, against a raw smtplib loop
sending the same pre-rendered mails over one connection to the same sink, in the same run.

    python -m bench.email

BENCH_EMAILS mails (default 2000) are submitted through the service (commits of 200) while
`dramatiq workers --queues email` (1 process, 8 threads) runs; the rate is mails / (first
submit -> last mail at the sink). Pacing is switched off for the measurement
(EMAIL_RATE_PER_MINUTE=0, EMAIL_DELAY=0) and EMAIL_BATCH_SIZE is 500: the figure is the
machinery's cost, not the configured relay pace.
"""

from __future__ import annotations

import smtplib
import time

from bench.common import Report, Stack, env_int, exit_on_sigterm, per_backend, print_table, ratio, tenant_database
from bench.throughput import _app, _dramatiq, _poll, _wait_boot
from tests.fakes.processes import Process
from tests.fakes.smtp_sink import SmtpSink

NAME = "P10 email"
GOAL_RATIO = 0.7


def raw_loop(sink: SmtpSink, messages: list[bytes]) -> float:
    """Mails/s of smtplib sending pre-rendered mails over one connection."""
    began = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", sink.port, timeout=30)
    for data in messages:
        smtp.sendmail("bench@localhost", ["raw@example.com"], data)
    smtp.quit()
    return len(messages) / (time.perf_counter() - began)


def bench_backend(st: Stack, backend: str, report: Report) -> None:
    from app.extensions import db
    from app.services.email import batches, compose, mails

    n = env_int("BENCH_EMAILS", 2000)
    st.flushall()
    sink = SmtpSink().start()
    try:
        with tenant_database(
            st, backend, SMTP_PORT=sink.port, EMAIL_RATE_PER_MINUTE=0, EMAIL_DELAY=0, EMAIL_BATCH_SIZE=500
        ) as (env, tenant):
            with _app(env):
                sample = mails.submit(
                    tenant["tenant_id"],
                    [mails.NewMail(to="raw@example.com", template="notification", context={"message": "x"})],
                )
                pre_rendered = compose.compose(sample[0]).data
                db.session.rollback()
            base = raw_loop(sink, [pre_rendered] * n)
            sink.received.clear()
            workers = Process(_dramatiq("workers", "email", 1), env, f"email-{backend}", st.tmp)
            started = time.perf_counter()
            workers.start()
            try:
                _wait_boot(workers, 1, started)
                with _app(env):
                    began = time.time()
                    for start in range(0, n, 200):
                        items = [
                            mails.NewMail(
                                to=f"u{i}@example.com",
                                template="notification",
                                context={"title": "Order", "message": f"Order {i} shipped."},
                            )
                            for i in range(start, min(n, start + 200))
                        ]
                        mails.submit(tenant["tenant_id"], items)
                        if start + 200 >= n or (start // 200) % 3 == 2:
                            batches.submit_flush()
                        db.session.commit()
                    db.session.remove()
                _poll(lambda: len(sink.received) >= n, 180, workers)
            finally:
                workers.stop(15)
            done = len(sink.received)
            last = max(r.at for r in sink.received) if sink.received else began
            rate = done / (last - began) if done else 0.0
            r = ratio(rate, base)
            print(
                f"\n[{NAME} / {backend}] {n} mails: raw smtplib loop {base:.0f}/s; Opsdeck submit -> sink "
                f"{done}/{n} at {rate:.0f}/s over {sink.sessions} SMTP sessions = {r:.2f}x"
            )
            met = r >= GOAL_RATIO and done >= n
            print(f"  goal >= {GOAL_RATIO:g}x the raw loop: {'met' if met else 'NOT met'}")
            report.add(
                f"{NAME} {backend}",
                "mails/s vs raw smtplib loop",
                f"{rate:.0f} vs {base:.0f} = {r:.2f}x",
                f">= {GOAL_RATIO:g}x",
                met,
            )
    finally:
        sink.close()


def run(report: Report | None = None, st: Stack | None = None) -> Report:
    return per_backend(bench_backend, report, st)


if __name__ == "__main__":
    exit_on_sigterm()
    print_table(run().rows)
