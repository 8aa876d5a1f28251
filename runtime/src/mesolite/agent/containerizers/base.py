"""The containerizer interface (a *contract*, see docs/architecture.md) and the types it speaks in.

A containerizer runs one task in one container. It lives on two sides of a process boundary:
`supports`, `validate` and `recover` run in the agent; `run`, `kill` and the health checks' way into the
container (`run_check_command`, `check_address`) run in the task's executor process (`mesolite executor`),
which survives restarts of the agent.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from mesolite.agent.checkpoint import append_json_line
from mesolite.resources import Resources

DEFAULT_CGROUPS_HIERARCHY = "/sys/fs/cgroup"
DEFAULT_CGROUPS_ROOT = "mesos"
DEFAULT_SANDBOX_DIRECTORY = "/mnt/mesos/sandbox"
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
LOOPBACK = "127.0.0.1"
# What Mesos adds to a command task's container for the executor that runs it (DEFAULT_EXECUTOR_CPUS and
# DEFAULT_EXECUTOR_MEM): the container's limits cover the task and its executor's overhead, so that a task
# sized to its own needs is not throttled or OOM-killed for the executor's share.
COMMAND_EXECUTOR_CPUS = 0.1
COMMAND_EXECUTOR_MEMORY_MEGABYTES = 32.0


@dataclass(frozen=True)
class AgentOptions:
    """What containerizers need to know about the agent's configuration (from its flags).

    The agent writes these into every `task.info`, so that the executor of a task keeps the
    options the task was launched with even when the agent restarts with other flags.
    """

    work_dir: str = "/var/lib/mesos"
    containerizers: tuple[str, ...] = ("mesos",)
    # The agent's address as tasks see it (container_status.network_infos of command tasks).
    ip: str = "127.0.0.1"
    hostname: str = "localhost"
    agent_endpoint: str = ""  # ip:port of the agent's HTTP API (MESOS_AGENT_ENDPOINT)
    executor_shutdown_grace_period: float = 5.0
    # --isolation, Mesos's names: cgroups/cpu and cgroups/mem enforce limits; posix/* only account.
    isolation: tuple[str, ...] = ("cgroups/cpu", "cgroups/mem")
    cgroups_hierarchy: str = DEFAULT_CGROUPS_HIERARCHY
    cgroups_root: str = DEFAULT_CGROUPS_ROOT
    cgroups_enable_cfs: bool = False  # hard CPU caps (CFS quota) in addition to shares
    switch_user: bool = True  # run tasks as their framework's (or command's) user when the agent is root
    sandbox_directory: str = DEFAULT_SANDBOX_DIRECTORY  # where containers see their sandbox
    docker_socket: str = DEFAULT_DOCKER_SOCKET
    docker_kill_orphans: bool = True  # kill containers named mesos-* that no task accounts for
    docker_allow_privileged: bool = False  # let tasks ask for `privileged`
    docker_allowed_parameters: tuple[str, ...] = ()  # `docker run` options added to the built-in allowlist
    # Where the boot id is read from: a reboot is a boot id change (overridable for tests).
    boot_id_path: str = "/proc/sys/kernel/random/boot_id"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentOptions:
        """Options read back from a checkpoint; unknown keys (newer agents) are ignored."""
        known = {option.name for option in fields(cls)}
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass(frozen=True)
class Termination:
    """How a container ended; the executor turns it into the task's terminal status update."""

    state: str  # TASK_FINISHED | TASK_FAILED | TASK_KILLED | TASK_ERROR
    message: str
    reason: str | None = None  # a v1 TaskStatus.Reason, e.g. REASON_COMMAND_EXECUTOR_FAILED
    exit_status: int | None = None  # the exit code of the task's process, when it exited
    signal: int | None = None  # the signal that ended it, when one did


@dataclass
class ExecutorRun:
    """One run of one task, as its executor sees it: the checkpointed task.info plus a way to report.

    `report(state, ...)` appends an event to `events.jsonl`; the agent turns every event into a
    status update. Containerizers call it with TASK_RUNNING (and `container_status`) once the task
    really runs; the executor reports TASK_STARTING before and the terminal state after.
    """

    run_dir: Path
    task: dict
    framework: dict
    containerizer: str
    sandbox: Path
    agent_id: str
    options: AgentOptions = field(default_factory=AgentOptions)
    # Written by the executor: set once a kill was asked for (containerizers may look at it).
    kill_requested: bool = False

    @property
    def container_id(self) -> str:
        return self.run_dir.name

    @property
    def task_id(self) -> str:
        return self.task["task_id"]["value"]

    @property
    def framework_id(self) -> str:
        return self.framework["id"]["value"]

    @property
    def executor_id(self) -> str:
        return self.run_dir.parent.parent.name

    @property
    def resources(self) -> Resources:
        """The task's resources (`cpus`, `mem`, `ports`, ...)."""
        return Resources.from_protobuf_json(self.task.get("resources") or [])

    @property
    def events_path(self) -> Path:
        return self.run_dir / "events.jsonl"

    def report(self, state: str, **details: Any) -> None:
        """Append one event (`message`, `reason`, `container_status`, `exit_status`, ...) and fsync it."""
        event = {"state": state, "timestamp": time.time(), **{k: v for k, v in details.items() if v is not None}}
        append_json_line(self.events_path, event)


class Containerizer(ABC):
    """Runs tasks in one kind of container. One instance per process; keep no per-task state in it
    that the agent needs (the agent and the executors are different processes)."""

    name: ClassVar[str]
    # Whether a new executor may call `run()` again for a run whose executor died, and `run()` then picks up
    # the container that still runs (no second container, no output twice). The agent then starts a new
    # executor for such a run instead of failing the task.
    reattaches: ClassVar[bool] = False

    def __init__(self, options: AgentOptions):
        self.options = options

    @abstractmethod
    def supports(self, task: dict) -> bool:
        """Agent side: can this containerizer run the TaskInfo?"""

    def validate(self, task: dict, options: AgentOptions) -> str | None:
        """Agent side, before launch: a reason the task cannot run (it then gets TASK_ERROR), or None.

        The task's resources are `Resources.from_protobuf_json(task["resources"])`.
        """
        return None

    @abstractmethod
    async def run(self, run: ExecutorRun) -> Termination:
        """Executor side: start the task, `run.report("TASK_RUNNING", container_status=...)`, wait, return
        how it ended. Raising is a launch failure (TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED)."""

    @abstractmethod
    async def kill(self, run: ExecutorRun, grace_period: float) -> None:
        """Executor side: stop the task (polite signal, then force after `grace_period` seconds). `run()`
        then returns; the executor reports TASK_KILLED. May be called before `run()` got to start it."""

    async def recover(self, known_container_ids: set[str], options: AgentOptions) -> list[str]:
        """Agent side, at start: kill (or, by flag, leave) containers of this kind that no known run
        accounts for; return descriptions of what was cleaned, for the log."""
        return []

    @abstractmethod
    async def run_check_command(self, run: ExecutorRun, command: dict) -> int:
        """Executor side: run a COMMAND health check (a v1 `CommandInfo`) where the task runs and return its
        exit status. The checker cancels it after the check's timeout: cancelled, it leaves no process behind."""

    async def check_address(self, run: ExecutorRun, port: int) -> str:
        """Executor side: the address at which HTTP and TCP health checks reach the task's `port`. This
        default is the host's loopback: the tasks of the mesos containerizer share the host's network."""
        return LOOPBACK


def container_status(run: ExecutorRun, ip_addresses: list[str], **extra: Any) -> dict:
    """A v1 `ContainerStatus` for TASK_RUNNING: the container id and the addresses the task is reachable at."""
    status: dict[str, Any] = {
        "container_id": {"value": run.container_id},
        "executor_pid": os.getpid(),
        "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": ip} for ip in ip_addresses]}],
    }
    status.update(extra)
    return status
