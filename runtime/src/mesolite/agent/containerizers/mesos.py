"""The `mesos` containerizer: command tasks as plain processes in their own session and cgroups.

The task's process is a child of its executor (never of the agent), in its own process group and
session, with stdout and stderr in the sandbox, and CPU and memory limits through cgroups where the
machine allows them. Kill: SIGTERM to the process group, SIGKILL (to the whole cgroup) after the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import signal

from mesolite.agent import cgroups, fetcher
from mesolite.agent.checkpoint import WorkDirectory, open_for_append
from mesolite.agent.containerizers.base import (
    COMMAND_EXECUTOR_CPUS,
    COMMAND_EXECUTOR_MEMORY_MEGABYTES,
    AgentOptions,
    Containerizer,
    ExecutorRun,
    Termination,
    container_status,
)

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def task_user(task: dict, framework: dict) -> str | None:
    """The user a command runs as: `command.user`, else the framework's user (as Mesos does)."""
    return (task.get("command") or {}).get("user") or framework.get("user") or None


def command_argv(command: dict) -> tuple[str, list[str]]:
    """(executable, argv) of a v1 CommandInfo: `/bin/sh -c value` when `shell` (the default) is true,
    else `value` executed directly with `arguments` as its argv (argv[0] included, as in Mesos)."""
    value = command.get("value") or ""
    if command.get("shell", True):
        return "/bin/sh", ["/bin/sh", "-c", value]
    return value, list(command.get("arguments") or [value])


def task_environment(run: ExecutorRun) -> dict[str, str]:
    """The executor's environment without the agent's own MESOS_* flags, plus Mesos's task variables and
    the task's `command.environment.variables` (which win)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MESOS_", "MESOLITE_"))}
    environment.setdefault("PATH", DEFAULT_PATH)
    sandbox = str(run.sandbox)
    environment.update(
        {
            "MESOS_SANDBOX": sandbox,
            "MESOS_DIRECTORY": sandbox,
            "MESOS_TASK_ID": run.task_id,
            "MESOS_EXECUTOR_ID": run.executor_id,
            "MESOS_FRAMEWORK_ID": run.framework_id,
            "MESOS_AGENT_ID": run.agent_id,
            "MESOS_SLAVE_ID": run.agent_id,
            "MESOS_CONTAINER_ID": run.container_id,
            "MESOS_CONTAINER_IP": run.options.ip,
        }
    )
    if run.options.agent_endpoint:
        environment["MESOS_AGENT_ENDPOINT"] = run.options.agent_endpoint
        environment["MESOS_SLAVE_PID"] = f"slave(1)@{run.options.agent_endpoint}"
    for variable in ((run.task.get("command") or {}).get("environment") or {}).get("variables") or []:
        environment[variable["name"]] = str(variable.get("value", ""))
    return environment


def termination_of(returncode: int, killed: bool, memory_exceeded: bool, memory_detail: str) -> Termination:
    if killed:
        described = f"signal {signal.Signals(-returncode).name}" if returncode < 0 else f"status {returncode}"
        return Termination(
            "TASK_KILLED",
            f"Command terminated with {described} after a kill request",
            exit_status=returncode if returncode >= 0 else None,
            signal=-returncode if returncode < 0 else None,
        )
    if memory_exceeded and returncode != 0:
        # The OOM killer may have hit a child of the shell: the shell then exits with 137, not by SIGKILL.
        return Termination(
            "TASK_FAILED",
            f"Memory limit exceeded: {memory_detail}",
            reason="REASON_CONTAINER_LIMITATION_MEMORY",
            exit_status=returncode if returncode > 0 else None,
            signal=-returncode if returncode < 0 else None,
        )
    if returncode == 0:
        return Termination("TASK_FINISHED", "Command exited with status 0", exit_status=0)
    if returncode > 0:
        return Termination(
            "TASK_FAILED",
            f"Command exited with status {returncode}",
            reason="REASON_COMMAND_EXECUTOR_FAILED",
            exit_status=returncode,
        )
    name = signal.Signals(-returncode).name
    return Termination(
        "TASK_FAILED",
        f"Command terminated with signal {name} ({-returncode})",
        reason="REASON_COMMAND_EXECUTOR_FAILED",
        signal=-returncode,
    )


class MesosContainerizer(Containerizer):
    name = "mesos"

    def __init__(self, options: AgentOptions):
        super().__init__(options)
        self._process: asyncio.subprocess.Process | None = None
        self._killing: asyncio.Event | None = None
        self._cgroups: cgroups.ContainerCgroups | None = None

    # agent side

    def supports(self, task: dict) -> bool:
        return (task.get("container") or {}).get("type", "MESOS") == "MESOS"

    def validate(self, task: dict, options: AgentOptions) -> str | None:
        command = task.get("command")
        if not isinstance(command, dict):
            return "the mesos containerizer runs command tasks: TaskInfo.command is missing"
        if command.get("shell", True) and not command.get("value"):
            return "command.value is empty (a shell command is required when command.shell is true)"
        if not command.get("shell", True) and not command.get("value"):
            return "command.value must name the executable when command.shell is false"
        for variable in (command.get("environment") or {}).get("variables") or []:
            if not isinstance(variable, dict) or not variable.get("name"):
                return f"command.environment.variables: every variable needs a name, got {variable!r}"
            if variable.get("type", "VALUE") != "VALUE":
                return f"command.environment.variables[{variable['name']}]: type {variable['type']} is not supported"
        # An unknown user is not a malformed task: as in Mesos, the launch fails (TASK_FAILED naming the user).
        return None

    async def recover(self, known_container_ids: set[str], options: AgentOptions) -> list[str]:
        """Kill what is left in the cgroups of this agent's dead containers. Only containers checkpointed in
        this agent's work_dir count: on hosts that share their cgroup hierarchy (lab nodes are containers with
        the host's /sys/fs/cgroup), the other cgroups under the root belong to other agents."""
        cleaned = []
        work_dir = WorkDirectory(options.work_dir)
        candidates = cgroups.container_ids_with_cgroups(options.cgroups_root) - known_container_ids
        for container_id in sorted(candidate for candidate in candidates if work_dir.has_container(candidate)):
            leftovers = cgroups.existing_container_cgroups(container_id, options.cgroups_root)
            pids = sorted(leftovers.pids())
            await asyncio.to_thread(leftovers.kill_all)
            await asyncio.to_thread(leftovers.remove)
            cleaned.append(f"mesos container {container_id} (processes {pids or 'none'})")
        return cleaned

    # executor side

    async def run(self, run: ExecutorRun) -> Termination:
        self._killing = asyncio.Event()
        executable, argv = command_argv(run.task["command"])
        user = task_user(run.task, run.framework) if run.options.switch_user else None
        account = _account_to_switch_to(user)
        resources = run.resources
        container_cgroups, problems = cgroups.create_container_cgroups(
            run.container_id,
            resources.scalar("cpus") + COMMAND_EXECUTOR_CPUS,
            resources.scalar("mem") + COMMAND_EXECUTOR_MEMORY_MEGABYTES,
            isolation=run.options.isolation,
            hierarchy=run.options.cgroups_hierarchy,
            cgroups_root=run.options.cgroups_root,
            enable_cfs=run.options.cgroups_enable_cfs,
        )
        self._cgroups = container_cgroups
        if account is not None:
            os.chown(run.sandbox, account.pw_uid, account.pw_gid)

        def prepare_child() -> None:  # runs in the child between fork and exec
            container_cgroups.join()
            if account is not None:
                os.initgroups(account.pw_name, account.pw_gid)
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)

        stdout = open_for_append(run.sandbox / "stdout")
        stderr = open_for_append(run.sandbox / "stderr")
        try:
            if self._killing.is_set():
                return Termination("TASK_KILLED", "Killed before the command started")
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                executable=executable,
                cwd=run.sandbox,
                env=task_environment(run),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=prepare_child if container_cgroups.paths or account else None,
            )
        finally:
            os.close(stdout)
            os.close(stderr)
        process = self._process
        log.info("task %s: forked command at pid %d: %s", run.task_id, process.pid, " ".join(argv))
        details = f"; {'; '.join(problems)}" if problems else ""
        run.report(
            "TASK_RUNNING",
            message=f"Command running as pid {process.pid}{details}",
            container_status=container_status(run, [run.options.ip]),
        )
        returncode = await process.wait()
        memory_exceeded = container_cgroups.memory_limit_hit()
        peak = container_cgroups.max_memory_bytes()
        memory_detail = f"requested {resources.scalar('mem'):g} MB, maximum used {(peak or 0) / 2**20:.0f} MB"
        # The command is the container: whatever it left behind goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(container_cgroups.kill_all)
        await asyncio.to_thread(container_cgroups.remove)
        return termination_of(returncode, self._killing.is_set(), memory_exceeded, memory_detail)

    async def kill(self, run: ExecutorRun, grace_period: float) -> None:
        if self._killing is None:
            self._killing = asyncio.Event()
        self._killing.set()
        process = self._process
        if process is None or process.returncode is not None:
            return
        log.info(
            "task %s: sending SIGTERM to process group %d (grace period %.1fs)", run.task_id, process.pid, grace_period
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), timeout=max(grace_period, 0))
        except TimeoutError:
            log.info("task %s: still running after %.1fs: SIGKILL", run.task_id, grace_period)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if self._cgroups is not None:
                await asyncio.to_thread(self._cgroups.kill_all)

    async def run_check_command(self, run: ExecutorRun, command: dict) -> int:
        """On the host, in the sandbox, with the task's environment plus the check's own variables: the
        task sees the host's filesystem too."""
        executable, argv = command_argv(command)
        environment = task_environment(run)
        for variable in (command.get("environment") or {}).get("variables") or []:
            environment[variable["name"]] = str(variable.get("value", ""))
        process = await asyncio.create_subprocess_exec(
            *argv,
            executable=executable,
            cwd=run.sandbox,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return await process.wait()
        finally:
            if process.returncode is None:  # timed out or cancelled: the check's processes go too
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await asyncio.shield(process.wait())


def _account_to_switch_to(user: str | None) -> pwd.struct_passwd | None:
    """The account to run as, or None to stay the executor's user. Raises naming an unknown user."""
    try:
        return fetcher.account_to_switch_to(user)
    except KeyError:
        raise ValueError(f"Failed to get user information for '{user}': no such user on this agent") from None
