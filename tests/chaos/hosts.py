"""Hosts for the multi-host scenario: network namespaces made by the test, each with its own
address on a bridge, its own loopback, hostname (a UTS namespace per process) and folders.

The bridge's own address in the root namespace is where the test process lives: the platform
and the peers Opsdeck calls (SMTP relay, webhook receiver, router, clamd). Nothing a host runs
can reach the root namespace's loopback, so a setting that silently says `localhost` fails.
Everything is removed by `close()`: the processes in each namespace, the namespaces, the bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.fakes.processes import ROOT, Process


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "iproute2 (ip) and util-linux (unshare) are needed"
    probe = f"odprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no route of this machine covers or lies in."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    taken = []
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        if first[:1].isdigit():
            taken.append(ipaddress.ip_network(first if "/" in first else f"{first}/32", strict=False))
    for third in range(200, 250):
        candidate = ipaddress.ip_network(f"10.{third}.{os.getpid() % 200}.0/24")
        if not any(candidate.overlaps(net) for net in taken if net.prefixlen > 0):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 for the test hosts")


class Host:
    """One machine: a network namespace with one address, its own working directory and temp
    folder. `spawn` runs a command there under the host's name."""

    def __init__(self, network: Network, name: str, address: str) -> None:
        self.network, self.name, self.address = network, name, address
        self.netns = f"{network.tag}-{name}"
        self.dir = network.dir / name
        (self.dir / "tmp").mkdir(parents=True)
        self.processes: list[Process] = []

    def wrap(self, args: Sequence[str]) -> list[str]:
        """`args` inside this host: its network namespace and a UTS namespace with its name."""
        return [
            "ip",
            "netns",
            "exec",
            self.netns,
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            self.name,
            *args,
        ]

    def spawn(self, name: str, args: Sequence[str], env: dict[str, str]) -> Process:
        """Start a process on this host, in its own working directory (the project is on
        PYTHONPATH, as an installed package would be), with its own TMPDIR."""
        env = {**env, "TMPDIR": str(self.dir / "tmp"), "PYTHONPATH": str(ROOT), "HOME": str(self.dir)}
        proc = Process(self.wrap(args), env, f"{self.name}-{name}", self.network.dir, cwd=self.dir)
        self.processes.append(proc.start())
        return proc

    def pids(self) -> set[int]:
        listed = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout
        return {int(p) for p in listed.split()}

    def power_off(self) -> None:
        """The machine dies: SIGKILL to everything it runs, and its cable is pulled."""
        self._kill_all()
        for proc in self.processes:
            if proc.proc is not None:
                proc.proc.wait(10)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "eth0", "down"], capture_output=True)

    def stop(self) -> None:
        for proc in self.processes:
            proc.stop()
        self._kill_all()  # anything a process left behind (pg_ctl's postgres)

    def _kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Network:
    """A bridge in the root namespace (the test's side, `.gateway`) and one namespace per host."""

    def __init__(self, names: Sequence[str]) -> None:
        self.tag = f"od{os.getpid() % 100000}"
        self.subnet = free_subnet()
        addresses = list(self.subnet.hosts())
        self.gateway = str(addresses[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="opsdeck-hosts-"))
        self.bridge = f"{self.tag}br"
        self.hosts: dict[str, Host] = {}
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for n, name in enumerate(names, start=1):
                self.hosts[name] = self._host(name, str(addresses[n - 1]), n)
        except BaseException:
            self.close()
            raise

    def _host(self, name: str, address: str, n: int) -> Host:
        host = Host(self, name, address)
        outside = f"{self.tag}v{n}"
        _ip("netns", "add", host.netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", outside, "master", self.bridge, "up")
        _ip("-n", host.netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        return host

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def close(self) -> None:
        for host in self.hosts.values():
            host.stop()
        time.sleep(0.2)
        for n, host in enumerate(self.hosts.values(), start=1):
            subprocess.run(["ip", "link", "del", f"{self.tag}v{n}"], capture_output=True)
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
