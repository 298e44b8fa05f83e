"""How a file reaches clamd, against real clamd processes: handed over as an open descriptor
(FILDES) on a unix socket by default, streamed (INSTREAM) when CLAMD_FDPASS is off and always
over TCP. Each way gives clamd's own verdict; none turns a limit into "clean"."""

from __future__ import annotations

import pytest

from app.services.scans import clamav
from tests.fakes.clamav import EICAR, ClamdServer
from tests.fakes.processes import free_port
from tests.helpers import scanned


@pytest.fixture
def small_clamd():
    """clamd that streams at most 1 MiB and scans files of at most 1 MiB."""
    server = ClamdServer(stream_max_bytes=1024 * 1024, extra_config="MaxFileSize 1M\nMaxScanSize 1M\n").start()
    yield server
    server.close()


@pytest.mark.parametrize("fdpass", [True, False], ids=["fildes", "instream"])
def test_each_way_on_a_unix_socket_finds_eicar_and_passes_a_clean_file(app, fdpass, tmp_path):
    infected, clean = tmp_path / "eicar.txt", tmp_path / "clean.txt"
    infected.write_bytes(EICAR)
    clean.write_bytes(b"hello\n" * 1000)
    client = clamav.client(app.config["CLAMD_URL"], 10, fdpass)
    with infected.open("rb") as file:
        verdict = client.scan_file(file, infected.stat().st_size)
    assert verdict.infected and verdict.signature and "EICAR" in verdict.signature
    with clean.open("rb") as file:
        assert client.scan_file(file, clean.stat().st_size) == clamav.Verdict(False)


def test_a_file_passed_by_descriptor_over_max_file_size_is_flagged_not_passed(app, api, small_clamd):
    """Over StreamMaxLength too, which limits only streams (streamed, this upload would be a
    size-limit error): clamd reads the file in place, and AlertExceedsMax makes MaxFileSize a
    finding, not a pass."""
    app.config["CLAMD_URL"] = small_clamd.url
    scan = scanned(api, "big.txt", b"x" * (3 * 1024 * 1024))
    assert scan["status"] == "infected" and scan["signature"].startswith("Heuristics.Limits.Exceeded")
    small = scanned(api, "small.txt", b"y" * 1000)
    assert small["status"] == "clean"


@pytest.mark.parametrize(("address", "host"), [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")], ids=["ipv4", "ipv6"])
def test_scans_go_through_clamd_over_tcp(app, api, address, host):
    port = free_port()
    server = ClamdServer(extra_config=f"TCPSocket {port}\nTCPAddr {address}\n").start()
    try:
        app.config["CLAMD_URL"] = f"tcp://{host}:{port}"
        client = clamav.client(app.config["CLAMD_URL"], 10)
        assert isinstance(client, clamav.TcpClamd)
        assert scanned(api, "eicar.txt", EICAR)["status"] == "infected"
        assert scanned(api, "notes.txt", b"hello over tcp\n")["status"] == "clean"
    finally:
        server.close()
