"""From a DOCKER TaskInfo to a container configuration: the arguments of the docker SDK's `create_container`
and `create_host_config`, or a `DockerTaskError` naming the field that cannot run here."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.types import LogConfig

from mesolite.agent.containerizers.base import AgentOptions
from mesolite.agent.containerizers.docker.parameters import (
    PARAMETERS,
    RESERVED_PARAMETERS,
    DockerTaskError,
    allowed_parameters,
    normalize_parameter_key,
    read_boolean,
    read_integer,
)
from mesolite.resources import ResourceError, Resources, format_ranges

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

NETWORKS = ("HOST", "BRIDGE", "NONE", "USER")
PROTOCOLS = ("tcp", "udp")


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
            target[known.argument] = read_boolean(key, value)
        elif known.kind == "int":
            target[known.argument] = read_integer(key, value)
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
