"""Fixtures shared by the runtime tests: a real ZooKeeper server and real mesolite processes.

ZooKeeper is the one from Debian's `zookeeper` package, started as a plain Java process on a free
port; every test gets its own chroot path so that tests never see each other's znodes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tls_testing import ClusterPki, make_cluster_pki

ZOOKEEPER_CLASSPATH = ":".join(
    ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar", "/usr/share/java/slf4j-api.jar"]
)


def free_port() -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def four_letter_word(port: int, word: str = "ruok") -> str:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
        connection.sendall(word.encode())
        return connection.recv(4096).decode(errors="replace")
    return ""


@dataclass
class ZooKeeperServer:
    """One standalone ZooKeeper server; `url(path)` gives a zk:// URL with a fresh chroot."""

    port: int
    process: subprocess.Popen
    directory: Path

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/mesos") -> str:
        return f"zk://{self.hosts}/test-{uuid.uuid4().hex[:12]}{path}"


def start_zookeeper(directory: Path) -> ZooKeeperServer:
    if not Path("/usr/share/java/zookeeper.jar").exists():
        pytest.fail("ZooKeeper is not installed: `apt-get install zookeeper` (make deps does it)")
    port = free_port()
    data = directory / "data"
    data.mkdir(parents=True)
    config = directory / "zoo.cfg"
    config.write_text(
        f"tickTime=500\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr\nmaxClientCnxns=0\n"
        # Small session timeouts keep session-loss tests fast (min is 2 ticks).
        "minSessionTimeout=1000\nmaxSessionTimeout=30000\n"
    )
    log = (directory / "zookeeper.log").open("wb")
    process = subprocess.Popen(
        [
            "java",
            # ZooKeeper keeps its whole tree in memory, and the suite's tests (hundreds of chroots, values
            # of several megabytes) share this server: 256 MB ran out late in a full run.
            "-Xmx1g",
            "-cp",
            ZOOKEEPER_CLASSPATH,
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(config),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = ZooKeeperServer(port=port, process=process, directory=directory)
    # `ruok` answers before the server takes requests; `srvr` reports a Mode only once it does.
    wait_for(lambda: "Mode:" in four_letter_word(port, "srvr"), timeout=30, what=f"ZooKeeper on port {port}")
    return server


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory) -> Iterator[ZooKeeperServer]:
    """A real ZooKeeper for the whole test session (tests isolate themselves by chroot)."""
    server = start_zookeeper(tmp_path_factory.mktemp("zookeeper"))
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def cluster_pki(tmp_path_factory) -> ClusterPki:
    """A cluster CA with a certificate for 127.0.0.1/localhost, and an unrelated CA with its own certificate."""
    return make_cluster_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class MesoliteProcess:
    """A mesolite service started as a real process, with its output kept for failure reports."""

    name: str
    arguments: list[str]
    log_path: Path
    process: subprocess.Popen
    port: int | None = None
    scheme: str = "http"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(10)

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


@dataclass
class ProcessLauncher:
    """Starts `mesolite <command> ...` processes and stops them all at the end of the test."""

    directory: Path
    started: list[MesoliteProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        *arguments: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        health_path: str | None = "/health",
        timeout: float = 30,
        ssl_context: ssl.SSLContext | None = None,
    ) -> MesoliteProcess:
        """`ssl_context`: the service serves https; its health is checked with this client context."""
        log_path = self.directory / f"{name}-{len(self.started)}.log"
        command = [sys.executable, "-m", "mesolite.cli", *arguments]
        process = subprocess.Popen(
            command,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        started = MesoliteProcess(name, command, log_path, process, port, "https" if ssl_context else "http")
        self.started.append(started)
        if port is not None and health_path is not None:

            def healthy() -> bool:
                if process.poll() is not None:
                    pytest.fail(f"{name} exited with {process.returncode}:\n{started.log()[-4000:]}")
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(started.url(health_path), timeout=1, context=ssl_context),
                ):
                    return True
                return False

            wait_for(healthy, timeout, what=f"{name} to answer {health_path} on port {port}")
        return started

    def stop_all(self) -> None:
        for started in reversed(self.started):
            stop_process(started.process)
        # Executors and their tasks are detached from the agent on purpose (they survive agent restarts),
        # so stopping the agent leaves them running: end everything that works inside this test's directory.
        kill_processes_under(self.directory)


def kill_processes_under(directory: Path) -> list[int]:
    """SIGKILL every process whose working directory or command line lies under `directory`."""
    root = str(directory.resolve())
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command_line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(root) or root in command_line:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


@pytest.fixture
def launcher(tmp_path, request) -> Iterator[ProcessLauncher]:
    """Start real mesolite processes; their logs are printed when the test fails."""
    processes = ProcessLauncher(tmp_path)
    yield processes
    processes.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for started in processes.started:
            print(f"\n===== log of {started.name} ({' '.join(started.arguments[2:])}) =====\n{started.log()[-8000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_report_header() -> str:
    java = shutil.which("java") or "missing"
    return f"mesolite runtime tests; java: {java}"
