"""A real clamd (Debian's clamav-daemon) with a small signature DB written here: the md5 of the
EICAR test file (`sigtool --md5`), packed by `sigtool --build --unsigned` into a `daily.cud` so
clamd reports a signature DB version like a freshclam-fed one. Starts in well under a second.

Tests use `ClamdServer`; the dev stack runs `python -m tests.fakes.clamav --dir var/clamav`,
which uses freshclam's DB (/var/lib/clamav) instead when one is there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.fakes.processes import wait_until

#: The EICAR anti-virus test file, assembled here so this source file is not itself flagged.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
FRESHCLAM_DB = Path("/var/lib/clamav")


def _tool(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError(f"{name} is not installed (make test installs clamav-daemon)")


def md5_signature(path: Path, name: str) -> str:
    """`sigtool --md5` of a file, as a .hdb line named `name`."""
    line = subprocess.run([_tool("sigtool"), "--md5", str(path)], check=True, capture_output=True, text=True).stdout
    digest, size, _ = line.strip().split(":", 2)
    return f"{digest}:{size}:{name}"


def write_signatures(db_dir: Path, version: int, extra: dict[str, bytes] | None = None) -> None:
    """Write `daily.cud` (signature DB `version`) into `db_dir`: EICAR, plus one md5 signature
    per `extra` entry (name → the exact bytes it detects)."""
    db_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opsdeck-sigs-") as build:
        work = Path(build)
        lines = []
        for name, data in {"Opsdeck.Test.EICAR": EICAR, **(extra or {})}.items():
            sample = work / "sample.bin"
            sample.write_bytes(data)
            lines.append(md5_signature(sample, name))
            sample.unlink()
        (work / "daily.hdb").write_text("\n".join(lines) + "\n")
        (work / "COPYING").write_text("Opsdeck test signatures.\n")
        subprocess.run(
            [_tool("sigtool"), "--unsigned", "--build=daily.cud", f"--cvd-version={version}", f"--datadir={work}"],
            cwd=work,
            input="opsdeck\n",
            check=True,
            capture_output=True,
            text=True,
        )
        os.replace(work / "daily.cud", db_dir / "daily.cud")


def write_config(run_dir: Path, db_dir: Path, stream_max_bytes: int, extra: str = "") -> Path:
    config = run_dir / "clamd.conf"
    config.write_text(
        "Foreground yes\n"
        f"DatabaseDirectory {db_dir}\n"
        f"LocalSocket {run_dir / 'clamd.sock'}\n"
        "LocalSocketMode 660\n"
        f"PidFile {run_dir / 'clamd.pid'}\n"
        "LogTime yes\n"
        f"StreamMaxLength {stream_max_bytes}\n"
        "AlertEncryptedArchive yes\n"
        "AlertEncryptedDoc yes\n"
        "AlertExceedsMax yes\n"
        "MaxThreads 4\n"
        "SelfCheck 3600\n" + extra
    )
    return config


class ClamdServer:
    """clamd on a unix socket in a temporary folder, with the test signature DB."""

    def __init__(self, *, stream_max_bytes: int = 26 * 1024 * 1024, version: int = 1, extra_config: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="opsdeck-clamd-"))
        self.db_dir = self.dir / "db"
        self.version = version
        self.stream_max_bytes = stream_max_bytes
        self.extra_config = extra_config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.dir / "clamd.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> ClamdServer:
        if not (self.db_dir / "daily.cud").exists():
            write_signatures(self.db_dir, self.version)
        config = write_config(self.dir, self.db_dir, self.stream_max_bytes, self.extra_config)
        self.log = open(self.dir / "clamd.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([_tool("clamd"), "-c", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self.answers, 60, 0.05, what="clamd to answer PING")
        return self

    def command(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.socket_path))
            sock.sendall(f"z{command}\0".encode())
            data = b""
            while not data.endswith(b"\0"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.rstrip(b"\0").decode()

    def answers(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def update_signatures(self, extra: dict[str, bytes]) -> int:
        """Publish the next signature DB version (with `extra` signatures) and RELOAD it, as
        freshclam would. Returns the new version."""
        self.version += 1
        write_signatures(self.db_dir, self.version, extra)
        self.command("RELOAD")
        wait_until(lambda: f"/{self.version}/" in self.command("VERSION"), 30, 0.1, what="clamd to reload")
        return self.version

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
            self.log.close()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    """Run clamd in the foreground for the dev stack (supervisord's `clamd` program)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default="var/clamav")
    parser.add_argument("--stream-max-bytes", type=int, default=26 * 1024 * 1024)
    args = parser.parse_args()
    run_dir = Path(args.dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    official = any(FRESHCLAM_DB.glob("daily.c[vl]d")) and any(FRESHCLAM_DB.glob("main.c[vl]d"))
    db_dir = FRESHCLAM_DB if official else run_dir / "db"
    if not official and not (db_dir / "daily.cud").exists():
        write_signatures(db_dir, 1)
    (run_dir / "clamd.sock").unlink(missing_ok=True)
    config = write_config(run_dir, db_dir, args.stream_max_bytes)
    print(f"clamd: signatures from {db_dir} ({'freshclam' if official else 'Opsdeck test DB'})", flush=True)
    os.execv(_tool("clamd"), [_tool("clamd"), "-c", str(config)])


if __name__ == "__main__":
    main()
