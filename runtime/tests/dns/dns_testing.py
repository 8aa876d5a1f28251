"""Helpers of the DNS tests: a real master and agent, `mesolite dns` as a real process, queries with dnspython,
and a stub upstream resolver on loopback (the only upstream a test may use)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from harness.cluster import start_master_and_agent
from harness.processes import MesoliteProcess, ProcessLauncher, free_port
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer


@dataclass
class Cluster:
    zk_url: str
    master: MesoliteProcess


def start_cluster(launcher: ProcessLauncher, zookeeper: ZooKeeperServer, tmp_path: Path) -> Cluster:
    """One master and one agent (with ports 31000-31100) on a fresh chroot of the shared ZooKeeper."""
    started = start_master_and_agent(launcher, zookeeper, tmp_path)
    return Cluster(zk_url=started.zk_url, master=started.master)


@dataclass
class DnsProcess:
    process: MesoliteProcess
    dns_port: int
    http_port: int

    def http_json(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as response:
            return json.load(response)


def start_dns(launcher: ProcessLauncher, tmp_path: Path, config: dict, *flags: str) -> DnsProcess:
    """`mesolite dns` with `config` as its config.json, DNS and HTTP on free loopback ports."""
    dns_port, http_port = free_udp_and_tcp_port(), free_port()
    path = tmp_path / f"mesos-dns-{len(launcher.started)}.json"
    path.write_text(json.dumps({"listener": "127.0.0.1", "HTTPListener": "127.0.0.1", **config}))
    process = launcher.start(
        "dns", "dns", f"--config={path}", f"--port={dns_port}", f"--httpport={http_port}", *flags,
        port=http_port, health_path="/v1/version",
    )  # fmt: skip
    return DnsProcess(process, dns_port, http_port)


def free_udp_and_tcp_port() -> int:
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


def query(port: int, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 2.0) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(message, "127.0.0.1", port=port, timeout=timeout)
    return dns.query.udp(message, "127.0.0.1", port=port, timeout=timeout)


def answer_values(response: dns.message.Message, rdtype: str) -> list[str]:
    kind = dns.rdatatype.from_text(rdtype)
    return sorted(rdata.to_text() for rrset in response.answer if rrset.rdtype == kind for rdata in rrset)


# --- a stub upstream resolver ------------------------------------------------------------------------------


@dataclass
class StubUpstream:
    """A tiny authoritative server on 127.0.0.1 (UDP and TCP): `names` answer A records, names in `fail` get
    SERVFAIL, names in `silent` get nothing, everything else NXDOMAIN. `seen` lists the names asked."""

    names: dict[str, str] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.port = free_udp_and_tcp_port()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", self.port))
        self._udp.settimeout(0.2)
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind(("127.0.0.1", self.port))
        self._tcp.listen(8)
        self._tcp.settimeout(0.2)
        self._stopped = threading.Event()
        self._threads = [threading.Thread(target=loop, daemon=True) for loop in (self._serve_udp, self._serve_tcp)]
        for thread in self._threads:
            thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _respond(self, data: bytes) -> bytes | None:
        request = dns.message.from_wire(data)
        name = request.question[0].name.to_text().lower()
        self.seen.append(name)
        if name in self.silent:
            return None
        response = dns.message.make_response(request)
        if name in self.fail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name in self.names:
            response.answer.append(dns.rrset.from_text(name, 30, "IN", "A", self.names[name]))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def _serve_udp(self) -> None:
        while not self._stopped.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self._respond(data)
            if reply is not None:
                self._udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _peer = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    length = int.from_bytes(connection.recv(2), "big")
                    reply = self._respond(connection.recv(length))
                    if reply is not None:
                        connection.sendall(len(reply).to_bytes(2, "big") + reply)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(2)
        self._udp.close()
        self._tcp.close()


# --- a task launched through the scheduler API ----------------------------------------------------------------


@dataclass
class ExecutedTask:
    """`mesos-execute` as a real process; `updates` maps each status it printed to when it printed it."""

    process: subprocess.Popen
    updates: dict[str, float] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    def wait_for_update(self, state: str, timeout: float) -> float:
        return wait_for(lambda: self.updates.get(state), timeout, interval=0.02, what=f"{state} ({self.output})")


def execute_task(zk_url: str, name: str, command: str, resources: str, *flags: str) -> ExecutedTask:
    process = subprocess.Popen(
        [sys.executable, "-m", "mesolite.cli.execute", f"--master={zk_url}", f"--name={name}",
         f"--command={command}", f"--resources={resources}", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    task = ExecutedTask(process)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            task.output.append(line.rstrip())
            if "Received status update " in line:
                state = line.split("Received status update ", 1)[1].split()[0]
                task.updates.setdefault(state, time.monotonic())

    threading.Thread(target=read, daemon=True).start()
    return task


def wait_until(predicate: Callable[[], bool], timeout: float) -> float:
    """Poll `predicate` every 20 ms; the monotonic time it first held (fails the test after `timeout`)."""
    wait_for(predicate, timeout, interval=0.02, what="the DNS answer to change")
    return time.monotonic()
