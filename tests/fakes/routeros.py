"""A RouterOS API server speaking MikroTik's wire protocol (plain, or API-SSL with a
`tls_context`), backed by the in-memory menus of `routeros_menus`: the router the provisioning
tests drive `librouteros` against, and the development stack's demo router
(`python -m tests.fakes.routeros --port 8728 --username admin --password secret`).

Both logins work: the plain `/login =name= =password=` of RouterOS >= 6.43 and the older MD5
challenge. Fault switches, settable while it runs: `refuse` (the port is closed, so connecting
fails with ECONNREFUSED), `stall` (sentences are read and logged, never answered) and
`fatal_next` (the next command gets `!fatal <message>` and the connection is closed).
`empty_replies` turns on RouterOS 7.18's `!empty` before the `!done` of a print that found nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import secrets
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tests.fakes.routeros_menus import RouterMenus, Trap

#: Longest word this server accepts, so a garbage length cannot make it allocate gigabytes.
MAX_WORD = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent bytes that are not API words."""


# -- wire format ----------------------------------------------------------
def encode_length(length: int) -> bytes:
    """The length prefix of a word: 1 to 4 bytes with the top bits saying how many, or 0xF0 + 4 bytes."""
    if length < 0:
        raise ValueError(f"negative length {length}")
    if length < 0x80:
        return bytes([length])
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    if length < 0x10000000:
        return (length | 0xE0000000).to_bytes(4, "big")
    if length <= 0xFFFFFFFF:
        return b"\xf0" + length.to_bytes(4, "big")
    raise ValueError(f"length {length} does not fit a RouterOS word")


def prefix_size(first: int) -> int:
    """How many bytes a length prefix starting with the byte `first` takes."""
    for size, limit in ((1, 0x80), (2, 0xC0), (3, 0xE0), (4, 0xF0)):
        if first < limit:
            return size
    if first == 0xF0:
        return 5
    raise ProtocolError(f"control byte {first:#04x}")  # 0xF8 and up are reserved control bytes


def decode_length(prefix: bytes) -> int:
    size = prefix_size(prefix[0])
    if len(prefix) != size:
        raise ProtocolError(f"length prefix {prefix!r} should be {size} bytes")
    if size == 5:
        return int.from_bytes(prefix[1:], "big")
    return int.from_bytes(prefix, "big") & ((1 << (7 * size)) - 1)


def encode_sentence(words: Iterable[str]) -> bytes:
    encoded = [word.encode("utf-8", "surrogateescape") for word in words]
    return b"".join(encode_length(len(data)) + data for data in encoded) + b"\x00"


def _exactly(read: Callable[[int], bytes], size: int) -> bytes:
    data = read(size)
    if len(data) < size:
        raise EOFError("connection closed inside a sentence" if data else "connection closed")
    return data


def read_sentence(read: Callable[[int], bytes]) -> list[str]:
    """Words up to the empty word; `read(n)` returns n bytes or fewer at end of stream (EOFError)."""
    words = []
    while True:
        prefix = _exactly(read, 1)
        if prefix_size(prefix[0]) > 1:
            prefix += _exactly(read, prefix_size(prefix[0]) - 1)
        length = decode_length(prefix)
        if length == 0:
            return words
        if length > MAX_WORD:
            raise ProtocolError(f"word of {length} bytes")
        # surrogateescape: any bytes round-trip, UTF-8 reads as text
        words.append(_exactly(read, length).decode("utf-8", "surrogateescape"))


def challenge_response(password: str, challenge: bytes) -> str:
    """The pre-6.43 login answer: "00" + md5(NUL + password + challenge)."""
    digest = hashlib.md5(b"\x00" + password.encode() + challenge, usedforsecurity=False)
    return "00" + digest.hexdigest()


@dataclass(frozen=True)
class Command:
    """One sentence a client sent, as the server read it."""

    connection: int
    path: str
    attributes: Mapping[str, str]
    queries: tuple[str, ...]
    tag: str | None
    #: Words that are neither `=attribute=`, `?query` nor `.tag=` (answered "unknown parameter").
    other: tuple[str, ...] = ()

    @classmethod
    def parse(cls, connection: int, words: Sequence[str]) -> Command:
        attributes, queries, tag, other = {}, [], None, []
        for word in words[1:]:
            if word.startswith("="):
                key, _, value = word[1:].partition("=")
                attributes[key] = value
            elif word.startswith("?"):
                queries.append(word)
            elif word.startswith(".tag="):
                tag = word[5:]
            else:
                other.append(word)
        return cls(connection, words[0], attributes, tuple(queries), tag, tuple(other))


# -- one client -------------------------------------------------------------
class _Connection:
    def __init__(self, server: RouterOsServer, sock: socket.socket, number: int) -> None:
        self.server = server
        self.sock = sock
        self.number = number
        self.user: str | None = None
        self.challenge: bytes | None = None

    def run(self) -> None:
        stream = None
        try:
            if self.server.tls_context is not None:
                self.sock = self.server.tls_context.wrap_socket(self.sock, server_side=True)
            stream = self.sock.makefile("rb")
            while True:
                words = read_sentence(stream.read)
                if words and not self._answer(Command.parse(self.number, words)):
                    break
        except (EOFError, OSError, ProtocolError, ValueError):
            pass  # the client went away or sent garbage: a router drops the connection
        finally:
            self.abort()
            if stream is not None:
                stream.close()
            self.sock.close()
            self.server._forget(self)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _answer(self, command: Command) -> bool:
        """Reply to one sentence; False closes the connection."""
        server = self.server
        server._record(command)
        if server.stall:
            return True
        fatal = server._take_fatal()
        if fatal is not None or command.path == "/quit":
            self.sock.sendall(encode_sentence(["!fatal", fatal or "session terminated on request"]))
            return False
        if command.path == "/login":
            return self._login(command)
        try:
            if self.user is None:
                raise Trap("not logged in")
            if command.other:
                raise Trap("unknown parameter")
            menu, verb = server.menus.resolve(command.path)
            rows, done = server.menus.run(menu, verb, dict(command.attributes), command.queries)
        except Trap as trap:
            self._reply(command, trap=trap)
            return True
        empty = server.empty_replies and verb in ("print", "getall") and not rows and not done
        self._reply(command, rows, done, empty=empty)
        return True

    def _login(self, command: Command) -> bool:
        attrs = command.attributes
        if not attrs:  # the pre-6.43 handshake starts with a bare /login
            self.challenge = secrets.token_bytes(16)
            self._reply(command, done={"ret": self.challenge.hex()})
            return True
        name = attrs.get("name", "")
        known = self.server.accounts.get(name)
        challenge, self.challenge = self.challenge, None
        if known is None:
            ok = False
        elif "response" in attrs:
            ok = challenge is not None and attrs["response"] == challenge_response(known, challenge)
        else:
            ok = attrs.get("password") == known
        if not ok:  # RouterOS answers the trap, then drops the connection
            self._reply(command, trap=Trap("invalid user name or password (6)"))
            return False
        self.user = name
        with self.server._lock:
            self.server.logins.append(name)
        self._reply(command)
        return True

    def _reply(
        self,
        command: Command,
        rows: Sequence[Mapping[str, str]] = (),
        done: Mapping[str, str] | None = None,
        *,
        trap: Trap | None = None,
        empty: bool = False,
    ) -> None:
        tag = [f".tag={command.tag}"] if command.tag is not None else []
        sentences = [["!re", *(f"={k}={v}" for k, v in row.items()), *tag] for row in rows]
        if trap is not None:
            category = [f"=category={trap.category}"] if trap.category is not None else []
            sentences.append(["!trap", *category, f"=message={trap.message}", *tag])
        if empty:
            sentences.append(["!empty", *tag])
        sentences.append(["!done", *(f"={k}={v}" for k, v in (done or {}).items()), *tag])
        self.sock.sendall(b"".join(encode_sentence(words) for words in sentences))


# -- the server ---------------------------------------------------------------
class RouterOsServer:
    """A RouterOS API endpoint on `host`:`port` (port 0: one the OS picks; read `.port` after start).

    `accounts` maps user names to passwords (one account from `username`/`password`); `menus` is
    the router's configuration, shared by every connection. `commands` logs every sentence read.
    """

    def __init__(
        self,
        username: str = "admin",
        password: str = "",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        empty_replies: bool = False,
        menus: RouterMenus | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls_context = tls_context
        self.accounts: dict[str, str] = {username: password}
        self.menus = menus or RouterMenus()
        #: Send `!empty` before `!done` when a print finds nothing, like RouterOS >= 7.18.
        self.empty_replies = empty_replies
        #: Read sentences but never answer them (client timeouts).
        self.stall = False
        #: A message: the next command, on any connection, is answered `!fatal <message>` and dropped.
        self.fatal_next: str | None = None
        self.commands: list[Command] = []
        self.logins: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._state = threading.Condition()
        self._refuse = False
        self._closed = False
        self._wanted = self._applied = 0
        self._listen_error: OSError | None = None
        self._open: set[_Connection] = set()
        self._threads: list[threading.Thread] = []
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)

    # -- switches and inspection ------------------------------------------
    @property
    def refuse(self) -> bool:
        return self._refuse

    @refuse.setter
    def refuse(self, value: bool) -> None:
        """Close the listening socket (connects fail with ECONNREFUSED) or listen again on the same port.
        Returns once that is done; connections already open stay open."""
        with self._state:
            self._refuse = value
            self._wanted += 1
            wanted = self._wanted
        if self._thread is None:
            return
        self._wake_w.send(b"x")
        with self._state:
            if not self._state.wait_for(lambda: self._applied >= wanted or self._closed, timeout=10):
                raise RuntimeError("the RouterOS server did not switch its listener in 10 s")
            error, self._listen_error = self._listen_error, None
        if error is not None:
            raise error

    def drop_connections(self) -> None:
        """Close every open connection, as a router does when it reboots or its link fails."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.abort()

    def received(self, path: str | None = None) -> list[Command]:
        """The sentences read so far (all, or those whose command word is `path`)."""
        with self._lock:
            return [c for c in self.commands if path is None or c.path == path]

    # -- life cycle ---------------------------------------------------------
    def start(self) -> RouterOsServer:
        listener = self._listen()
        self.port = listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, args=(listener,), name="routeros-accept", daemon=True)
        self._thread.start()
        with self._state:  # a `refuse` set before start holds from the first connect
            self._state.wait_for(lambda: self._applied >= self._wanted, timeout=10)
        return self

    def close(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            connections, threads = list(self._open), list(self._threads)
        for connection in connections:
            connection.abort()
        for thread in threads:
            thread.join(10)
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> RouterOsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _listen(self) -> socket.socket:
        # create_server sets SO_REUSEADDR: the port can be bound again while old clients linger
        return socket.create_server((self.host, self.port), backlog=64)

    def _serve(self, listener: socket.socket | None) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        selector.register(listener, selectors.EVENT_READ)
        while True:
            with self._state:
                closed, refuse, wanted = self._closed, self._refuse, self._wanted
            if closed:
                break
            if refuse and listener is not None:
                selector.unregister(listener)
                listener.close()
                listener = None
            elif not refuse and listener is None:
                try:
                    listener = self._listen()
                    selector.register(listener, selectors.EVENT_READ)
                except OSError as exc:  # someone took the port meanwhile: the setter raises it
                    self._listen_error = exc
            with self._state:
                self._applied = wanted
                self._state.notify_all()
            for key, _ in selector.select():
                if key.fileobj is self._wake_r:
                    self._wake_r.recv(256)
                elif listener is not None:
                    try:
                        sock, _ = listener.accept()
                    except OSError:
                        continue
                    self._spawn(sock)
        if listener is not None:
            listener.close()
        selector.close()

    def _spawn(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.connections += 1
            connection = _Connection(self, sock, self.connections)
            thread = threading.Thread(target=connection.run, name=f"routeros-{self.connections}", daemon=True)
            self._open.add(connection)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    # -- called by connections ----------------------------------------------
    def _record(self, command: Command) -> None:
        with self._lock:
            self.commands.append(command)

    def _take_fatal(self) -> str | None:
        with self._lock:
            message, self.fatal_next = self.fatal_next, None
            return message

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._open.discard(connection)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Opsdeck's demo RouterOS router (API protocol)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8728)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="")
    parser.add_argument("--certfile", help="serve API-SSL with this PEM certificate chain")
    parser.add_argument("--keyfile", help="private key of --certfile (if not inside it)")
    parser.add_argument("--empty-replies", action="store_true", help="answer !empty like RouterOS >= 7.18")
    args = parser.parse_args(argv)
    context = None
    if args.certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.certfile, args.keyfile)
    server = RouterOsServer(
        args.username,
        args.password,
        host=args.host,
        port=args.port,
        tls_context=context,
        empty_replies=args.empty_replies,
    )
    server.start()
    kind = "API-SSL" if context else "API"
    print(f"RouterOS {kind} on {args.host}:{server.port}, user {args.username!r}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
