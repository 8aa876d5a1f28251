"""The `docker run` options a DOCKER task may set in `container.docker.parameters`, and how each lands in the
docker SDK.

Each known option maps to an argument of the docker SDK and knows how to read its value.
An option is usable when it is in DEFAULT_ALLOWED_PARAMETERS or the operator added it with
--docker_allowed_parameters; the rest of the known ones widen what a task can do to the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from docker.types import Ulimit

from mesolite.agent.containerizers.base import AgentOptions


class DockerTaskError(ValueError):
    """A DOCKER TaskInfo that cannot run here; the message names the field and the reason."""


def read_boolean(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("", "true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise DockerTaskError(f"docker parameter '{key}' takes true or false, got '{value}'")


def read_integer(key: str, value: str) -> int:
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
    return Ulimit(name=name, soft=read_integer(key, soft), hard=read_integer(key, hard or soft))


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
