"""The HAProxy process: started in master-worker mode, configurations validated before use, hitless reloads.

HAProxy runs as `haproxy -W -S <master socket> -f <config>`: the master re-executes itself on the master CLI's
`reload` command, the new worker takes the listening sockets over from the old one (`expose-fd listeners` on the
stats socket), and the old worker finishes its in-flight requests (bounded by `hard-stop-after`). No connection
is refused across a reload.

A configuration is written to `<config>.new`, checked with `haproxy -c -f`, and only then renamed over the
running one: a render HAProxy rejects never replaces a good configuration (`ConfigurationRejected` carries
HAProxy's own explanation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from mesolite.lb.runtime_api import RuntimeApiError, unix_command
from mesolite.retry import RetryFailed, RetryPolicy, retry

log = logging.getLogger(__name__)
START_TIMEOUT = 15.0
RELOAD_TIMEOUT = 15.0
MASTER_CLI_POLICY = RetryPolicy(initial=0.02, maximum=0.5, deadline=3.0)


class ConfigurationRejected(ValueError):
    """`haproxy -c` refused a configuration; the message is HAProxy's."""


class HAProxyError(RuntimeError):
    """HAProxy could not be started or reloaded."""


@dataclass(frozen=True)
class Processes:
    """`show proc` on the master CLI: the master's reload count and the current worker."""

    master_pid: int
    reloads: int
    worker_pid: int | None
    old_workers: tuple[int, ...]


def parse_show_proc(answer: str) -> Processes:
    master_pid, reloads, worker, old = 0, 0, None, []
    section = "master"
    for line in answer.splitlines():
        if line.startswith("# workers"):
            section = "workers"
            continue
        if line.startswith("# old workers"):
            section = "old"
            continue
        if line.startswith("#") or not line.strip():
            continue
        words = line.split()
        if len(words) < 3 or not words[0].isdigit():
            continue
        if words[1] == "master":
            master_pid = int(words[0])
            reloads = int(words[2]) if words[2].isdigit() else 0
        elif section == "workers" and worker is None:
            worker = int(words[0])
        elif section == "old":
            old.append(int(words[0]))
    return Processes(master_pid, reloads, worker, tuple(old))


class HAProxy:
    """One HAProxy master process and its files (configuration, master and stats sockets)."""

    def __init__(self, binary: str, config_path: Path, run_directory: Path) -> None:
        self.binary = binary
        self.config_path = config_path
        self.run_directory = run_directory
        self.master_socket = str(run_directory / "master.sock")
        self.stats_socket = str(run_directory / "haproxy.sock")
        self.process: asyncio.subprocess.Process | None = None
        self.adopted_master: int | None = None
        self.reloads = 0  # reloads this LB asked for
        self.last_reload = 0.0
        self._output: asyncio.Task | None = None

    # validation

    async def check(self, text: str) -> Path:
        """Write `text` next to the configuration and validate it; the checked file's path, or
        `ConfigurationRejected` with HAProxy's reasons (the file is removed then)."""
        candidate = self.config_path.with_name(self.config_path.name + ".new")
        candidate.parent.mkdir(parents=True, exist_ok=True)
        candidate.write_text(text)
        checker = await asyncio.create_subprocess_exec(
            self.binary,
            "-c",
            "-f",
            str(candidate),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await checker.communicate()
        if checker.returncode != 0:
            candidate.unlink(missing_ok=True)
            reasons = output.decode(errors="replace").strip() or f"haproxy -c exited {checker.returncode}"
            raise ConfigurationRejected(reasons + _quoted_lines(reasons, candidate.name, text))
        return candidate

    async def install(self, text: str) -> None:
        """Validate `text` and make it the configuration file (not yet loaded: see `start`/`reload`)."""
        candidate = await self.check(text)
        os.replace(candidate, self.config_path)

    # the process

    @property
    def running(self) -> bool:
        if self.process is not None:
            return self.process.returncode is None
        return self.adopted_master is not None and _alive(self.adopted_master)

    async def show_proc(self) -> Processes:
        """`show proc`, retried for a moment: the master re-executes itself (after starting its worker and on
        every reload) and refuses connections meanwhile."""
        try:
            answer = await retry(
                lambda: unix_command(self.master_socket, "show proc"),
                MASTER_CLI_POLICY,
                retry_on=(RuntimeApiError,),
                what="HAProxy's master CLI",
            )
        except RetryFailed as error:
            raise RuntimeApiError(str(error)) from None
        return parse_show_proc(answer)

    async def adopt(self) -> bool:
        """Take over an HAProxy master left running by a previous LB process (it keeps serving meanwhile)."""
        if not Path(self.master_socket).exists():  # noqa: ASYNC240 - one stat of a local socket file
            return False
        with contextlib.suppress(RuntimeApiError):
            processes = await self.show_proc()
            if processes.master_pid and _alive(processes.master_pid):
                self.adopted_master = processes.master_pid
                log.info("adopted the running HAProxy master (pid %d)", processes.master_pid)
                return True
        return False

    async def start(self) -> None:
        """Start the master with the installed configuration; returns when a worker serves."""
        self.run_directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.master_socket)
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            "-W",
            "-S",
            f"{self.master_socket},mode,600",
            "-f",
            str(self.config_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own session: a Ctrl-C meant for the LB must not stop HAProxy before the LB stops it.
            start_new_session=True,
        )
        self.adopted_master = None
        self._output = asyncio.create_task(self._log_output(self.process), name="haproxy-output")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise HAProxyError(f"HAProxy exited {self.process.returncode} at start (its output is logged above)")
            with contextlib.suppress(RuntimeApiError):
                if (await self.show_proc()).worker_pid:
                    log.info("HAProxy started (master pid %d) with %s", self.process.pid, self.config_path)
                    self.last_reload = time.monotonic()
                    return
            await asyncio.sleep(0.05)
        raise HAProxyError(f"HAProxy did not start a worker within {START_TIMEOUT:g}s")

    async def reload(self) -> None:
        """Hitless reload of the installed configuration; returns when the new worker serves."""
        before = await self.show_proc()
        with contextlib.suppress(RuntimeApiError):
            # The master re-executes itself at once, so the connection may close before an answer.
            await unix_command(self.master_socket, "reload")
        self.reloads += 1
        self.last_reload = time.monotonic()
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeApiError):
                now = await self.show_proc()
                if now.worker_pid and now.worker_pid != before.worker_pid:
                    return
            await asyncio.sleep(0.05)
        raise HAProxyError(f"HAProxy's reload did not bring up a new worker within {RELOAD_TIMEOUT:g}s")

    async def stop(self) -> None:
        """Stop HAProxy: a soft stop (SIGUSR1: workers finish their requests), then SIGTERM if it lingers."""
        pid = self.process.pid if self.process is not None else self.adopted_master
        if pid is None or not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
        await self._wait_exit(10.0)
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if self.process is not None:
                await self.process.wait()
        if self._output is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._output, 2)

    async def _wait_exit(self, within: float) -> None:
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), within)
            return
        deadline = time.monotonic() + within
        while self.running and time.monotonic() < deadline:  # noqa: ASYNC110 - an adopted master is no child
            await asyncio.sleep(0.05)

    async def _log_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            text = line.decode(errors="replace").rstrip()
            if text:
                log.warning("haproxy: %s", text) if "[ALERT]" in text else log.info("haproxy: %s", text)


def _quoted_lines(reasons: str, file_name: str, text: str) -> str:
    """The configuration lines HAProxy's reasons point at, with their section: the checked file is gone by the
    time an operator reads the log, and the section names the app (`backend <app>_<port>`)."""
    lines = text.splitlines()
    quoted = []
    for number in sorted({int(found) for found in re.findall(re.escape(file_name) + r":(\d+)\]", reasons)}):
        if not 1 <= number <= len(lines):
            continue
        section = next(
            (line for line in reversed(lines[:number]) if line and not line.startswith((" ", "#"))), "global"
        )
        quoted.append(f"  line {number} ({section}): {lines[number - 1].strip()}")
    return "\n" + "\n".join(quoted) if quoted else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
