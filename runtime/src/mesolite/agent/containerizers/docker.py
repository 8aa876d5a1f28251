"""The Docker containerizer: runs tasks whose `container.type` is DOCKER through the node's dockerd.

Agent side, `validate` turns the TaskInfo into a container configuration (`container_spec`) and refuses
what cannot or may not run (TASK_ERROR), and `recover` removes `mesos-*` containers that no task
accounts for. Executor side, `run` makes sure the image is there, creates and starts the container
`mesos-<container_id>`, copies its stdout and stderr into the sandbox, reports TASK_RUNNING with the
container's addresses and waits for it to exit; `kill` is `docker stop` with the grace period. Health
checks reach into the container as Mesos's do: a COMMAND check is a `docker exec`, and HTTP/TCP checks of
a BRIDGE or USER task go to the container's address.

Everything that talks to dockerd is blocking (the docker SDK) and runs in daemon threads, so that an
executor can always exit, and every call that watches a running container survives dockerd going
away: a restart of dockerd (with live-restore the containers keep running) only pauses the watching,
which then resumes where it stopped — the log copy included, without writing a line twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import posixpath
import re
import signal
import threading
import time
from calendar import timegm
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.types import LogConfig, Ulimit
from docker.utils import parse_repository_tag

from mesolite.agent.containerizers.base import (
    LOOPBACK,
    AgentOptions,
    Containerizer,
    ExecutorRun,
    Termination,
    container_status,
)
from mesolite.resources import ResourceError, Resources, format_ranges
from mesolite.retry import RetryPolicy

logger = logging.getLogger(__name__)

NAME_PREFIX = "mesos-"  # containers are named mesos-<container_id>, as Mesos does since 1.4
# Labels on every container, so that `docker ps` says whose it is and an agent knows its own.
LABEL_TASK_ID = "mesos.task_id"
LABEL_FRAMEWORK_ID = "mesos.framework_id"
LABEL_AGENT_ID = "mesos.agent_id"
LABEL_EXECUTOR_ID = "mesos.executor_id"
LABEL_CONTAINER_ID = "mesos.container_id"
LABEL_WORK_DIR = "mesos.work_dir"  # several agents may share one dockerd (tests, labs): each cleans only its own

# Mesos's floors: 2 CPU shares, 32 MiB of memory; CFS quota at the kernel's default period.
CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2
CFS_PERIOD_MICROSECONDS = 100_000
MIN_CFS_QUOTA_MICROSECONDS = 1_000
MIN_MEMORY_MEGABYTES = 32

PULL_TIMEOUT_SECONDS = 600.0
LAUNCH_RETRY_SECONDS = 60.0  # how long creating and starting a container waits for an unreachable dockerd
LOG_DRAIN_SECONDS = 10.0  # after the exit, how long the log copy may take to catch up
MAX_BACKOFF_SECONDS = 5.0
DOCKER_REQUEST_TIMEOUT_SECONDS = 60
# How often a health check command running in the container is asked whether it has ended: soon at first
# (most checks take milliseconds), then less often.
CHECK_FIRST_POLL_SECONDS = 0.02
CHECK_MAX_POLL_SECONDS = 0.5

NETWORKS = ("HOST", "BRIDGE", "NONE", "USER")
PROTOCOLS = ("tcp", "udp")

# -- `docker run` options from DockerInfo.parameters ----------------------------------------------
#
# Each known option maps to an argument of the docker SDK and knows how to read its value.
# An option is usable when it is in DEFAULT_ALLOWED_PARAMETERS or the operator added it with
# --docker_allowed_parameters; the rest of the known ones widen what a task can do to the host.


def _boolean(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("", "true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise DockerTaskError(f"docker parameter '{key}' takes true or false, got '{value}'")


def _integer(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DockerTaskError(f"docker parameter '{key}' takes an integer, got '{value}'") from None


def _key_value(key: str, value: str, separator: str = "=") -> tuple[str, str]:
    name, found, rest = value.partition(separator)
    if not found or not name:
        raise DockerTaskError(f"docker parameter '{key}' takes NAME{separator}VALUE, got '{value}'")
    return name, rest


def _ulimit(key: str, value: str) -> Ulimit:
    name, limits = _key_value(key, value)
    soft, _, hard = limits.partition(":")
    return Ulimit(name=name, soft=_integer(key, soft), hard=_integer(key, hard or soft))


def _tmpfs(key: str, value: str) -> tuple[str, str]:
    path, _, mount_options = value.partition(":")
    if not path.startswith("/"):
        raise DockerTaskError(f"docker parameter '{key}' takes /PATH[:OPTIONS], got '{value}'")
    return path, mount_options


@dataclass(frozen=True)
class Parameter:
    """How one `docker run` option lands in the SDK: `argument` of create_container or of the host config."""

    argument: str
    kind: str  # "scalar" | "list" | "dict" | "bool" | "int"
    host_config: bool = True
    read: Callable[[str, str], Any] | None = None  # value -> item (list) or (name, value) (dict)


PARAMETERS: dict[str, Parameter] = {
    "add-host": Parameter("extra_hosts", "dict", read=lambda k, v: _key_value(k, v, ":")),
    "cap-add": Parameter("cap_add", "list"),
    "cap-drop": Parameter("cap_drop", "list"),
    "cpuset-cpus": Parameter("cpuset_cpus", "scalar"),
    "cpuset-mems": Parameter("cpuset_mems", "scalar"),
    "device": Parameter("devices", "list"),
    "dns": Parameter("dns", "list"),
    "dns-option": Parameter("dns_opt", "list"),
    "dns-search": Parameter("dns_search", "list"),
    "entrypoint": Parameter("entrypoint", "scalar", host_config=False, read=lambda _k, v: [v]),
    "env": Parameter("environment", "dict", host_config=False, read=_key_value),
    "group-add": Parameter("group_add", "list"),
    "hostname": Parameter("hostname", "scalar", host_config=False),
    "init": Parameter("init", "bool"),
    "ipc": Parameter("ipc_mode", "scalar"),
    "label": Parameter("labels", "dict", host_config=False, read=_key_value),
    "log-driver": Parameter("log_driver", "scalar"),
    "log-opt": Parameter("log_options", "dict", read=_key_value),
    "mac-address": Parameter("mac_address", "scalar", host_config=False),
    "memory-reservation": Parameter("mem_reservation", "scalar"),
    "memory-swap": Parameter("memswap_limit", "scalar"),
    "memory-swappiness": Parameter("mem_swappiness", "int"),
    "oom-kill-disable": Parameter("oom_kill_disable", "bool"),
    "oom-score-adj": Parameter("oom_score_adj", "int"),
    "pid": Parameter("pid_mode", "scalar"),
    "pids-limit": Parameter("pids_limit", "int"),
    "read-only": Parameter("read_only", "bool"),
    "runtime": Parameter("runtime", "scalar"),
    "security-opt": Parameter("security_opt", "list"),
    "shm-size": Parameter("shm_size", "scalar"),
    "stop-signal": Parameter("stop_signal", "scalar", host_config=False),
    "sysctl": Parameter("sysctls", "dict", read=_key_value),
    "tmpfs": Parameter("tmpfs", "dict", read=_tmpfs),
    "ulimit": Parameter("ulimits", "list", read=_ulimit),
    "user": Parameter("user", "scalar", host_config=False),
    "uts": Parameter("uts_mode", "scalar"),
    "volume": Parameter("binds", "list"),
    "workdir": Parameter("working_dir", "scalar", host_config=False),
}
PARAMETER_ALIASES = {"e": "env", "l": "label", "u": "user", "w": "workdir", "v": "volume", "dns-opt": "dns-option"}
# Options that shape the task inside its container and give it nothing of the host's.
DEFAULT_ALLOWED_PARAMETERS = frozenset(
    {
        "add-host", "cap-drop", "cpuset-cpus", "dns", "dns-option", "dns-search", "entrypoint", "env",
        "hostname", "init", "label", "log-opt", "memory-reservation", "memory-swappiness",
        "oom-score-adj", "pids-limit", "read-only", "shm-size", "stop-signal", "sysctl", "tmpfs", "ulimit",
        "user", "workdir",
    }
)  # fmt: skip
# Options the containerizer itself decides (or that have their own field in DockerInfo).
RESERVED_PARAMETERS = {
    "name": "the container is always named mesos-<container_id>",
    "network": "use container.docker.network",
    "net": "use container.docker.network",
    "publish": "use container.docker.port_mappings",
    "p": "use container.docker.port_mappings",
    "privileged": "use container.docker.privileged",
    "restart": "the task's scheduler restarts tasks, not dockerd",
    "rm": "the executor removes the container when the task ends",
    "detach": "containers always run detached",
    "d": "containers always run detached",
    "tty": "the sandbox gets the container's stdout and stderr, which a tty would merge",
    "t": "the sandbox gets the container's stdout and stderr, which a tty would merge",
    "memory": "the task's mem resource sets the memory limit",
    "m": "the task's mem resource sets the memory limit",
    "cpu-shares": "the task's cpus resource sets the CPU shares",
    "c": "the task's cpus resource sets the CPU shares",
    "cpus": "the task's cpus resource sets the CPU limit",
}


class DockerTaskError(ValueError):
    """A DOCKER TaskInfo that cannot run here; the message names the field and the reason."""


def normalize_parameter_key(key: str) -> str:
    bare = key.strip().lstrip("-")
    return PARAMETER_ALIASES.get(bare, bare)


def allowed_parameters(options: AgentOptions) -> frozenset[str]:
    return DEFAULT_ALLOWED_PARAMETERS | {normalize_parameter_key(key) for key in options.docker_allowed_parameters}


def unknown_allowed_parameters(options: AgentOptions) -> list[str]:
    """Entries of --docker_allowed_parameters this containerizer cannot apply (for the agent to refuse at start)."""
    return sorted(
        key for key in map(normalize_parameter_key, options.docker_allowed_parameters) if key not in PARAMETERS
    )


# -- from TaskInfo to a container configuration -----------------------------------------------------


def container_name(container_id: str) -> str:
    return NAME_PREFIX + container_id


@dataclass
class ContainerSpec:
    """Arguments for the docker SDK: `create` for `create_container`, `host` for `create_host_config`."""

    image: str
    name: str
    create: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    network: str = "HOST"
    port_mappings: list[dict[str, Any]] = field(default_factory=list)
    force_pull: bool = False


@dataclass(frozen=True)
class TaskIdentity:
    """Who a container belongs to: what its labels and MESOS_* variables say."""

    container_id: str
    task_id: str
    framework_id: str
    agent_id: str
    executor_id: str


def _docker_info(task: dict) -> dict:
    container = task.get("container") or {}
    if container.get("type") != "DOCKER":
        raise DockerTaskError("container.type must be DOCKER for the docker containerizer")
    docker_info = container.get("docker")
    if not isinstance(docker_info, dict) or not str(docker_info.get("image") or "").strip():
        raise DockerTaskError("container.docker.image is missing")
    return docker_info


def task_network(task: dict) -> str:
    """The task's `container.docker.network`, upper case; HOST when it names none."""
    docker_info = (task.get("container") or {}).get("docker") or {}
    return str(docker_info.get("network") or "HOST").upper()


def _network(task: dict, spec: ContainerSpec) -> None:
    network = task_network(task)
    if network not in NETWORKS:
        raise DockerTaskError(f"container.docker.network '{network}' is not one of {', '.join(NETWORKS)}")
    spec.network = network
    if network == "USER":
        infos = (task.get("container") or {}).get("network_infos") or []
        name = infos[0].get("name") if infos else None
        if not name:
            raise DockerTaskError("container.docker.network USER needs container.network_infos[0].name")
        spec.host["network_mode"] = name
    else:
        spec.host["network_mode"] = network.lower()


def _port_mappings(task: dict, docker_info: dict, resources: Resources, spec: ContainerSpec) -> None:
    mappings = docker_info.get("port_mappings") or []
    if not mappings:
        return
    if spec.network not in ("BRIDGE", "USER"):
        raise DockerTaskError(f"container.docker.port_mappings need network BRIDGE or USER, not {spec.network}")
    offered = resources.ranges("ports")
    bindings: dict[str, int] = {}
    exposed: list[int | tuple[int, str]] = []
    for index, mapping in enumerate(mappings):
        where = f"container.docker.port_mappings[{index}]"
        try:
            host_port = int(mapping.get("host_port"))
            container_port = int(mapping.get("container_port"))
        except (TypeError, ValueError):
            raise DockerTaskError(f"{where} needs integer host_port and container_port") from None
        protocol = str(mapping.get("protocol") or "tcp").lower()
        if protocol not in PROTOCOLS:
            raise DockerTaskError(f"{where}.protocol '{protocol}' is not tcp or udp")
        if not 1 <= container_port <= 65535:
            raise DockerTaskError(f"{where}.container_port {container_port} is not a port number")
        if not any(begin <= host_port <= end for begin, end in offered):
            raise DockerTaskError(
                f"{where}.host_port {host_port} is not in the task's ports resource "
                f"{format_ranges(offered) if offered else '(none)'}"
            )
        key = f"{container_port}/{protocol}"
        if key in bindings:
            raise DockerTaskError(f"{where}: container port {key} is mapped twice")
        if (host_port, protocol) in {(m["host_port"], m["protocol"]) for m in spec.port_mappings}:
            raise DockerTaskError(f"{where}: host port {host_port}/{protocol} is mapped twice")
        bindings[key] = host_port
        exposed.append(container_port if protocol == "tcp" else (container_port, protocol))
        spec.port_mappings.append({"host_port": host_port, "container_port": container_port, "protocol": protocol})
    spec.host["port_bindings"] = bindings
    spec.create["ports"] = exposed


def _limits(resources: Resources, options: AgentOptions, spec: ContainerSpec) -> None:
    cpus = resources.scalar("cpus")
    if cpus > 0:
        spec.host["cpu_shares"] = max(int(CPU_SHARES_PER_CPU * cpus), MIN_CPU_SHARES)
        if options.cgroups_enable_cfs:
            spec.host["cpu_period"] = CFS_PERIOD_MICROSECONDS
            spec.host["cpu_quota"] = max(int(CFS_PERIOD_MICROSECONDS * cpus), MIN_CFS_QUOTA_MICROSECONDS)
    memory = resources.scalar("mem")
    if memory > 0:
        spec.host["mem_limit"] = int(max(memory, MIN_MEMORY_MEGABYTES) * 1024 * 1024)


def _volumes(task: dict, sandbox: str, options: AgentOptions, spec: ContainerSpec) -> None:
    binds = [f"{sandbox}:{options.sandbox_directory}:rw"]
    for index, volume in enumerate((task.get("container") or {}).get("volumes") or []):
        where = f"container.volumes[{index}]"
        container_path = str(volume.get("container_path") or "")
        if not container_path:
            raise DockerTaskError(f"{where}.container_path is missing")
        if not container_path.startswith("/"):  # relative paths are inside the sandbox, as in Mesos
            container_path = posixpath.join(options.sandbox_directory, container_path)
        mode = str(volume.get("mode") or "RW").upper()
        if mode not in ("RW", "RO"):
            raise DockerTaskError(f"{where}.mode '{mode}' is not RW or RO")
        source = volume.get("source") or {}
        if source.get("type") == "DOCKER_VOLUME":
            docker_volume = source.get("docker_volume") or {}
            driver = docker_volume.get("driver") or "local"
            if driver != "local":
                raise DockerTaskError(f"{where}: docker volume driver '{driver}' is not supported (only local)")
            host_side = str(docker_volume.get("name") or "")
            if not host_side:
                raise DockerTaskError(f"{where}.source.docker_volume.name is missing")
        elif source:
            raise DockerTaskError(f"{where}.source.type '{source.get('type')}' is not supported (DOCKER_VOLUME is)")
        else:
            host_side = str(volume.get("host_path") or "")
            if not host_side:
                raise DockerTaskError(f"{where}.host_path is missing")
            if not host_side.startswith("/"):  # relative to the sandbox, as in Mesos
                host_side = posixpath.join(sandbox, host_side)
            if ".." in Path(host_side).parts:
                raise DockerTaskError(f"{where}.host_path must not contain '..'")
        binds.append(f"{host_side}:{container_path}:{mode.lower()}")
    spec.host["binds"] = binds


def _environment(task: dict, identity: TaskIdentity, options: AgentOptions) -> dict[str, str]:
    environment = {
        "MESOS_SANDBOX": options.sandbox_directory,
        "MESOS_CONTAINER_NAME": container_name(identity.container_id),
        "MESOS_TASK_ID": identity.task_id,
        "MESOS_FRAMEWORK_ID": identity.framework_id,
        "MESOS_AGENT_ID": identity.agent_id,
        "MESOS_EXECUTOR_ID": identity.executor_id,
    }
    variables = ((task.get("command") or {}).get("environment") or {}).get("variables") or []
    for index, variable in enumerate(variables):
        name = variable.get("name")
        if not name:
            raise DockerTaskError(f"command.environment.variables[{index}].name is missing")
        if (variable.get("type") or "VALUE") != "VALUE":
            raise DockerTaskError(f"command.environment.variables[{index}] ({name}): only VALUE variables work")
        environment[name] = str(variable.get("value", ""))
    return environment


def _command(task: dict, spec: ContainerSpec) -> None:
    """Mesos's rule: with `shell` (the default) the value runs under `/bin/sh -c`, replacing the image's
    entrypoint; without it, value (if any) and arguments follow the image's entrypoint, like `docker run
    IMAGE ARGS...`. A command with nothing in it runs what the image says."""
    command = task.get("command") or {}
    value = command.get("value")
    arguments = [str(argument) for argument in command.get("arguments") or []]
    if command.get("shell", True):
        if value:
            spec.create["entrypoint"] = ["/bin/sh", "-c"]
            spec.create["command"] = [str(value)]
        return
    words = ([str(value)] if value else []) + arguments
    if words:
        spec.create["command"] = words


def _labels(task: dict, identity: TaskIdentity, options: AgentOptions) -> dict[str, str]:
    labels = {
        str(label.get("key")): str(label.get("value", ""))
        for label in ((task.get("labels") or {}).get("labels") or [])
        if label.get("key")
    }
    labels.update(
        {
            LABEL_TASK_ID: identity.task_id,
            LABEL_FRAMEWORK_ID: identity.framework_id,
            LABEL_AGENT_ID: identity.agent_id,
            LABEL_EXECUTOR_ID: identity.executor_id,
            LABEL_CONTAINER_ID: identity.container_id,
            LABEL_WORK_DIR: options.work_dir,
        }
    )
    return labels


def _parameters(docker_info: dict, options: AgentOptions, spec: ContainerSpec) -> None:
    allowed = allowed_parameters(options)
    for index, parameter in enumerate(docker_info.get("parameters") or []):
        raw_key = str(parameter.get("key") or "")
        value = str(parameter.get("value", ""))
        key = normalize_parameter_key(raw_key)
        where = f"container.docker.parameters[{index}] ({raw_key or 'no key'})"
        if key in RESERVED_PARAMETERS:
            raise DockerTaskError(f"{where} cannot be set: {RESERVED_PARAMETERS[key]}")
        if key not in PARAMETERS:
            raise DockerTaskError(f"{where} is not a docker run option this agent knows")
        if key not in allowed:
            raise DockerTaskError(
                f"{where} is not allowed on this agent (the operator can allow it with --docker_allowed_parameters)"
            )
        known = PARAMETERS[key]
        target = spec.host if known.host_config else spec.create
        item = known.read(key, value) if known.read else value
        if known.kind == "list":
            target.setdefault(known.argument, []).append(item)
        elif known.kind == "dict":
            name, item_value = item
            target.setdefault(known.argument, {})[name] = item_value
        elif known.kind == "bool":
            target[known.argument] = _boolean(key, value)
        elif known.kind == "int":
            target[known.argument] = _integer(key, value)
        else:
            target[known.argument] = item
    # The log driver and its options are one host config value in the SDK.
    driver, log_options = spec.host.pop("log_driver", None), spec.host.pop("log_options", None)
    if driver or log_options:
        spec.host["log_config"] = LogConfig(type=driver or "json-file", config=log_options or {})


def container_spec(task: dict, identity: TaskIdentity, sandbox: str, options: AgentOptions) -> ContainerSpec:
    """The container a DOCKER TaskInfo asks for; DockerTaskError (naming the field) when it cannot run here."""
    docker_info = _docker_info(task)
    try:
        resources = Resources.from_protobuf_json(task.get("resources") or [])
    except ResourceError as error:
        raise DockerTaskError(f"resources: {error}") from None
    spec = ContainerSpec(
        image=str(docker_info["image"]).strip(),
        name=container_name(identity.container_id),
        force_pull=bool(docker_info.get("force_pull_image", False)),
    )
    if docker_info.get("privileged"):
        if not options.docker_allow_privileged:
            raise DockerTaskError(
                "container.docker.privileged is not allowed on this agent (start it with --docker_allow_privileged)"
            )
        spec.host["privileged"] = True
    _network(task, spec)
    _port_mappings(task, docker_info, resources, spec)
    _limits(resources, options, spec)
    _volumes(task, sandbox, options, spec)
    _command(task, spec)
    spec.create["environment"] = _environment(task, identity, options)
    spec.create["labels"] = _labels(task, identity, options)
    hostname = (task.get("container") or {}).get("hostname")
    if hostname and spec.network != "HOST":
        spec.create["hostname"] = str(hostname)
    # Parameters come last: like `docker run` options added after Mesos's own, they override them.
    _parameters(docker_info, options, spec)
    spec.create["environment"] = [f"{name}={value}" for name, value in spec.create["environment"].items()]
    return spec


# -- talking to dockerd through outages ------------------------------------------------------------


class DockerUnavailable(RuntimeError):
    """dockerd did not answer (not running, restarting, socket gone)."""


class PullFailed(RuntimeError):
    """The registry refused or could not be reached while pulling."""


TRANSIENT_ERRORS = (
    DockerUnavailable,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
)


def is_transient(error: BaseException) -> bool:
    """Errors that mean "dockerd is away for now", not "this request is wrong"."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    # A daemon shutting down may answer 5xx before it closes its socket.
    if isinstance(error, docker.errors.APIError) and not isinstance(error, docker.errors.NotFound):
        return error.status_code in (502, 503) or "shutting down" in str(error).lower()
    return False


_Result = TypeVar("_Result")


class DockerSession:
    """A docker API client that reconnects: `call(operation)` retries what fails because dockerd is away."""

    def __init__(self, socket_path: str):
        self.base_url = f"unix://{socket_path}"
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()

    def api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.APIClient(
                        base_url=self.base_url, version="auto", timeout=DOCKER_REQUEST_TIMEOUT_SECONDS
                    )
                except docker.errors.DockerException as error:
                    raise DockerUnavailable(f"dockerd at {self.base_url} does not answer: {error}") from None
            return self._client

    def reset(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def call(self, operation: Callable[[docker.APIClient], _Result], give_up_after: float | None = None) -> _Result:
        """Run `operation(api)`, retrying with backoff while dockerd is away (forever when `give_up_after`
        is None); any other error is raised at once."""
        backoff = RetryPolicy(initial=0.2, maximum=MAX_BACKOFF_SECONDS, jitter=False, deadline=give_up_after).backoff()
        while True:
            try:
                return operation(self.api())
            except Exception as error:
                if not is_transient(error):
                    raise
                if backoff.exhausted():
                    raise DockerUnavailable(f"dockerd at {self.base_url} is unreachable: {error}") from error
                delay = backoff.next_delay()
                logger.warning("dockerd is unreachable (%s); retrying in %.1fs", error, delay)
                self.reset()
                time.sleep(delay)


async def in_thread(function: Callable[..., _Result], *arguments: Any) -> _Result:
    """Run a blocking call in a daemon thread: unlike asyncio.to_thread, a call stuck on dockerd never
    keeps the process from exiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            result = function(*arguments)
        except BaseException as error:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(deliver, future.set_exception, error)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, future.set_result, result)

    threading.Thread(target=target, name=getattr(function, "__name__", "docker"), daemon=True).start()
    return await future


# -- copying the container's output into the sandbox ------------------------------------------------

TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ")


def parse_log_timestamp(line: bytes) -> tuple[int, bytes] | None:
    """Split `docker logs --timestamps` output into (nanoseconds since the epoch, message)."""
    match = TIMESTAMP.match(line)
    if match is None:
        return None
    seconds_text, fraction, zone = match.groups()
    seconds = timegm(time.strptime(seconds_text.decode(), "%Y-%m-%dT%H:%M:%S"))
    if zone != b"Z":
        sign = 1 if zone[:1] == b"+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    nanoseconds = int((fraction or b"0").ljust(9, b"0"))
    return seconds * 1_000_000_000 + nanoseconds, line[match.end() :]


class LogPosition:
    """How far one stream has been copied: the last entry's timestamp and how many entries carried it.

    Kept in a small file of fixed width rewritten in place (one pwrite, no rename), so that an executor
    that starts over resumes without copying a line twice.
    """

    WIDTH = 32

    def __init__(self, path: Path):
        self.path = path
        self.nanoseconds = 0
        self.count = 0
        with contextlib.suppress(OSError, ValueError):
            nanoseconds, count = path.read_text().split()
            self.nanoseconds, self.count = int(nanoseconds), int(count)
        self._descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)

    def advance(self, nanoseconds: int) -> None:
        if nanoseconds == self.nanoseconds:
            self.count += 1
        else:
            self.nanoseconds, self.count = nanoseconds, 1
        os.pwrite(self._descriptor, f"{self.nanoseconds} {self.count}".ljust(self.WIDTH - 1).encode() + b"\n", 0)

    def close(self) -> None:
        os.close(self._descriptor)


def copy_log_entries(entries: Iterator[bytes], output, position: LogPosition) -> None:
    """Append the entries after `position` to `output` (entries at or before it were copied already)."""
    start_nanoseconds, start_count = position.nanoseconds, position.count
    seen_at_start = 0
    for entry in entries:
        parsed = parse_log_timestamp(entry)
        if parsed is None:  # not what --timestamps promises; keep the text rather than lose it
            output.write(entry)
            continue
        nanoseconds, message = parsed
        if nanoseconds < start_nanoseconds:
            continue
        if nanoseconds == start_nanoseconds:
            seen_at_start += 1
            if seen_at_start <= start_count:
                continue
        output.write(message)
        position.advance(nanoseconds)


def follow_logs(session: DockerSession, container: str, stream: str, sandbox: Path, run_dir: Path) -> None:
    """Copy the container's `stream` (stdout|stderr) into the sandbox file of that name until the
    container has stopped and everything it wrote is copied; survives dockerd restarts."""
    position = LogPosition(run_dir / f"docker-{stream}.position")
    try:
        with open(sandbox / stream, "ab", buffering=0) as output:
            while True:
                state = session.call(lambda api: api.inspect_container(container)["State"])
                running = bool(state.get("Running"))
                since = position.nanoseconds // 1_000_000_000 or None

                def read(api: docker.APIClient, running: bool = running, since: int | None = since) -> None:
                    entries = api.logs(
                        container,
                        stdout=stream == "stdout",
                        stderr=stream == "stderr",
                        stream=True,
                        follow=running,
                        timestamps=True,
                        since=since,
                    )
                    copy_log_entries(entries, output, position)

                session.call(read)
                if not running:
                    return
                # The stream ended while the container ran: it stopped just now, or dockerd went away.
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as error:  # e.g. a log driver dockerd cannot read back
        logger.warning("Cannot copy the %s of %s into the sandbox: %s", stream, container, _error_text(error))
    finally:
        position.close()


# -- the containerizer -----------------------------------------------------------------------------


def _identity(run: ExecutorRun) -> TaskIdentity:
    return TaskIdentity(run.container_id, run.task_id, run.framework_id, run.agent_id, run.executor_id)


def _addresses(inspection: dict, spec: ContainerSpec, options: AgentOptions) -> list[dict]:
    """network_infos for TASK_RUNNING: the addresses the task is reachable at, and its host ports."""
    if spec.network == "HOST":
        return [{"ip_addresses": [{"protocol": "IPv4", "ip_address": options.ip}]}]
    networks = (inspection.get("NetworkSettings") or {}).get("Networks") or {}
    infos = []
    for name, network in networks.items():
        addresses = []
        if network.get("IPAddress"):
            addresses.append({"protocol": "IPv4", "ip_address": network["IPAddress"]})
        if network.get("GlobalIPv6Address"):
            addresses.append({"protocol": "IPv6", "ip_address": network["GlobalIPv6Address"]})
        info: dict[str, Any] = {"ip_addresses": addresses}
        if spec.network == "USER":
            info["name"] = name
        if spec.port_mappings:
            info["port_mappings"] = spec.port_mappings
        infos.append(info)
    return infos or [{"ip_addresses": []}]


def _container_ipv4(inspection: dict) -> str | None:
    """The container's IPv4 address on its (first) network; None on the host's network or none."""
    networks = (inspection.get("NetworkSettings") or {}).get("Networks") or {}
    return next((network["IPAddress"] for network in networks.values() if network.get("IPAddress")), None)


def check_command_argv(command: dict) -> list[str]:
    """What `docker exec` runs for a COMMAND check: `sh -c <value>` when `shell` is true (the default), as
    Mesos does, else `value` with the arguments after argv[0] (an exec cannot set argv[0] on its own)."""
    value = str(command.get("value") or "")
    if command.get("shell", True):
        return ["sh", "-c", value]
    arguments = [str(argument) for argument in command.get("arguments") or []]
    return [value, *arguments[1:]]


def _started(inspection: dict) -> bool:
    """Whether the container has ever run (dockerd's zero time means never)."""
    started_at = (inspection.get("State") or {}).get("StartedAt") or ""
    return bool(started_at) and not started_at.startswith("0001-")


def _reported_running(run: ExecutorRun) -> bool:
    """Whether an earlier executor of this run reported TASK_RUNNING already (then it is not news)."""
    try:
        lines = run.events_path.read_text().splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        with contextlib.suppress(ValueError):  # a line torn by a crash
            if json.loads(line).get("state") == "TASK_RUNNING":
                return True
    return False


def _launch_without_dockerd(run: ExecutorRun) -> Termination | None:
    """The failure of a launch on a node without dockerd: its socket file does not exist (the packages'
    docker.socket keeps the file while dockerd restarts). Waiting LAUNCH_RETRY_SECONDS for it would only make
    the failure late and vague. A socket that exists but does not answer yet is waited for, as is a
    re-attach (dockerd may be restarting under a running container)."""
    if os.path.exists(run.options.docker_socket) or _may_have_a_container(run):
        return None
    return _launch_failure(
        f"dockerd is not running: its socket {run.options.docker_socket} does not exist "
        "(start dockerd, or point --docker_socket at its socket)"
    )


def _may_have_a_container(run: ExecutorRun) -> bool:
    """Whether an earlier executor of this run may have started its container (which a new executor
    must then wait for dockerd to re-attach to, rather than fail): it reported TASK_RUNNING, or it had
    begun copying the container's output."""
    return _reported_running(run) or (run.run_dir / "docker-stdout.position").exists()


def _termination(state: dict | None, killed: bool) -> Termination:
    if state is None:
        if killed:
            return Termination("TASK_KILLED", "Container was removed by a kill request")
        return Termination(
            "TASK_FAILED", "Container disappeared (removed outside of mesolite)", reason="REASON_EXECUTOR_TERMINATED"
        )
    exit_code = state.get("ExitCode")
    if killed:
        return Termination("TASK_KILLED", f"Container stopped by a kill request (exit status {exit_code})",
                           exit_status=exit_code)  # fmt: skip
    if state.get("OOMKilled"):
        return Termination(
            "TASK_FAILED",
            "Container exceeded its memory limit and was killed",
            reason="REASON_CONTAINER_LIMITATION_MEMORY",
            exit_status=exit_code,
        )
    if exit_code == 0:
        return Termination("TASK_FINISHED", "Container exited with status 0", exit_status=0)
    message = f"Container exited with status {exit_code}"
    if state.get("Error"):
        message += f": {state['Error']}"
    return Termination("TASK_FAILED", message, reason="REASON_COMMAND_EXECUTOR_FAILED", exit_status=exit_code)


def _launch_failure(message: str) -> Termination:
    return Termination("TASK_FAILED", message, reason="REASON_CONTAINER_LAUNCH_FAILED")


def _error_text(error: Exception) -> str:
    if isinstance(error, docker.errors.APIError):
        return str(error.explanation or error)
    return str(error)


class DockerContainerizer(Containerizer):
    name = "docker"
    reattaches = True  # run() re-attaches to the container of an earlier executor of the run

    def __init__(self, options: AgentOptions):
        super().__init__(options)
        self._kill_grace: dict[str, float] = {}  # container id -> grace period, once a kill was asked for
        self._session: DockerSession | None = None

    def session(self) -> DockerSession:
        if self._session is None:
            self._session = DockerSession(self.options.docker_socket)
        return self._session

    # agent side

    def supports(self, task: dict) -> bool:
        return (task.get("container") or {}).get("type") == "DOCKER"

    def validate(self, task: dict, options: AgentOptions) -> str | None:
        placeholder = TaskIdentity("validation", "task", "framework", "agent", "executor")
        try:
            container_spec(task, placeholder, "/sandbox", options)
        except DockerTaskError as error:
            return str(error)
        return None

    async def recover(self, known_container_ids: set[str], options: AgentOptions) -> list[str]:
        session = DockerSession(options.docker_socket)
        try:
            return await in_thread(self._remove_orphans, session, known_container_ids, options)
        finally:
            session.reset()

    @staticmethod
    def _remove_orphans(session: DockerSession, known: set[str], options: AgentOptions) -> list[str]:
        containers = session.call(lambda api: api.containers(all=True, filters={"name": NAME_PREFIX}), 30)
        cleaned = []
        for container in containers:
            name = (container.get("Names") or ["/"])[0].lstrip("/")
            if not name.startswith(NAME_PREFIX) or name[len(NAME_PREFIX) :] in known:
                continue
            labels = container.get("Labels") or {}
            owner = labels.get(LABEL_WORK_DIR)
            if owner is not None and owner != options.work_dir:
                continue  # another agent's, on the same dockerd
            description = (
                f"{name} (task {labels.get(LABEL_TASK_ID, 'unknown')}, "
                f"framework {labels.get(LABEL_FRAMEWORK_ID, 'unknown')}, {container.get('Status', '')})"
            )
            if not options.docker_kill_orphans:
                logger.warning("Leaving orphaned container %s (--no-docker_kill_orphans)", description)
                continue
            try:
                session.call(lambda api, id=container["Id"]: api.remove_container(id, v=True, force=True), 30)
            except docker.errors.NotFound:
                pass  # gone already
            except docker.errors.APIError as error:
                logger.error("Could not remove orphaned container %s: %s", description, _error_text(error))
                continue
            cleaned.append(description)
        return cleaned

    # executor side

    async def run(self, run: ExecutorRun) -> Termination:
        session = self.session()
        try:
            spec = container_spec(run.task, _identity(run), str(run.sandbox), run.options)
        except DockerTaskError as error:
            return Termination("TASK_ERROR", str(error), reason="REASON_TASK_INVALID")
        for stream in ("stdout", "stderr"):  # there from the start, as in every Mesos sandbox
            (run.sandbox / stream).touch()
        failure = _launch_without_dockerd(run)
        if failure is not None:
            return failure
        existing = await in_thread(self._inspect, session, spec.name)
        if existing is not None and _started(existing):
            logger.info("Re-attaching to container %s", spec.name)
        elif existing is None and _reported_running(run):
            # The task ran, and its container is gone: starting it again would run the task twice.
            return _termination(None, self._killed(run))
        else:
            failure = await self._launch(run, session, spec, created=existing is not None)
            if failure is not None:
                return failure
            existing = await in_thread(self._inspect, session, spec.name)
        return await self._watch(run, session, spec, existing)

    async def _launch(
        self, run: ExecutorRun, session: DockerSession, spec: ContainerSpec, created: bool
    ) -> Termination | None:
        """Get the image, create the container (unless an earlier executor of the run did) and start it;
        a Termination when that cannot or need not happen."""
        killed = Termination("TASK_KILLED", "Killed before the container was started")
        if self._killed(run):
            await in_thread(self._remove, session, spec.name)
            return killed
        if not created:
            failure = await self._ensure_image(session, spec)
            if failure is not None:
                return failure
            if self._killed(run):
                return killed
        try:
            await in_thread(self._create_and_start, session, spec)
        except (docker.errors.APIError, DockerUnavailable) as error:
            await in_thread(self._remove, session, spec.name)
            return _launch_failure(
                f"Failed to start container {spec.name} (image '{spec.image}'): {_error_text(error)}"
            )
        return None

    async def _watch(
        self, run: ExecutorRun, session: DockerSession, spec: ContainerSpec, inspection: dict | None
    ) -> Termination:
        """Copy the output, report TASK_RUNNING, wait for the end, clean up."""
        loggers = [
            asyncio.ensure_future(in_thread(follow_logs, session, spec.name, stream, run.sandbox, run.run_dir))
            for stream in ("stdout", "stderr")
        ]
        if inspection is not None and _started(inspection) and not _reported_running(run):
            run.report(
                "TASK_RUNNING",
                message=f"Container {spec.name} is running",
                container_status=container_status(run, [], network_infos=_addresses(inspection, spec, run.options)),
            )
        if self._killed(run):  # a kill that came while the container was being started
            await self._stop(session, spec.name, self._kill_grace[run.container_id])
        state = await in_thread(self._wait, session, spec.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*loggers, return_exceptions=True), LOG_DRAIN_SECONDS)
        termination = _termination(state, self._killed(run))
        await in_thread(self._remove, session, spec.name)
        return termination

    async def kill(self, run: ExecutorRun, grace_period: float) -> None:
        self._kill_grace[run.container_id] = grace_period
        await self._stop(self.session(), container_name(run.container_id), grace_period)

    def _killed(self, run: ExecutorRun) -> bool:
        return run.container_id in self._kill_grace

    # executor side, for health checks: Mesos runs them in the container's namespaces. Each call to dockerd
    # is tried once (give_up_after 0): a check does not wait for dockerd to come back, it fails.

    async def run_check_command(self, run: ExecutorRun, command: dict) -> int:
        """A `docker exec` in the task's container: the check sees the container's filesystem, processes
        and environment (plus the check's own variables), as Mesos's COMMAND checks of Docker tasks do."""
        session = self.session()
        name = container_name(run.container_id)
        try:
            exec_id = await in_thread(self._start_exec, session, name, command)
        except docker.errors.APIError as error:  # e.g. no such executable, or the container has stopped
            raise RuntimeError(f"docker exec in {name} failed: {_error_text(error)}") from None
        try:
            return await self._exit_status(session, exec_id)
        except BaseException:  # timed out (cancelled) or dockerd gone: the check must not live on
            with contextlib.suppress(Exception):
                await asyncio.shield(in_thread(self._kill_exec, session, exec_id))
            raise

    async def check_address(self, run: ExecutorRun, port: int) -> str:
        """Mesos checks `port` from inside the container's network namespace. For a HOST task that is the
        host's loopback; a BRIDGE or USER task listens on its own address, with the port as the task binds
        it (the container port, not a mapped one: Marathon puts the container port in such checks)."""
        if task_network(run.task) not in ("BRIDGE", "USER"):
            return LOOPBACK
        name = container_name(run.container_id)
        inspection = await in_thread(self.session().call, lambda api: api.inspect_container(name), 0)
        address = _container_ipv4(inspection)
        if address is None:
            raise RuntimeError(f"container {name} has no IPv4 address")
        return address

    @staticmethod
    async def _exit_status(session: DockerSession, exec_id: str) -> int:
        """The exit status of a started exec, once it has ended."""
        delay = CHECK_FIRST_POLL_SECONDS
        while True:
            state = await in_thread(session.call, lambda api: api.exec_inspect(exec_id), 0)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            await asyncio.sleep(delay)
            delay = min(delay * 2, CHECK_MAX_POLL_SECONDS)

    async def _stop(self, session: DockerSession, name: str, grace_period: float) -> None:
        seconds = max(0, math.ceil(grace_period))

        def stop(api: docker.APIClient) -> None:
            api.stop(name, timeout=seconds)

        # NotFound: not created yet (run() sees the kill before it creates it) or gone already.
        with contextlib.suppress(docker.errors.NotFound):
            await in_thread(session.call, stop, seconds + LAUNCH_RETRY_SECONDS)

    async def _ensure_image(self, session: DockerSession, spec: ContainerSpec) -> Termination | None:
        present = await in_thread(self._image_present, session, spec.image)
        if present and not spec.force_pull:
            return None
        try:
            await asyncio.wait_for(in_thread(self._pull, session, spec.image), PULL_TIMEOUT_SECONDS)
        except (TimeoutError, docker.errors.APIError, DockerUnavailable, PullFailed) as error:
            reason = "timed out" if isinstance(error, TimeoutError) else _error_text(error)
            if present:
                return _launch_failure(f"Failed to pull image '{spec.image}' (force_pull_image is set): {reason}")
            return _launch_failure(f"Image '{spec.image}' is not on this agent and could not be pulled: {reason}")
        return None

    # blocking helpers, run in threads

    @staticmethod
    def _inspect(session: DockerSession, name: str) -> dict | None:
        try:
            return session.call(lambda api: api.inspect_container(name), LAUNCH_RETRY_SECONDS)
        except docker.errors.NotFound:
            return None

    @staticmethod
    def _image_present(session: DockerSession, image: str) -> bool:
        try:
            session.call(lambda api: api.inspect_image(image), LAUNCH_RETRY_SECONDS)
        except docker.errors.NotFound:
            return False
        return True

    @staticmethod
    def _pull(session: DockerSession, image: str) -> None:
        repository, tag = parse_repository_tag(image)

        def pull(api: docker.APIClient) -> None:
            # A pull reports most failures inside its progress stream, not as an HTTP error.
            for progress in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if "error" in progress:
                    raise PullFailed(progress.get("error"))

        session.call(pull, LAUNCH_RETRY_SECONDS)

    @staticmethod
    def _create_and_start(session: DockerSession, spec: ContainerSpec) -> None:
        def create(api: docker.APIClient) -> None:
            host_config = api.create_host_config(**spec.host)
            try:
                api.create_container(spec.image, name=spec.name, host_config=host_config, detach=True, **spec.create)
            except docker.errors.APIError as error:
                # A retry after a dropped connection finds the container it created the first time.
                if error.status_code != 409:
                    raise

        session.call(create, LAUNCH_RETRY_SECONDS)
        session.call(lambda api: api.start(spec.name), LAUNCH_RETRY_SECONDS)

    @staticmethod
    def _start_exec(session: DockerSession, name: str, command: dict) -> str:
        """Start a check command in the container, detached (its output is not kept); the exec's id."""
        variables = (command.get("environment") or {}).get("variables") or []
        environment = {variable["name"]: str(variable.get("value", "")) for variable in variables}
        created = session.call(
            lambda api: api.exec_create(
                name, check_command_argv(command), stdout=False, stderr=False, environment=environment
            ),
            0,
        )
        session.call(lambda api: api.exec_start(created["Id"], detach=True), 0)
        return created["Id"]

    @staticmethod
    def _kill_exec(session: DockerSession, exec_id: str) -> None:
        """Kill a check command that still runs. dockerd cannot stop an exec, so its process is killed by the
        host pid dockerd reports, looked up just before (one try: dockerd may be the reason it hangs)."""
        state = session.call(lambda api: api.exec_inspect(exec_id), 0)
        if state.get("Running") and state.get("Pid"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(state["Pid"]), signal.SIGKILL)

    @staticmethod
    def _wait(session: DockerSession, name: str) -> dict | None:
        """The container's final State, waiting through dockerd restarts; None when it is gone."""
        while True:
            try:
                session.call(lambda api: api.wait(name))
                state = session.call(lambda api: api.inspect_container(name)["State"])
            except docker.errors.NotFound:
                return None
            if not state.get("Running"):
                return state

    @staticmethod
    def _remove(session: DockerSession, name: str) -> None:
        try:
            session.call(lambda api: api.remove_container(name, v=True, force=True), LAUNCH_RETRY_SECONDS)
        except (docker.errors.APIError, DockerUnavailable) as error:
            if not isinstance(error, docker.errors.NotFound):
                logger.warning("Could not remove container %s: %s", name, _error_text(error))
