"""Ports: service ports from the local range (stable across updates), host ports from offers, task environment."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from mesolite.marathon.app_definition import network_of

DEFAULT_SERVICE_PORT_RANGE = (10000, 20000)


class NoServicePortLeft(Exception):
    """The local port range is used up."""


def _port_entries(app: Mapping[str, Any]) -> tuple[list[dict], str]:
    """The app's port list and the name of its service-port field (portMappings or portDefinitions)."""
    if network_of(app) in ("BRIDGE", "USER"):
        return list((app.get("container") or {}).get("portMappings") or []), "servicePort"
    return list(app.get("portDefinitions") or []), "port"


def service_ports_of(app: Mapping[str, Any]) -> list[int]:
    entries, key = _port_entries(app)
    return [int(entry.get(key) or 0) for entry in entries]


class ServicePortsInUse:
    """The service ports of every app, kept up to date as apps change: assigning an app its ports then costs
    what it needs, not a pass over every app (which made creating 10,000 apps quadratic)."""

    def __init__(self) -> None:
        self._apps_of_port: dict[int, set[str]] = {}
        self._ports_of_app: dict[str, list[int]] = {}

    def set_app(self, app_id: str, app: Mapping[str, Any] | None) -> None:
        """`app_id` now has definition `app` (None: it is gone)."""
        for port in self._ports_of_app.pop(app_id, []):
            users = self._apps_of_port.get(port)
            if users is not None:
                users.discard(app_id)
                if not users:
                    del self._apps_of_port[port]
        ports = [port for port in service_ports_of(app) if port] if app is not None else []
        if ports:
            self._ports_of_app[app_id] = ports
            for port in ports:
                self._apps_of_port.setdefault(port, set()).add(app_id)

    def except_app(self, app_id: str | None) -> AbstractSet[int]:
        """The ports other apps use (a view)."""
        return _PortsOfOthers(self._apps_of_port, app_id)


class _PortsOfOthers(AbstractSet[int]):
    def __init__(self, apps_of_port: dict[int, set[str]], app_id: str | None) -> None:
        self._apps_of_port = apps_of_port
        self._app_id = app_id

    def __contains__(self, port: object) -> bool:
        users = self._apps_of_port.get(port)  # type: ignore[call-overload]
        return bool(users) and (len(users) > 1 or self._app_id not in users)

    def __iter__(self) -> Iterator[int]:
        return (port for port in self._apps_of_port if port in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def assign_service_ports(
    app: dict[str, Any],
    used_elsewhere: Iterable[int],
    previous: Mapping[str, Any] | None = None,
    port_range: tuple[int, int] = DEFAULT_SERVICE_PORT_RANGE,
) -> dict[str, Any]:
    """Replace every service port 0 of `app` (in place): the previous version's port at the same position
    (or with the same name) when it had one, else the lowest port of `port_range` no other app uses."""
    entries, key = _port_entries(app)
    old_entries, old_key = _port_entries(previous) if previous else ([], key)
    old_by_name = {e.get("name"): e.get(old_key) for e in old_entries if e.get("name")}
    used = used_elsewhere if isinstance(used_elsewhere, AbstractSet) else set(used_elsewhere)
    taken = _Taken(used, {int(e.get(key) or 0) for e in entries})
    for index, entry in enumerate(entries):
        if entry.get(key):
            continue
        reused = old_by_name.get(entry.get("name")) if entry.get("name") else None
        if reused is None and index < len(old_entries):
            reused = old_entries[index].get(old_key)
        if reused and reused not in taken:
            entry[key] = reused
        else:
            entry[key] = _lowest_free(taken, port_range)
        taken.add(entry[key])
    return app


class _Taken:
    """The ports used elsewhere (a set or a view, not copied) plus those taken here."""

    def __init__(self, elsewhere: AbstractSet[int], here: set[int]) -> None:
        self.elsewhere = elsewhere
        self.here = here

    def __contains__(self, port: int) -> bool:
        return port in self.here or port in self.elsewhere

    def add(self, port: int) -> None:
        self.here.add(port)


def _lowest_free(taken: _Taken, port_range: tuple[int, int]) -> int:
    for port in range(port_range[0], port_range[1] + 1):
        if port not in taken:
            return port
    raise NoServicePortLeft(f"no free service port left in {port_range[0]}-{port_range[1]}")


def requested_host_ports(app: Mapping[str, Any]) -> list[int]:
    """The host ports a task needs, in order: 0 means "any port from the offer"."""
    if network_of(app) in ("BRIDGE", "USER"):
        mappings = (app.get("container") or {}).get("portMappings") or []
        return [int(m["hostPort"]) for m in mappings if m.get("hostPort") is not None]
    definitions = app.get("portDefinitions") or []
    if app.get("requirePorts"):
        return [int(d["port"]) for d in definitions]
    return [0 for _ in definitions]


def pick_host_ports(
    requested: Sequence[int], available: Sequence[tuple[int, int]], chooser: random.Random | None = None
) -> list[int] | None:
    """Concrete host ports for `requested` from the offered `available` ranges, or None if they do not fit.

    Fixed ports must lie in a range; each 0 gets a distinct random free port (random, as Marathon does, so
    that a port just released by a dying task is not handed straight to its replacement)."""
    chooser = chooser or random.Random()
    fixed = [port for port in requested if port]
    if any(not _in_ranges(port, available) for port in fixed) or len(set(fixed)) != len(fixed):
        return None
    taken = set(fixed)
    free_count = sum(end - begin + 1 for begin, end in available) - len(taken)
    wanted = sum(1 for port in requested if not port)
    if wanted > free_count:
        return None
    result = []
    for port in requested:
        if port:
            result.append(port)
            continue
        choice = _random_free_port(available, taken, chooser)
        taken.add(choice)
        result.append(choice)
    return result


def _in_ranges(port: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(begin <= port <= end for begin, end in ranges)


def _random_free_port(ranges: Sequence[tuple[int, int]], taken: set[int], chooser: random.Random) -> int:
    total = sum(end - begin + 1 for begin, end in ranges)
    for _attempt in range(32):
        index = chooser.randrange(total)
        for begin, end in ranges:
            size = end - begin + 1
            if index < size:
                if begin + index not in taken:
                    return begin + index
                break
            index -= size
    for begin, end in ranges:  # crowded ranges: walk them
        for port in range(begin, end + 1):
            if port not in taken:
                return port
    raise ValueError("no free port in the offered ranges")


def task_environment(app: Mapping[str, Any], task_id: str, host: str, host_ports: Sequence[int]) -> dict[str, str]:
    """The variables Marathon gives every task (PORT0.., PORTS, PORT_<NAME>, HOST, MESOS_TASK_ID, MARATHON_*)."""
    environment: dict[str, str] = {}
    bridged = network_of(app) in ("BRIDGE", "USER")
    entries, _key = _port_entries(app)
    if bridged:
        entries = [e for e in entries if e.get("hostPort") is not None]
    declared = [int(e.get("containerPort") or 0) if bridged else 0 for e in entries]
    effective = [d or h for d, h in zip(declared, host_ports, strict=False)]
    for index, port in enumerate(effective):
        environment[f"PORT{index}"] = str(port)
        if declared[index]:
            environment[f"PORT_{declared[index]}"] = str(host_ports[index])
        name = entries[index].get("name") if index < len(entries) else None
        if name:
            environment[f"PORT_{name.upper().replace('-', '_')}"] = str(port)
    if effective:
        environment["PORT"] = str(effective[0])
        environment["PORTS"] = ",".join(str(port) for port in effective)
    environment.update(
        {
            "HOST": host,
            "MESOS_TASK_ID": task_id,
            "MARATHON_APP_ID": app["id"],
            "MARATHON_APP_VERSION": app.get("version") or "",
            "MARATHON_APP_DOCKER_IMAGE": ((app.get("container") or {}).get("docker") or {}).get("image") or "",
            "MARATHON_APP_RESOURCE_CPUS": str(app.get("cpus")),
            "MARATHON_APP_RESOURCE_MEM": str(app.get("mem")),
            "MARATHON_APP_RESOURCE_DISK": str(app.get("disk")),
            "MARATHON_APP_RESOURCE_GPUS": str(app.get("gpus", 0)),
            "MARATHON_APP_LABELS": " ".join(sorted(app.get("labels") or {})),
        }
    )
    for label, value in (app.get("labels") or {}).items():
        variable = "MARATHON_APP_LABEL_" + "".join(c if c.isalnum() else "_" for c in label).upper()
        if len(value) <= 512:
            environment[variable] = value
    if not environment["MARATHON_APP_DOCKER_IMAGE"]:
        del environment["MARATHON_APP_DOCKER_IMAGE"]
    # The app's own env wins over nothing but is overridden by nothing: Marathon applies it last.
    environment.update({k: v for k, v in (app.get("env") or {}).items() if isinstance(v, str)})
    return environment
