"""A real SMTP server (aiosmtpd) that keeps what it receives: the relay of the email tests and
benchmarks, and the development stack's mail sink (`python -m tests.fakes.smtp_sink`, every
mail written as an .eml file under --dir).

Tests can script answers to MAIL, RCPT and the end of DATA (`450 …` then success, `550 …`,
`421 …`) and slow the DATA answer down, and count SMTP sessions (one EHLO/HELO per connection).
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import ssl
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session: int
    at: float

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        session.opsdeck_id = self.sink._new_session()
        if self.sink.pipelining:  # aiosmtpd reads pipelined commands in order; it just does not say so
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        session.host_name = hostname
        session.opsdeck_id = self.sink._new_session()
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        answer = self.sink._scripted(address, "MAIL")
        if answer is not None:
            return answer
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        answer = self.sink._scripted(address, "RCPT")
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.data_delay:
            await asyncio.sleep(self.sink.data_delay)
        answer = self.sink._scripted(envelope.rcpt_tos[0], "DATA") if envelope.rcpt_tos else None
        if answer is not None:
            return answer
        self.sink._keep(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.content,
                getattr(session, "opsdeck_id", 0),
                time.time(),
            )
        )
        return "250 Message accepted"


class SmtpSink:
    """`tls`: a server SSLContext, offered by STARTTLS (required) or, with `implicit_tls`, from
    the first byte (SMTPS). `credentials`: AUTH required with this login and password.
    `pipelining`: whether EHLO offers PIPELINING."""

    def __init__(
        self,
        port: int = 0,
        directory: Path | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
        pipelining: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        from tests.fakes.processes import free_port

        self.host = host
        self.port = port or free_port()
        self.directory = directory
        self.received: list[Received] = []
        self.sessions = 0
        self.logins: list[str] = []
        self.credentials = credentials
        #: Advertise PIPELINING (RFC 2920) in the EHLO reply, as Postfix, Exim and the hosted relays do.
        self.pipelining = pipelining
        #: Seconds to wait before answering DATA (a send in flight when a worker dies).
        self.data_delay = 0.0
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        options: dict[str, Any] = {}
        if tls is not None and implicit_tls:
            options["ssl_context"] = tls
        elif tls is not None:
            options.update(tls_context=tls, require_starttls=True)
        if credentials is not None:
            # (with implicit TLS aiosmtpd does not see the transport as TLS; it is)
            options.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=tls is not None and not implicit_tls,
            )
        self.controller = Controller(_Handler(self), hostname=host, port=self.port, **options)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.credentials is not None and (login, password) == self.credentials
        if ok:
            with self._lock:
                self.logins.append(login)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def script(self, address: str, *answers: str, at: str = "RCPT") -> None:
        """The next answers (e.g. "450 4.2.0 Mailbox busy"), then 250: to RCPT of `address`, to
        MAIL from `address` (at="MAIL"), or at the end of DATA of a mail to it (at="DATA")."""
        with self._lock:
            self._scripts[f"{at} {address.lower()}"].extend(answers)

    def _scripted(self, address: str, at: str) -> str | None:
        with self._lock:
            queue = self._scripts.get(f"{at} {address.lower()}")
            return queue.popleft() if queue else None

    def _new_session(self) -> int:
        with self._lock:
            self.sessions += 1
            return self.sessions

    def _keep(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{len(self.received):06d}.eml"
            (self.directory / name).write_bytes(item.data)

    def message_ids(self) -> list[str]:
        with self._lock:
            return [r.message["Message-ID"] for r in self.received]

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def close(self) -> None:
        self.controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Opsdeck's development SMTP sink")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"))
    args = parser.parse_args()
    sink = SmtpSink(args.port, args.dir).start()
    print(f"SMTP sink on 127.0.0.1:{args.port}, keeping mail under {args.dir}/", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sink.close()


if __name__ == "__main__":
    main()
