"""What HAProxy should serve, computed from Marathon's apps (with their tasks): backends and their servers.

A task takes traffic only when it is RUNNING, when every health check of its app reports it alive (apps
without health checks: RUNNING is enough), and when the LB has not seen it leave (`leaving`: a TASK_KILLING or
terminal status update seen on the event stream, which can arrive before the next full sync says so).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from mesolite.lb.labels import ServiceSettings, is_exposed, service_settings


@dataclass(frozen=True, order=True)
class Server:
    """One task's endpoint for one service port."""

    address: str
    port: int
    task_id: str = field(compare=False)


@dataclass(frozen=True)
class Backend:
    settings: ServiceSettings
    servers: tuple[Server, ...]

    @property
    def name(self) -> str:
        return self.settings.backend


@dataclass(frozen=True)
class DesiredState:
    backends: tuple[Backend, ...]
    # Why some apps or ports are not served (bad labels, port conflicts): logged when they change.
    problems: tuple[str, ...] = ()

    def by_name(self) -> dict[str, Backend]:
        return {backend.name: backend for backend in self.backends}


@dataclass(frozen=True)
class Exposure:
    """Which apps this LB serves, and on which addresses (the LB's own flags)."""

    groups: frozenset[str]
    expose_ungrouped: bool = False
    strict_mode: bool = False
    bind_address: str = "*"
    reserved_ports: frozenset[int] = frozenset()


def takes_traffic(task: dict[str, Any], app: dict[str, Any], leaving: Collection[str]) -> bool:
    if task.get("id") in leaving:
        return False
    if task.get("state", "TASK_RUNNING") != "TASK_RUNNING":
        return False
    checks = app.get("healthChecks") or []
    if not checks:
        return True
    results = task.get("healthCheckResults") or []
    return len(results) >= len(checks) and all(result.get("alive") is True for result in results)


def task_hosts(apps: Iterable[dict[str, Any]]) -> set[str]:
    return {str(task.get("host")) for app in apps for task in app.get("tasks") or [] if task.get("host")}


def desired_state(
    apps: Iterable[dict[str, Any]],
    exposure: Exposure,
    leaving: Collection[str],
    resolve: Callable[[str], str | None],
) -> DesiredState:
    """The backends of every exposed service port; `resolve` turns an agent's host name into an address."""
    backends: list[Backend] = []
    problems: list[str] = []
    frontends: dict[tuple[str, int], str] = {}
    for app in sorted(apps, key=lambda app: str(app.get("id", ""))):
        if not is_exposed(app, set(exposure.groups), exposure.expose_ungrouped):
            continue
        settings, errors = service_settings(app, exposure.bind_address, exposure.strict_mode)
        problems += [str(error) for error in errors]
        for service in settings:
            conflict = _port_conflict(service, frontends, exposure.reserved_ports)
            if conflict:
                problems.append(conflict)
                continue
            frontends[(service.bind_address, service.service_port)] = service.app_id
            backends.append(Backend(service, tuple(sorted(_servers(app, service, leaving, resolve, problems)))))
    return DesiredState(tuple(backends), tuple(problems))


def _port_conflict(service: ServiceSettings, frontends: dict[tuple[str, int], str], reserved: Collection[int]) -> str:
    port = service.service_port
    if port in reserved:
        return f"app {service.app_id}: port {port} is the LB's own (HTTP, HTTPS or stats); service port not exposed"
    for (address, taken), owner in frontends.items():
        if taken == port and (address == service.bind_address or "*" in (address, service.bind_address)):
            return f"app {service.app_id}: port {port} is already served for {owner}; service port not exposed"
    return ""


def _servers(
    app: dict[str, Any],
    service: ServiceSettings,
    leaving: Collection[str],
    resolve: Callable[[str], str | None],
    problems: list[str],
) -> Iterable[Server]:
    for task in app.get("tasks") or []:
        if not takes_traffic(task, app, leaving):
            continue
        ports = task.get("ports") or []
        if service.index >= len(ports):
            continue
        host = str(task.get("host") or "")
        address = resolve(host) if host else None
        if address is None:
            problems.append(f"task {task.get('id')}: cannot resolve its host {host!r}; not served")
            continue
        yield Server(address, int(ports[service.index]), str(task.get("id")))
