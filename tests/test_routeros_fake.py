"""The fake RouterOS router against the real `librouteros` client: both logins, the hotspot
menus, the wire format at every length boundary, the fault switches and API-SSL."""

from __future__ import annotations

import datetime
import io
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import librouteros
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from librouteros import protocol as client_protocol
from librouteros.exceptions import ConnectionClosed, FatalError, TrapError
from librouteros.login import plain, token
from librouteros.query import And, Key, Or

from tests.fakes.processes import ROOT, free_port
from tests.fakes.routeros import (
    ProtocolError,
    RouterOsServer,
    decode_length,
    encode_length,
    encode_sentence,
    prefix_size,
    read_sentence,
)

USERS = "/ip/hotspot/user"
PASSWORD = "s3cret"


@pytest.fixture
def router() -> Iterator[RouterOsServer]:
    with RouterOsServer("admin", PASSWORD) as server:
        yield server


def connect(server: RouterOsServer, password: str = PASSWORD, **kwargs) -> librouteros.Api:
    kwargs.setdefault("timeout", 10)
    return librouteros.connect("127.0.0.1", "admin", password, port=server.port, **kwargs)


@pytest.fixture
def api(router) -> Iterator[librouteros.Api]:
    client = connect(router)
    yield client
    client.close()


class RawClient:
    """Sentences in and out with the server's own codec, for what librouteros cannot send or parse."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.stream = self.sock.makefile("rb")

    def call(self, *words: str) -> list[list[str]]:
        """Send one sentence; every reply sentence up to `!done` or `!fatal`."""
        self.sock.sendall(encode_sentence(words))
        replies = [read_sentence(self.stream.read)]
        while replies[-1][0] not in ("!done", "!fatal"):
            replies.append(read_sentence(self.stream.read))
        return replies

    def login(self) -> None:
        assert self.call("/login", "=name=admin", f"=password={PASSWORD}") == [["!done"]]

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


@pytest.fixture
def raw(router) -> Iterator[RawClient]:
    client = RawClient(router.port)
    yield client
    client.close()


# -- login ----------------------------------------------------------------------
def test_plain_login_sends_name_and_password_once(router):
    connect(router, login_method=plain).close()
    (login,) = router.received("/login")
    assert login.attributes == {"name": "admin", "password": PASSWORD}
    assert router.logins == ["admin"]


def test_token_login_answers_the_md5_challenge(router):
    connect(router, login_method=token).close()
    first, second = router.received("/login")
    assert first.attributes == {}
    assert set(second.attributes) == {"name", "response"}
    assert second.attributes["response"].startswith("00") and len(second.attributes["response"]) == 34
    assert router.logins == ["admin"]


@pytest.mark.parametrize("method", [plain, token], ids=["plain", "token"])
def test_wrong_password_raises_trap_with_routeros_message(router, method):
    with pytest.raises(TrapError) as caught:
        connect(router, password="wrong", login_method=method)
    assert caught.value.message == "invalid user name or password (6)"
    assert router.logins == []


def test_wrong_password_trap_is_followed_by_done_and_a_closed_connection(raw):
    assert raw.call("/login", "=name=admin", "=password=nope") == [
        ["!trap", "=message=invalid user name or password (6)"],
        ["!done"],
    ]
    assert raw.stream.read(1) == b""


def test_command_before_login_is_trapped_and_login_still_works(raw):
    assert raw.call("/system/resource/print") == [["!trap", "=message=not logged in"], ["!done"]]
    raw.login()
    assert raw.call("/system/identity/print") == [["!re", "=name=MikroTik"], ["!done"]]


# -- hotspot users --------------------------------------------------------------
def test_added_user_reads_back_through_select_where(api, router):
    users = api.path(USERS)
    new_id = users.add(name="alice", password="pw", **{"limit-uptime": "1h", "comment": "room 12"})
    users.add(name="bob", password="pw2")
    assert new_id == "*1"
    found = tuple(users.select(Key(".id"), Key("name"), Key("limit-uptime")).where(Key("name") == "alice"))
    assert found == ({".id": "*1", "name": "alice", "limit-uptime": "1h"},)
    (stored,) = router.menus.items(USERS, name="alice")
    assert stored["profile"] == "default" and stored["comment"] == "room 12" and stored["password"] == "pw"
    first_add = router.received(f"{USERS}/add")[0]
    assert first_add.attributes == {"name": "alice", "password": "pw", "limit-uptime": "1h", "comment": "room 12"}


def test_where_combines_not_in_and_or_and_missing_attribute_queries(api, router):
    for name, comment in (("a", "x"), ("b", "y"), ("c", None), ("d", "x")):
        router.menus.add(USERS, name=name, **({"comment": comment} if comment else {}))
    users, name, comment = api.path(USERS), Key("name"), Key("comment")

    def names(*query) -> list[str]:
        return sorted(row["name"] for row in users.select(name).where(*query))

    assert names(name != "a") == ["b", "c", "d"]
    assert names(name.In("a", "c")) == ["a", "c"]
    assert names(And(comment == "x", name != "a")) == ["d"]
    assert names(Or(name == "b", comment == "x")) == ["a", "b", "d"]
    assert [row["name"] for row in api.rawCmd(f"{USERS}/print", "?-comment")] == ["c"]
    assert tuple(api.rawCmd(f"{USERS}/print", "=count-only=", "?comment=x")) == ({"ret": 2},)


def test_duplicate_user_or_profile_name_raises_already_have(api):
    api.path(USERS).add(name="alice")
    with pytest.raises(TrapError, match="^failure: already have user with this name$"):
        api.path(USERS).add(name="alice")
    with pytest.raises(TrapError, match="^failure: already have profile with this name$"):
        api.path(USERS, "profile").add(name="default")


def test_unknown_attribute_and_missing_profile_are_refused(api, router):
    with pytest.raises(TrapError, match="^unknown parameter$"):
        api.path(USERS).add(name="alice", limit_uptime="1h")
    with pytest.raises(TrapError, match="^input does not match any value of profile$"):
        api.path(USERS).add(name="alice", profile="gold")
    api.path(USERS, "profile").add(name="gold", **{"rate-limit": "2M/4M"})
    api.path(USERS).add(name="alice", profile="gold")
    assert [u["name"] for u in router.menus.items(USERS)] == ["alice"]


def test_update_by_id_changes_only_the_given_attributes(api, router):
    user_id = router.menus.add(USERS, name="alice", password="old", comment="keep")
    api.path(USERS).update(**{".id": user_id, "password": "new", "disabled": True})
    item = router.menus.get(USERS, user_id)
    assert item is not None
    assert (item["password"], item["comment"], item["disabled"]) == ("new", "keep", "true")
    (row,) = api.path(USERS).select(Key("disabled")).where(Key(".id") == user_id)
    assert row == {"disabled": True}


def test_set_by_numbers_name_and_unknown_id(api, router):
    user_id = router.menus.add(USERS, name="alice")
    tuple(api(f"{USERS}/set", numbers="alice", comment="by name"))
    assert router.menus.get(USERS, user_id)["comment"] == "by name"
    with pytest.raises(TrapError, match="^no such item$"):
        api.path(USERS).update(**{".id": "*99", "comment": "x"})


def test_remove_several_ids_and_unknown_id_removes_nothing(api, router):
    ids = [router.menus.add(USERS, name=name) for name in ("a", "b", "c")]
    with pytest.raises(TrapError, match="^no such item$"):
        api.path(USERS).remove(ids[0], "*99")
    assert len(router.menus.items(USERS)) == 3
    api.path(USERS).remove(ids[0], ids[2])
    assert [u["name"] for u in router.menus.items(USERS)] == ["b"]
    (remove,) = [c for c in router.received(f"{USERS}/remove") if c.attributes[".id"] == f"{ids[0]},{ids[2]}"]
    assert remove.queries == ()


def test_removing_an_active_session_kicks_it(api, router):
    kept = router.menus.add_session("bob", "10.5.50.3", "AA:BB:CC:00:00:02")
    router.menus.add_session("alice", "10.5.50.2", "AA:BB:CC:00:00:01", uptime="5m")
    active = api.path("/ip/hotspot/active")
    (session,) = active.select(Key(".id"), Key("address"), Key("uptime")).where(Key("user") == "alice")
    assert session["address"] == "10.5.50.2" and session["uptime"] == "5m"
    active.remove(session[".id"])
    assert [s[".id"] for s in router.menus.items("/ip/hotspot/active")] == [kept]


def test_cookies_print_and_remove(api, router):
    router.menus.add("/ip/hotspot/cookie", user="alice", mac_address="AA:BB:CC:00:00:01")
    cookies = api.path("/ip/hotspot/cookie")
    (cookie,) = cookies.select(Key(".id"), Key("mac-address")).where(Key("user") == "alice")
    cookies.remove(cookie[".id"])
    assert router.menus.items("/ip/hotspot/cookie") == []


def test_system_resource_print_returns_one_item(api, router):
    router.menus.update("/system/resource", cpu_load=42)
    (resource,) = api.path("/system/resource")
    assert resource["version"] == "7.16.2 (stable)" and resource["board-name"] == "hAP ac^2"
    assert resource["cpu-load"] == 42 and resource["total-memory"] > resource["free-memory"]
    assert isinstance(resource["uptime"], str) and resource["uptime"].endswith("s")
    assert ".id" not in resource


def test_menus_are_shared_between_concurrent_connections(router):
    clients = [connect(router) for _ in range(4)]
    try:
        threads = [
            threading.Thread(target=lambda c=c, n=n: [c.path(USERS).add(name=f"u{n}-{i}") for i in range(15)])
            for n, c in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        ids = [row[".id"] for row in clients[0].path(USERS).select(Key(".id"))]
        assert len(ids) == len(set(ids)) == 60
        assert router.connections == 4
    finally:
        for client in clients:
            client.close()


# -- protocol details -------------------------------------------------------------
def test_unknown_command_traps_and_the_connection_stays_usable(api):
    with pytest.raises(TrapError, match=r"^no such command or directory \(hotspt\)$") as caught:
        tuple(api("/ip/hotspt/user/print"))
    assert caught.value.category == 0
    with pytest.raises(TrapError, match=r"^no such command or directory \(add\)$"):
        api.path("/ip/hotspot/active").add(user="x")
    assert tuple(api.path("/system/identity")) == ({"name": "MikroTik"},)


def test_quit_answers_fatal_session_terminated(api):
    with pytest.raises(FatalError, match="^session terminated on request$"):
        tuple(api("/quit"))


def test_tag_is_echoed_on_every_reply(router, raw):
    router.menus.add(USERS, name="alice")
    raw.login()
    replies = raw.call(f"{USERS}/print", "=.proplist=name", ".tag=7")
    assert replies == [["!re", "=name=alice", ".tag=7"], ["!done", ".tag=7"]]
    replies = raw.call(f"{USERS}/add", "=name=alice", ".tag=8")
    assert replies == [["!trap", "=message=failure: already have user with this name", ".tag=8"], ["!done", ".tag=8"]]


def test_empty_reply_is_off_by_default_and_librouteros_skips_it(router, raw, api):
    raw.login()
    assert raw.call(f"{USERS}/print") == [["!done"]]
    router.empty_replies = True
    assert raw.call(f"{USERS}/print", ".tag=1") == [["!empty", ".tag=1"], ["!done", ".tag=1"]]
    assert raw.call(f"{USERS}/add", "=name=x") == [["!done", "=ret=*1"]]
    # librouteros 4.2 reads until !done and keeps only !re/!done words: !empty is ignored
    assert tuple(api.path(USERS).select(Key("name")).where(Key("name") == "nobody")) == ()
    assert [row["name"] for row in api.path(USERS)] == ["x"]


BOUNDARIES = [
    (0, 1),
    (0x7F, 1),
    (0x80, 2),
    (0x3FFF, 2),
    (0x4000, 3),
    (0x1FFFFF, 3),
    (0x200000, 4),
    (0xFFFFFFF, 4),
    (0x10000000, 5),
    (0xFFFFFFFF, 5),
]


@pytest.mark.parametrize(("length", "size"), BOUNDARIES, ids=[hex(n) for n, _ in BOUNDARIES])
def test_word_length_prefix_round_trips_at_every_boundary(length, size):
    prefix = encode_length(length)
    assert len(prefix) == size == prefix_size(prefix[0])
    assert decode_length(prefix) == length
    if size < 5:  # librouteros cannot encode 5-byte lengths; for the rest both sides must agree
        assert prefix == client_protocol.encode_length(length)
        assert client_protocol.decode_length(prefix) == length


@pytest.mark.parametrize("length", [0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000])
def test_whole_words_round_trip_through_read_sentence(length):
    word = "x" * length
    assert read_sentence(io.BytesIO(encode_sentence(["!re", word])).read) == ["!re", word]


def test_reserved_control_bytes_and_oversized_lengths_are_rejected():
    with pytest.raises(ProtocolError):
        prefix_size(0xF8)
    with pytest.raises(ValueError):
        encode_length(0x100000000)
    with pytest.raises(EOFError):
        read_sentence(io.BytesIO(encode_length(10) + b"short").read)


@pytest.mark.parametrize("length", [0x4000 + 1, 0x200000 + 1], ids=["3-byte", "4-byte"])
def test_long_attribute_value_travels_end_to_end(api, router, length):
    comment = "c=" * (length // 2) + "z"
    user_id = api.path(USERS).add(name="long", comment=comment)
    assert router.menus.get(USERS, user_id)["comment"] == comment
    (row,) = api.path(USERS).select(Key("comment")).where(Key("name") == "long")
    assert row["comment"] == comment


# -- fault switches ------------------------------------------------------------------
def test_refuse_makes_connect_fail_with_connection_refused_until_switched_back(router):
    router.refuse = True
    with pytest.raises(ConnectionRefusedError):
        connect(router)
    router.refuse = False
    connect(router).close()
    assert router.logins == ["admin"]


def test_stall_makes_librouteros_time_out_within_its_timeout(router):
    before = connect(router)  # logged in with a roomy timeout, then a short one for the stalled command
    before.protocol.transport.sock.settimeout(0.5)
    router.stall = True
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        connect(router, timeout=0.5)
    with pytest.raises(TimeoutError):
        tuple(before.path("/system/resource"))  # a connection made before the stall hangs too
    before.close()
    assert time.monotonic() - started < 8  # two 0.5 s timeouts, with room for a loaded machine
    assert [c.path for c in router.received()][-2:] == ["/login", "/system/resource/print"]


def test_fatal_next_raises_fatal_error_once_and_closes_the_connection(router, api):
    router.fatal_next = "out of memory"
    with pytest.raises(FatalError, match="^out of memory$"):
        tuple(api.path("/system/resource"))
    with pytest.raises((OSError, ConnectionClosed)):
        tuple(api.path("/system/resource"))
    assert router.fatal_next is None
    connect(router).close()


# -- API-SSL and the command line --------------------------------------------------------
def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsdeck-test-router")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "router.pem", folder / "router.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_api_ssl_connection_with_a_trusted_self_signed_certificate(tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cafile=str(cert_file))
    with RouterOsServer("admin", PASSWORD, tls_context=server_context) as server:
        wrap = lambda sock: client_context.wrap_socket(sock, server_hostname="127.0.0.1")  # noqa: E731
        api = connect(server, ssl_wrapper=wrap)
        try:
            assert api.path(USERS).add(name="tls-user") == "*1"
            assert [row["version"] for row in api.path("/system/resource")] == ["7.16.2 (stable)"]
        finally:
            api.close()
        untrusting = ssl.create_default_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(server, ssl_wrapper=lambda sock: untrusting.wrap_socket(sock, server_hostname="127.0.0.1"))


def test_command_line_serves_a_demo_router():
    port = free_port()
    command = [sys.executable, "-m", "tests.fakes.routeros", "--port", str(port), "--password", "demo"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert f"127.0.0.1:{port}" in process.stdout.readline()  # printed once it listens
            api = librouteros.connect("127.0.0.1", "admin", "demo", port=port, timeout=10)
            assert [row["name"] for row in api.path(USERS, "profile")] == ["default"]
            api.close()
        finally:
            process.terminate()
            process.wait(10)
