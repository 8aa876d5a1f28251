"""A real three-server ZooKeeper ensemble on loopback (Debian's package) whose servers callers kill, stop, freeze
and restart: the chaos tests' ZooKeeper (fixture `zookeeper_ensemble` in tests/chaos/conftest.py) and the
reliability benchmark's (bench/reliability.py).

Servers are numbered 0, 1, 2 (`myid` 1, 2, 3). The tick is 500 ms so that sessions of 1-4 s are allowed and
expire quickly. A server that exits, or an ensemble that does not serve in time, fails the test (`pytest.fail`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.processes import free_port, stop_process
from harness.zookeeper import ZOOKEEPER_CLASSPATH, four_letter_word

ENSEMBLE_SIZE = 3
TICK_MILLISECONDS = 500
SERVING_TIMEOUT = 60.0


@dataclass
class EnsembleServer:
    """One member of the ensemble: its ports, its directory, and its process while it runs."""

    index: int
    client_port: int
    peer_port: int
    election_port: int
    directory: Path
    process: subprocess.Popen | None = None
    frozen: bool = False

    @property
    def myid(self) -> int:
        return self.index + 1

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def mode(self) -> str | None:
        """'leader', 'follower' or 'standalone' while this server serves clients, else None."""
        match = re.search(r"^Mode: (\w+)", four_letter_word(self.client_port, "srvr"), re.MULTILINE)
        return match[1] if match else None


@dataclass
class ZooKeeperEnsemble:
    """Three ZooKeeper servers on loopback; `hosts` is the connect string, `url()` a zk:// URL with a fresh chroot."""

    directory: Path
    servers: list[EnsembleServer] = field(default_factory=list)

    @property
    def hosts(self) -> str:
        return ",".join(server.address for server in self.servers)

    def url(self, path: str = "/mesos") -> str:
        return f"zk://{self.hosts}/test-{uuid.uuid4().hex[:12]}{path}"

    # --- faults -----------------------------------------------------------------------------------

    def kill(self, index: int) -> None:
        """SIGKILL server `index`: its clients lose their connection at once and move to another server."""
        server = self.servers[index]
        if server.process is not None:
            self.thaw(index)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
            server.process = None

    def stop(self, index: int) -> None:
        """SIGTERM server `index` (as `systemctl stop zookeeper` does)."""
        server = self.servers[index]
        if server.process is not None:
            self.thaw(index)
            stop_process(server.process)
            server.process = None

    def freeze(self, index: int) -> None:
        """SIGSTOP server `index`: its clients time out as on a network partition; nothing is closed."""
        server = self.servers[index]
        if server.process is not None and not server.frozen:
            os.killpg(server.process.pid, signal.SIGSTOP)
            server.frozen = True

    def thaw(self, index: int) -> None:
        server = self.servers[index]
        if server.process is not None and server.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGCONT)
            server.frozen = False

    def start(self, index: int, wait: bool = True) -> None:
        """Start server `index` (with its old data); with `wait`, until it serves clients (needs a quorum)."""
        server = self.servers[index]
        if server.running():
            return
        log = (server.directory / "zookeeper.log").open("ab")
        server.process = subprocess.Popen(
            [
                "java",
                "-Xmx256m",
                f"-Dzookeeper.log.dir={server.directory}",
                "-cp",
                ZOOKEEPER_CLASSPATH,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(server.directory / "zoo.cfg"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_serving(index)

    def restart(self, index: int) -> None:
        """Stop server `index` and start it again, waiting until it serves."""
        self.stop(index)
        self.start(index)

    # --- observations ---------------------------------------------------------------------------

    def wait_serving(self, index: int | None = None, timeout: float = SERVING_TIMEOUT) -> None:
        """Wait until server `index` (default: every running server) serves clients, with one leader among them."""
        indexes = [index] if index is not None else [server.index for server in self.servers if server.running()]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for server in self.servers:
                if server.process is not None and server.process.poll() is not None:
                    log = (server.directory / "zookeeper.log").read_text(errors="replace")
                    pytest.fail(f"ZooKeeper server {server.index} exited:\n{log[-3000:]}")
            modes = {i: self.servers[i].mode() for i in indexes}
            if all(modes.values()) and self.leader_index() is not None:
                return
            time.sleep(0.2)
        pytest.fail(f"ZooKeeper servers {indexes} not serving after {timeout:.0f}s (modes {modes})")

    def leader_index(self) -> int | None:
        """The index of the ensemble's current leader, or None while there is no quorum."""
        for server in self.servers:
            if server.running() and not server.frozen and server.mode() == "leader":
                return server.index
        return None

    def session_server_index(self, session: int | object) -> int | None:
        """Which server holds the connection of a session (an id, or a KazooClient), by `cons`; None if none does."""
        session_id = session if isinstance(session, int) else session.client_id[0]  # type: ignore[attr-defined]
        marker = f"sid=0x{session_id:x}"
        for server in self.servers:
            if server.running() and not server.frozen and marker in four_letter_word_all(server.client_port, "cons"):
                return server.index
        return None

    def stop_all(self) -> None:
        for server in self.servers:
            self.thaw(server.index)
            if server.process is not None:
                stop_process(server.process)
                server.process = None


def four_letter_word_all(port: int, word: str) -> str:
    """Like `four_letter_word`, but reads the whole answer (`cons` lists every connection)."""
    chunks = []
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
        connection.sendall(word.encode())
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def start_ensemble(directory: Path) -> ZooKeeperEnsemble:
    if not Path("/usr/share/java/zookeeper.jar").exists():
        pytest.fail("ZooKeeper is not installed: `apt-get install zookeeper` (make deps does it)")
    ensemble = ZooKeeperEnsemble(directory)
    for index in range(ENSEMBLE_SIZE):
        server_directory = directory / f"server-{index}"
        (server_directory / "data").mkdir(parents=True)
        ensemble.servers.append(EnsembleServer(index, free_port(), free_port(), free_port(), server_directory))
    members = "".join(
        f"server.{server.myid}=127.0.0.1:{server.peer_port}:{server.election_port}\n" for server in ensemble.servers
    )
    for server in ensemble.servers:
        (server.directory / "data" / "myid").write_text(f"{server.myid}\n")
        (server.directory / "zoo.cfg").write_text(
            f"tickTime={TICK_MILLISECONDS}\ninitLimit=20\nsyncLimit=4\n"
            f"dataDir={server.directory / 'data'}\nclientPort={server.client_port}\nclientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr,cons\nmaxClientCnxns=0\n"
            # Sessions of 1-30 s: chaos tests use 2-4 s so that expiry comes quickly.
            "minSessionTimeout=1000\nmaxSessionTimeout=30000\n"
            # Leader election among loopback peers should not wait for DNS or slow connects.
            "cnxTimeout=1000\n" + members
        )
    for server in ensemble.servers:
        ensemble.start(server.index, wait=False)
    ensemble.wait_serving()
    return ensemble
