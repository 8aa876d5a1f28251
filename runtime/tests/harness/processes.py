"""Real processes for tests: free ports, `mesolite <command>` processes health-checked and stopped, and the
clean-up of whatever they left running."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.waiting import wait_for


def free_port() -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        preexec_fn: Callable[[], None] | None = None,
    ) -> MesoliteProcess:
        """`ssl_context`: the service serves https; its health is checked with this client context.
        `preexec_fn`: run in the child before it executes (e.g. `resource.setrlimit` for a lower limit)."""
        log_path = self.directory / f"{name}-{len(self.started)}.log"
        command = [sys.executable, "-m", "mesolite.cli", *arguments]
        process = subprocess.Popen(
            command,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
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
