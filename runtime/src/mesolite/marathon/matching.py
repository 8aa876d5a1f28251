"""Offer matching: does an offer fit one more task of an app, and the v1 TaskInfo that launches it.

Pure logic over v1 JSON: the scheduler hands in an offer (with what earlier matches in the same round
already took), the app and where its tasks run; the answer is a `Launch` or a `Mismatch` whose label
feeds the "why it waits" summary.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesolite.marathon.app_definition import MARATHON_SIDE_PROTOCOLS, network_of
from mesolite.marathon.constraints import Constraint, Placement, first_violated, parse_constraint, placement_of_offer
from mesolite.marathon.paths import task_id_prefix
from mesolite.marathon.ports import pick_host_ports, requested_host_ports, service_ports_of, task_environment

SCALARS = ("cpus", "mem", "disk", "gpus")


@dataclass
class Mismatch:
    label: str  # "insufficient cpus", "constraint hostname:UNIQUE", ...
    need: float | None = None
    available: float | None = None


@dataclass
class Launch:
    task_id: str
    task_info: dict[str, Any]
    host_ports: list[int]
    service_ports: list[int]
    placement: Placement


@dataclass
class OfferResources:
    """What is left of one offer's v1 resources while tasks are carved out of it."""

    offer: Mapping[str, Any]
    resources: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, offer: Mapping[str, Any]) -> OfferResources:
        return cls(offer, copy.deepcopy(list(offer.get("resources") or [])))

    def usable(self, roles: Sequence[str] | None) -> list[dict[str, Any]]:
        return [r for r in self.resources if roles is None or _role(r) in roles]

    def scalar(self, name: str, roles: Sequence[str] | None) -> float:
        return round(
            sum(r["scalar"]["value"] for r in self.usable(roles) if r.get("name") == name and "scalar" in r), 3
        )

    def port_ranges(self, roles: Sequence[str] | None) -> list[tuple[int, int]]:
        ranges = []
        for resource in self.usable(roles):
            if resource.get("name") == "ports" and "ranges" in resource:
                ranges += [(int(r["begin"]), int(r["end"])) for r in resource["ranges"].get("range", [])]
        return sorted(ranges)

    def take_scalar(self, name: str, amount: float, roles: Sequence[str] | None) -> list[dict[str, Any]]:
        taken = []
        for resource in self.usable(roles):
            if amount <= 1e-9:
                break
            if resource.get("name") != name or "scalar" not in resource:
                continue
            portion = min(amount, resource["scalar"]["value"])
            if portion <= 0:
                continue
            resource["scalar"]["value"] = round(resource["scalar"]["value"] - portion, 3)
            amount = round(amount - portion, 3)
            taken.append({**_resource_head(resource), "scalar": {"value": round(portion, 3)}})
        return taken

    def take_ports(self, ports: Sequence[int], roles: Sequence[str] | None) -> list[dict[str, Any]]:
        taken = []
        for port in ports:
            for resource in self.usable(roles):
                if resource.get("name") != "ports" or "ranges" not in resource:
                    continue
                ranges = resource["ranges"].get("range", [])
                for index, item in enumerate(ranges):
                    if item["begin"] <= port <= item["end"]:
                        pieces = [(item["begin"], port - 1), (port + 1, item["end"])]
                        ranges[index : index + 1] = [{"begin": b, "end": e} for b, e in pieces if b <= e]
                        taken.append({**_resource_head(resource), "ranges": {"range": [{"begin": port, "end": port}]}})
                        break
                else:
                    continue
                break
        return taken


def _role(resource: Mapping[str, Any]) -> str:
    reservations = resource.get("reservations") or []
    if reservations:
        return reservations[-1].get("role", "*")
    return resource.get("role") or "*"


def _resource_head(resource: Mapping[str, Any]) -> dict[str, Any]:
    head = {key: copy.deepcopy(value) for key, value in resource.items() if key not in ("scalar", "ranges", "set")}
    return head


def new_task_id(app_id: str) -> str:
    return f"{task_id_prefix(app_id)}.{uuid.uuid4()}"


def app_constraints(app: Mapping[str, Any]) -> list[Constraint]:
    constraints = []
    for raw in app.get("constraints") or []:
        constraint, _problem = parse_constraint(raw)
        if constraint is not None:
            constraints.append(constraint)
    return constraints


def match(
    app: Mapping[str, Any],
    offer: OfferResources,
    placed: Sequence[Placement],
    chooser: random.Random | None = None,
) -> Launch | Mismatch:
    """One task of `app` out of what is left of `offer`, given the app's tasks at `placed`."""
    roles = app.get("acceptedResourceRoles")
    if roles is not None and "*" not in roles:
        roles = list(roles)
    elif roles is not None:
        roles = None
    # Marathon's order: role, constraints, then each resource.
    if roles is not None and not offer.usable(roles):
        return Mismatch(f"role not accepted (acceptedResourceRoles {','.join(roles)})")
    placement = placement_of_offer(offer.offer)
    violated = first_violated(app_constraints(app), placement, placed)
    if violated is not None:
        return Mismatch(f"constraint {violated.describe()}")
    for name in SCALARS:
        need = float(app.get(name) or 0)
        if need > 0:
            have = offer.scalar(name, roles)
            if have + 1e-9 < need:
                return Mismatch(f"insufficient {name}", need, have)
    requested = requested_host_ports(app)
    host_ports: list[int] = []
    if requested:
        picked = pick_host_ports(requested, offer.port_ranges(roles), chooser)
        if picked is None:
            fixed = [p for p in requested if p]
            label = f"unavailable ports {','.join(map(str, fixed))}" if fixed else "insufficient ports"
            return Mismatch(label, float(len(requested)), float(_count(offer.port_ranges(roles))))
        host_ports = picked
    task_id = new_task_id(app["id"])
    resources = []
    for name in SCALARS:
        need = float(app.get(name) or 0)
        if need > 0:
            resources += offer.take_scalar(name, need, roles)
    resources += offer.take_ports(host_ports, roles)
    task_info = build_task_info(app, task_id, offer.offer, resources, host_ports)
    return Launch(task_id, task_info, host_ports, service_ports_of(app), placement)


def _count(ranges: Sequence[tuple[int, int]]) -> int:
    return sum(end - begin + 1 for begin, end in ranges)


def build_task_info(
    app: Mapping[str, Any], task_id: str, offer: Mapping[str, Any], resources: list[dict], host_ports: list[int]
) -> dict[str, Any]:
    """The v1 JSON TaskInfo for one task of `app` on the offer's agent."""
    host = offer.get("hostname", "")
    environment = task_environment(app, task_id, host, host_ports)
    command: dict[str, Any] = {
        "environment": {"variables": [{"name": k, "value": v} for k, v in sorted(environment.items())]},
        "uris": [_uri(entry) for entry in _fetch_entries(app)],
    }
    container = app.get("container")
    is_docker = bool(container and container.get("type") == "DOCKER")
    if app.get("cmd") is not None:
        command |= {"shell": True, "value": app["cmd"]}
    elif app.get("args") is not None:
        arguments = list(app["args"])
        command |= {"shell": False, "arguments": arguments}
        if not is_docker and arguments:
            command["value"] = arguments[0]
    else:
        command["shell"] = False  # a Docker image's own entrypoint
    if app.get("user"):
        command["user"] = app["user"]
    task_info: dict[str, Any] = {
        "name": app["id"].strip("/").replace("/", "."),
        "task_id": {"value": task_id},
        "agent_id": copy.deepcopy(offer["agent_id"]),
        "resources": resources,
        "command": command,
        "labels": {"labels": [{"key": k, "value": v} for k, v in sorted((app.get("labels") or {}).items())]},
        "discovery": _discovery(app, host_ports),
    }
    if container:
        task_info["container"] = _container_info(app, container, host_ports)
    grace = app.get("taskKillGracePeriodSeconds")
    if grace:
        task_info["kill_policy"] = {"grace_period": {"nanoseconds": int(float(grace) * 1e9)}}
    mesos_check = _mesos_health_check(app, host_ports)
    if mesos_check:
        task_info["health_check"] = mesos_check
    return task_info


def _fetch_entries(app: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = list(app.get("fetch") or [])
    known = {entry["uri"] for entry in entries}
    for uri in app.get("uris") or []:
        if uri not in known:
            archive = uri.endswith((".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip"))
            entries.append({"uri": uri, "extract": archive, "executable": False, "cache": False})
    return entries


def _uri(entry: Mapping[str, Any]) -> dict[str, Any]:
    uri = {
        "value": entry["uri"],
        "extract": bool(entry.get("extract", True)),
        "executable": bool(entry.get("executable", False)),
        "cache": bool(entry.get("cache", False)),
    }
    if entry.get("outputFile"):
        uri["output_file"] = entry["outputFile"]
    return uri


def _container_info(app: Mapping[str, Any], container: Mapping[str, Any], host_ports: list[int]) -> dict[str, Any]:
    volumes = [
        {
            "container_path": v.get("containerPath"),
            **({"host_path": v["hostPath"]} if v.get("hostPath") else {}),
            "mode": v.get("mode", "RW"),
        }
        for v in container.get("volumes") or []
    ]
    docker = container.get("docker") or {}
    if container.get("type") != "DOCKER":
        info: dict[str, Any] = {"type": "MESOS", "volumes": volumes}
        if docker.get("image"):
            info["mesos"] = {"image": {"type": "DOCKER", "docker": {"name": docker["image"]}}}
        return info
    network = network_of(app)
    mappings = [m for m in container.get("portMappings") or [] if m.get("hostPort") is not None]
    port_mappings = []
    for mapping, host_port in zip(mappings, host_ports, strict=False):
        for protocol in str(mapping.get("protocol") or "tcp").split(","):
            port_mappings.append(
                {
                    "host_port": host_port,
                    "container_port": mapping.get("containerPort") or host_port,
                    "protocol": protocol,
                }
            )
    docker_info: dict[str, Any] = {
        "image": docker.get("image"),
        "network": network,
        "privileged": bool(docker.get("privileged")),
        "force_pull_image": bool(docker.get("forcePullImage")),
        "parameters": [{"key": p["key"], "value": p.get("value", "")} for p in docker.get("parameters") or []],
    }
    if port_mappings and network in ("BRIDGE", "USER"):
        docker_info["port_mappings"] = port_mappings
    info = {"type": "DOCKER", "docker": docker_info, "volumes": volumes}
    if network == "USER":
        name = (app.get("ipAddress") or {}).get("networkName") or next(
            (n.get("name") for n in app.get("networks") or [] if n.get("name")), None
        )
        if name:
            info["network_infos"] = [{"name": name}]
    return info


def _discovery(app: Mapping[str, Any], host_ports: list[int]) -> dict[str, Any]:
    entries = (
        [m for m in (app.get("container") or {}).get("portMappings") or [] if m.get("hostPort") is not None]
        if network_of(app) in ("BRIDGE", "USER")
        else list(app.get("portDefinitions") or [])
    )
    ports = []
    for entry, port in zip(entries, host_ports, strict=False):
        item: dict[str, Any] = {"number": port, "protocol": str(entry.get("protocol") or "tcp").split(",")[0]}
        if entry.get("name"):
            item["name"] = entry["name"]
        ports.append(item)
    return {"visibility": "FRAMEWORK", "name": app["id"].strip("/").replace("/", "."), "ports": {"ports": ports}}


def _mesos_check_port(app: Mapping[str, Any], host_ports: list[int], port_index: int) -> int:
    """The port a Mesos-run check of port `port_index` probes. Mesos probes from inside the task's network
    namespace, so for BRIDGE/USER networking that is the container port (as Marathon does), else the host port."""
    if network_of(app) not in ("BRIDGE", "USER"):
        return host_ports[port_index] if port_index < len(host_ports) else 0
    unassigned_host_ports = iter(host_ports)
    for index, mapping in enumerate((app.get("container") or {}).get("portMappings") or []):
        host_port = next(unassigned_host_ports, 0) if mapping.get("hostPort") is not None else 0
        if index == port_index:
            return mapping.get("containerPort") or host_port  # containerPort 0: the same as the host port
    return 0


def _mesos_health_check(app: Mapping[str, Any], host_ports: list[int]) -> dict[str, Any] | None:
    """The first health check that Mesos runs (COMMAND, MESOS_*), as a v1 HealthCheck; Mesos allows one."""
    for check in app.get("healthChecks") or []:
        protocol = check["protocol"]
        if protocol in MARATHON_SIDE_PROTOCOLS:
            continue
        common = {
            "delay_seconds": check.get("delaySeconds", 15),
            "interval_seconds": check["intervalSeconds"],
            "timeout_seconds": check["timeoutSeconds"],
            "consecutive_failures": check["maxConsecutiveFailures"],
            "grace_period_seconds": check["gracePeriodSeconds"],
        }
        if protocol == "COMMAND":
            return {**common, "type": "COMMAND", "command": {"shell": True, "value": check["command"]["value"]}}
        port = check.get("port") or _mesos_check_port(app, host_ports, check.get("portIndex", 0))
        if protocol == "MESOS_TCP":
            return {**common, "type": "TCP", "tcp": {"port": port}}
        scheme = "https" if protocol == "MESOS_HTTPS" else "http"
        return {**common, "type": "HTTP", "http": {"port": port, "path": check.get("path", "/"), "scheme": scheme}}
    return None
