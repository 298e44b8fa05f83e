"""The load generator the HTTP benchmarks share (P1 api, P4 webhooks, P7 provisioning).

It runs on the same cores as the server it measures, so it is as light as it can be: one
keep-alive `http.client` connection per sender thread, and requests built (and signed) before the
clock starts. `requests` plus signing inside the loop cost 3-4 ms of client CPU a call here,
which the server then had to compete for.

Open loop: request i has a scheduled send time `start + i / rate`, and its latency runs from that
time to its answer, so a slow answer delays no measurement (no coordinated omission).
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

REQUEST_TIMEOUT = 10.0

#: method, path, body, headers
Request = tuple[str, str, bytes | None, dict[str, str]]


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened after an error."""

    def __init__(self, base: str, timeout: float = REQUEST_TIMEOUT) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
        return self.exchange(method, path, body, headers)[0]

    def exchange(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Status and body of one request."""
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # reopened by the next request
            raise

    def close(self) -> None:
        self.conn.close()


@dataclass
class Answer:
    """What became of one request of an open loop."""

    index: int
    #: perf_counter time it was due; its latency is `answered - scheduled`.
    scheduled: float
    answered: float
    #: time.time() when it was sent and when its answer arrived (to compare with other processes).
    sent_wall: float
    answered_wall: float
    #: HTTP status; 0 when the connection failed or the request was never sent.
    status: int
    body: bytes
    error: str = ""

    @property
    def latency_ms(self) -> float:
        return (self.answered - self.scheduled) * 1000


def open_loop(
    base: str,
    requests: Sequence[Request],
    rate: float | None,
    senders: int,
    give_up_after: float | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> list[Answer]:
    """Send every request, request i at `start + i / rate` (or back to back when `rate` is
    None) from `senders` threads; a request still unsent `give_up_after` seconds past the end
    of the schedule is answered with status 0 and error "not sent (deadline)". Answers in the
    order of the requests."""
    start = time.perf_counter() + 0.1
    span = len(requests) / rate if rate else 0.0
    deadline = start + span + give_up_after if give_up_after is not None else float("inf")
    index = itertools.count()
    answers: list[Answer | None] = [None] * len(requests)

    def sender() -> None:
        conn = Connection(base, timeout)
        while (i := next(index)) < len(requests):
            due = start + i / rate if rate else time.perf_counter()
            if (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
            sent_wall = time.time()
            if time.perf_counter() > deadline:
                answers[i] = Answer(i, due, time.perf_counter(), sent_wall, sent_wall, 0, b"", "not sent (deadline)")
                continue
            try:
                status, body, error = *conn.exchange(*requests[i]), ""
            except (http.client.HTTPException, OSError) as err:
                status, body, error = 0, b"", type(err).__name__
            answers[i] = Answer(i, due, time.perf_counter(), sent_wall, time.time(), status, body, error)
        conn.close()

    threads = [threading.Thread(target=sender, name=f"sender-{n}", daemon=True) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [a for a in answers if a is not None]
