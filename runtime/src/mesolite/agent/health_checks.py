"""Mesos-style health checks, run by the executor (`TaskInfo.health_check`: COMMAND, HTTP, TCP).

Once the task runs (its TASK_RUNNING event), the checker waits `delay_seconds`, then checks every
`interval_seconds`, each check bounded by `timeout_seconds`. As in Mesos's health checker:

* the first success, and the first success after failures, report `healthy: true`;
* failures before the first success within `grace_period_seconds` of the task running are ignored;
* the first failure that counts reports `healthy: false`; after `consecutive_failures` failures in a
  row the task is killed (Mesos's command executor does so), and its terminal TASK_KILLED says why.

Reports are TASK_RUNNING events with `healthy` and `reason: REASON_TASK_HEALTH_CHECK_STATUS_UPDATED`,
which the agent turns into status updates that keep `healthy`.

Where a check runs is the task's containerizer's to say (`run_check_command`, `check_address`), as in
Mesos, which checks in the task's namespaces. The mesos containerizer runs COMMAND checks on the host, in
the sandbox, with the task's environment plus the check's own `command.environment`, and HTTP/TCP checks
go to 127.0.0.1:<port>. The docker containerizer runs COMMAND checks inside the container (`docker exec`)
and sends HTTP/TCP checks of BRIDGE and USER tasks to the container's address, at the port as the task
listens on it (see `DockerContainerizer.check_address`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from mesolite.agent.containerizers.base import Containerizer, ExecutorRun

log = logging.getLogger("mesolite.executor.health")

HEALTH_REASON = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
# Mesos's HealthCheck defaults.
DEFAULTS = {
    "delay_seconds": 15.0,
    "interval_seconds": 10.0,
    "timeout_seconds": 20.0,
    "consecutive_failures": 3,
    "grace_period_seconds": 10.0,
}


def check_type(check: dict) -> str | None:
    """COMMAND | HTTP | TCP; a check without `type` (pre-1.2 Mesos) with a `command` is a COMMAND check."""
    kind = check.get("type")
    if kind is None and check.get("command"):
        return "COMMAND"
    return kind


class HealthChecker:
    """Checks one task; `observe()` sees every event the executor reports, `stop()` ends the checks.

    `kill(message)` is called once, when the task failed `consecutive_failures` checks in a row."""

    def __init__(self, run: ExecutorRun, check: dict, kill: Callable[[str], None], containerizer: Containerizer):
        self.run = run
        self.check = check
        self.containerizer = containerizer
        self.kind = check_type(check)
        self._kill = kill
        self._task: asyncio.Task | None = None
        self._container_status: dict | None = None
        self.healthy: bool | None = None
        self.consecutive_failures = 0
        self.kill_message: str | None = None  # set once the checker had the task killed

    def setting(self, name: str) -> float:
        value = self.check.get(name)
        return float(DEFAULTS[name] if value is None else value)

    # -- hooks ----------------------------------------------------------------------------------

    def observe(self, state: str, details: dict[str, Any]) -> None:
        """Start checking on the task's (first) TASK_RUNNING event."""
        if state != "TASK_RUNNING" or self._task is not None or "healthy" in details:
            return
        self._container_status = details.get("container_status")
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the loop ---------------------------------------------------------------------------------

    async def _loop(self) -> None:
        started = time.monotonic()
        grace = self.setting("grace_period_seconds")
        interval = max(self.setting("interval_seconds"), 0.0)
        timeout = self.setting("timeout_seconds")
        limit = max(int(self.setting("consecutive_failures")), 1)
        await asyncio.sleep(max(self.setting("delay_seconds"), 0.0))
        while not self.run.kill_requested:
            try:
                problem = await asyncio.wait_for(self.check_once(), timeout if timeout > 0 else None)
            except TimeoutError:
                problem = f"timed out after {timeout:g}s"
            except Exception as error:
                problem = f"could not run: {error}"
            if self.run.kill_requested:
                return
            if problem is None:
                self.consecutive_failures = 0
                if self.healthy is not True:
                    self._report(True, "Health check succeeded")
            elif self.healthy is None and time.monotonic() - started <= grace:
                log.info(
                    "task %s: health check failed within the grace period (ignored): %s", self.run.task_id, problem
                )
            else:
                self.consecutive_failures += 1
                log.info(
                    "task %s: health check failed (%d of %d): %s",
                    self.run.task_id,
                    self.consecutive_failures,
                    limit,
                    problem,
                )
                if self.healthy is not False:
                    self._report(False, f"Health check failed: {problem}")
                if self.consecutive_failures >= limit:
                    self.kill_message = (
                        f"Task killed: its {self.kind} health check failed {self.consecutive_failures} times "
                        f"in a row (last: {problem})"
                    )
                    self._kill(self.kill_message)
                    return
            await asyncio.sleep(interval)

    def _report(self, healthy: bool, message: str) -> None:
        self.healthy = healthy
        log.info("task %s: healthy=%s (%s)", self.run.task_id, healthy, message)
        self.run.report(
            "TASK_RUNNING",
            healthy=healthy,
            reason=HEALTH_REASON,
            message=message,
            container_status=self._container_status,
        )

    # -- one check --------------------------------------------------------------------------------

    async def check_once(self) -> str | None:
        """None when the task is healthy, else what went wrong."""
        if self.kind == "COMMAND":
            return await self._check_command()
        if self.kind == "HTTP":
            return await self._check_http()
        if self.kind == "TCP":
            return await self._check_tcp()
        return f"unsupported health check type {self.kind!r}"

    async def _check_command(self) -> str | None:
        command = self.check.get("command") or {}
        status = await self.containerizer.run_check_command(self.run, command)
        return None if status == 0 else f"command exited with status {status}"

    async def _check_http(self) -> str | None:
        http = self.check.get("http") or {}
        port = int(http["port"])
        path = http.get("path") or "/"
        if not path.startswith("/"):
            path = "/" + path
        scheme = (http.get("scheme") or "http").lower()
        ssl = None
        if scheme == "https":
            import ssl as ssl_module

            ssl = ssl_module.create_default_context()
            ssl.check_hostname = False
            ssl.verify_mode = ssl_module.CERT_NONE
        host = await self.containerizer.check_address(self.run, port)
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: mesolite-health-check\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = (await reader.readline()).decode("latin-1").split()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if len(status_line) < 2 or not status_line[1].isdigit():
            return f"GET {scheme}://{host}:{port}{path}: no HTTP response"
        code = int(status_line[1])
        return None if 200 <= code < 400 else f"GET {scheme}://{host}:{port}{path} answered {code}"

    async def _check_tcp(self) -> str | None:
        port = int((self.check.get("tcp") or {})["port"])
        host = await self.containerizer.check_address(self.run, port)
        try:
            _reader, writer = await asyncio.open_connection(host, port)
        except OSError as error:
            return f"cannot connect to {host}:{port}: {error.strerror or error}"
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return None


def health_checker(run: ExecutorRun, kill: Callable[[str], None], containerizer: Containerizer) -> HealthChecker | None:
    """A checker for the run's task, when it has a `health_check`; it watches `run.report` from now on and
    runs its checks through `containerizer` (the one that runs the task), in the task's namespaces."""
    check = run.task.get("health_check")
    if not check:
        return None
    checker = HealthChecker(run, check, kill, containerizer)
    report = run.report

    def report_and_observe(state: str, **details: Any) -> None:
        report(state, **details)
        checker.observe(state, details)

    run.report = report_and_observe  # type: ignore[method-assign]
    return checker
