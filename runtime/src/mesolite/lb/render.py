"""HAProxy's configuration text, rendered from a `Layout` (what needs a reload) and the servers in its slots.

The layout is every frontend and backend with its settings and its number of server *slots*; servers come and
go in those slots through the runtime API (`runtime_api.py`) without a reload. Two renders need a reload
between them only when their layouts differ, so the service compares layouts, never texts. A backend has
`max(--server_slots, the next power of two >= its servers)` slots: scaling within them never reloads, and
growing past them reloads once per doubling.

Names follow marathon-lb's: frontend and backend `<app id with _>_<service port>` (`nginx_10000`), the HTTP
vhost frontend `marathon_http_in`, the HTTPS one `marathon_https_in`, and slot servers `slot1..slotN`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesolite.lb.labels import ServiceSettings
from mesolite.lb.model import Backend, Server

HEALTH_CHECK_URI = "/_haproxy_health_check"
STATS_URI = "/haproxy?stats"
METRICS_PATH = "/metrics"
STICKY_COOKIE = "mesosphere_server_id"
# Where an empty slot points while it is in maintenance: never contacted, but HAProxy wants an address.
EMPTY_SLOT_ADDRESS = "127.0.0.1:1"


@dataclass(frozen=True)
class GlobalSettings:
    """The LB's own flags that shape the configuration."""

    stats_socket: str
    bind_address: str = "*"
    http_port: int = 80
    https_port: int = 443
    stats_port: int = 9090
    bind_http_https: bool = True
    ssl_certificates: tuple[str, ...] = ()
    # HAProxy needs about two file descriptors per connection and refuses to start beyond the hard limit.
    maxconn: int = 4096
    # How long an old worker may keep serving in-flight requests after a reload.
    hard_stop_after: float = 60.0


@dataclass(frozen=True)
class Layout:
    """Everything in the configuration except which server sits in which slot: a change here needs a reload."""

    settings: GlobalSettings
    services: tuple[tuple[ServiceSettings, int], ...]  # (settings, slot count), in backend-name order

    def slot_count(self, backend: str) -> int:
        return next((count for service, count in self.services if service.backend == backend), 0)

    @property
    def backend_names(self) -> set[str]:
        return {service.backend for service, _ in self.services}


def slot_count(servers: int, minimum: int) -> int:
    count = max(1, minimum)
    while count < servers:
        count *= 2
    return count


def layout_for(
    backends: tuple[Backend, ...], settings: GlobalSettings, minimum_slots: int, current: Layout | None
) -> Layout:
    """The layout serving `backends`; a backend keeps its current slot count while its servers fit in it, so that
    scaling down does not reload either."""
    services = []
    for backend in sorted(backends, key=lambda backend: backend.name):
        needed = slot_count(len(backend.servers), minimum_slots)
        kept = current.slot_count(backend.name) if current is not None else 0
        services.append((backend.settings, kept if kept >= needed else needed))
    return Layout(settings, tuple(services))


def _bind(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address and not address.startswith("[") else f"{address}:{port}"


def _head(settings: GlobalSettings) -> list[str]:
    return [
        "# Rendered by `mesolite lb` from Marathon's apps; edits are overwritten.",
        "global",
        f"  maxconn {settings.maxconn}",
        # expose-fd listeners: a new worker takes over the listening sockets of the old one (no refused connects).
        f"  stats socket {settings.stats_socket} mode 600 level admin expose-fd listeners",
        "  stats timeout 30s",
        f"  hard-stop-after {max(1, int(settings.hard_stop_after))}s",
        "",
        "defaults",
        "  mode tcp",
        "  retries 3",
        # Every retry goes to another server: a task may stop listening (or hang up on a kept-alive
        # connection) before the LB has heard that it is being killed, and its request must not fail with it.
        "  option redispatch 1",
        "  option dontlognull",
        "  timeout connect 3s",
        "  timeout client 30s",
        "  timeout server 30s",
        "  timeout tunnel 3600s",
        "  timeout http-keep-alive 1s",
        "  timeout http-request 15s",
        "  timeout queue 30s",
        "",
        "frontend marathon_lb_stats",
        f"  bind {_bind(settings.bind_address, settings.stats_port)}",
        "  mode http",
        f"  monitor-uri {HEALTH_CHECK_URI}",
        f"  http-request use-service prometheus-exporter if {{ path {METRICS_PATH} }}",
        "  stats enable",
        f"  stats uri {STATS_URI}",
        "  stats refresh 10s",
    ]


def _routes(services: list[ServiceSettings]) -> list[ServiceSettings]:
    """Vhost and path routes, heaviest `HAPROXY_{n}_BACKEND_WEIGHT` first (marathon-lb's order)."""
    routed = [service for service in services if service.mode == "http" and (service.vhosts or service.path)]
    return sorted(routed, key=lambda service: (-service.backend_weight, service.backend))


def _route_conditions(service: ServiceSettings, host_acl: str) -> str:
    conditions = []
    if service.vhosts:
        conditions.append(f"{host_acl}_{service.backend}")
    if service.path:
        conditions.append(f"path_{service.backend}")
    return " ".join(conditions)


def _http_frontend(settings: GlobalSettings, routes: list[ServiceSettings]) -> list[str]:
    lines = [
        "",
        "frontend marathon_http_in",
        f"  bind {_bind(settings.bind_address, settings.http_port)}",
        "  mode http",
    ]
    for service in routes:
        if service.vhosts:
            lines.append(f"  acl host_{service.backend} req.hdr(host),field(1,:) -i {' '.join(service.vhosts)}")
        if service.path:
            lines.append(f"  acl path_{service.backend} path_beg {service.path}")
    for service in routes:
        if service.redirect_to_https:
            lines.append(f"  redirect scheme https code 301 if !{{ ssl_fc }} {_route_conditions(service, 'host')}")
    for service in routes:
        lines.append(f"  use_backend {service.backend} if {_route_conditions(service, 'host')}")
    return lines


def _https_frontend(settings: GlobalSettings, routes: list[ServiceSettings]) -> list[str]:
    certificates = list(settings.ssl_certificates)
    for service in routes:
        if service.ssl_certificate and service.ssl_certificate not in certificates:
            certificates.append(service.ssl_certificate)
    if not certificates:
        return []
    crt = " ".join(f"crt {certificate}" for certificate in certificates)
    lines = [
        "",
        "frontend marathon_https_in",
        f"  bind {_bind(settings.bind_address, settings.https_port)} ssl {crt}",
        "  mode http",
    ]
    for service in routes:
        if service.vhosts:
            lines.append(f"  acl sni_{service.backend} ssl_fc_sni -i {' '.join(service.vhosts)}")
        if service.path:
            lines.append(f"  acl path_{service.backend} path_beg {service.path}")
    for service in routes:
        lines.append(f"  use_backend {service.backend} if {_route_conditions(service, 'sni')}")
    return lines


def _service(service: ServiceSettings, slots: list[Server | None], ready: set[str]) -> list[str]:
    lines = [
        "",
        f"frontend {service.backend}",
        f"  bind {_bind(service.bind_address, service.service_port)}",
        f"  mode {service.mode}",
        f"  use_backend {service.backend}",
        "",
        f"backend {service.backend}",
        f"  balance {service.balance}",
        f"  mode {service.mode}",
    ]
    sticky = service.sticky and service.mode == "http"
    # Enough retries to try every server of the backend once (each retry is redispatched to the next one): a
    # scale-down stops several tasks at once, and a request must find the one that still serves.
    lines.append(f"  retries {max(3, len(slots))}")
    if service.mode == "http":
        lines += [
            # A request a dying task hung up on without answering is sent again (to another server); not a
            # POST, which the task may have acted on before it died.
            "  retry-on conn-failure empty-response",
            "  http-request disable-l7-retry if METH_POST",
            "  option forwardfor",
            "  http-request set-header X-Forwarded-Port %[dst_port]",
            "  http-request add-header X-Forwarded-Proto https if { ssl_fc }",
        ]
    if sticky:
        lines.append(f"  cookie {STICKY_COOKIE} insert indirect nocache")
    for number, server in enumerate(slots, start=1):
        name = f"slot{number}"
        address = f"{server.address}:{server.port}" if server is not None else EMPTY_SLOT_ADDRESS
        options = f" cookie {name}" if sticky else ""
        if server is None or server.task_id not in ready:
            options += " disabled"
        lines.append(f"  server {name} {address}{options}")
    return lines


def render(layout: Layout, slots: dict[str, list[Server | None]], ready: set[str]) -> str:
    """The configuration of `layout` with `slots[backend]` in its server slots; servers of tasks not in `ready`
    (draining, or empty slots) start in maintenance."""
    settings = layout.settings
    services = [service for service, _ in layout.services]
    lines = _head(settings)
    if settings.bind_http_https:
        routes = _routes(services)
        lines += _http_frontend(settings, routes)
        lines += _https_frontend(settings, routes)
    for service, count in layout.services:
        assigned = list(slots.get(service.backend, []))[:count]
        lines += _service(service, assigned + [None] * (count - len(assigned)), ready)
    return "\n".join(lines) + "\n"
