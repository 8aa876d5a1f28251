"""`mesolite lb`: flags, and the loop that keeps HAProxy serving what Marathon runs (systemd unit `marathon-lb`).

Every change is applied the cheapest way that is safe, and logged:

- a task joins or leaves a backend through the runtime API (`runtime_api.py`): a free slot gets the task's
  address and turns `ready`; a leaving task's slot turns `drain` (no new requests, in-flight ones finish), then
  `maint` after `--drain_timeout`, and the slot is free again;
- anything else (an app, a port, a label, more servers than slots) changes the layout: the new configuration is
  validated and HAProxy reloads hitlessly, at most once per `--reload_interval` (changes in between are
  gathered into one reload). A configuration HAProxy rejects is logged with HAProxy's reasons and never
  replaces the running one; servers keep being updated in the running configuration meanwhile.

Flags keep marathon-lb's names (`--marathon`, `--group`, `--haproxy-config`, `--strict-mode`,
`--auth-credentials`, `--marathon-auth-credential-file`, `--marathon-ca-cert`, `--ssl-certs`,
`--dont-bind-http-https`; dashes or underscores), and come as well from `MARATHON_LB_<FLAG>` variables and
files in `/etc/marathon-lb/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesolite.flags import Flag, FlagSet, duration
from mesolite.lb.haproxy import ConfigurationRejected, HAProxy, HAProxyError
from mesolite.lb.marathon_events import MarathonEndpoint, MarathonFollower
from mesolite.lb.model import DesiredState, Exposure, Server, desired_state, task_hosts
from mesolite.lb.render import GlobalSettings, Layout, layout_for, render
from mesolite.lb.runtime_api import RuntimeApi, RuntimeApiError
from mesolite.process import configure_logging, set_on_termination
from mesolite.retry import RetryPolicy
from mesolite.security.credentials import CredentialsError, parse_user_passwords
from mesolite.security.tls import TlsError, TlsSettings

log = logging.getLogger("mesolite.lb")

FLAGS = FlagSet(
    service_name="marathon-lb",
    env_prefix="MARATHON_LB_",
    config_directories=["/etc/marathon-lb"],
    description="A marathon-lb compatible load balancer: follows Marathon's apps and drives HAProxy.",
    flags=[
        Flag("marathon", str, "http://localhost:8080", "Marathon's URLs, comma-separated (tried in turn)"),
        Flag("group", str, "external", "The HAPROXY_GROUP values this LB serves, comma-separated; * serves all"),
        Flag("expose_ungrouped", bool, False, "Also serve apps that carry no HAPROXY_GROUP label"),
        Flag("strict_mode", bool, False, "Serve a service port only when its HAPROXY_{n}_ENABLED is true"),
        Flag("haproxy_config", str, "/etc/haproxy/haproxy.cfg", "The configuration file this LB writes"),
        Flag("haproxy_binary", str, "haproxy", "The HAProxy program"),
        Flag("run_directory", str, "/run/marathon-lb", "Where HAProxy's master and stats sockets live"),
        Flag("haproxy_keep_running", bool, False, "Leave HAProxy serving when this process stops (adopted at start)"),
        Flag("bind_address", str, "*", "The address the frontends listen on (HAPROXY_{n}_BIND_ADDR overrides)"),
        Flag("http_port", int, 80, "The port of the vhost frontend (HAPROXY_{n}_VHOST)"),
        Flag("https_port", int, 443, "The port of the TLS vhost frontend (HAPROXY_{n}_SSL_CERT, --ssl_certs)"),
        Flag("dont_bind_http_https", bool, False, "Do not serve the vhost frontends on the HTTP and HTTPS ports"),
        Flag("ssl_certs", str, "", "PEM files (certificate and key) for the HTTPS port, comma-separated"),
        Flag("stats_port", int, 9090, "The port of the stats page, /metrics and /_haproxy_health_check"),
        Flag("maxconn", int, 4096, "HAProxy's connection limit (it needs about two file descriptors each)"),
        Flag("server_slots", int, 10, "Server slots per backend: scaling within them needs no reload"),
        Flag("reload_interval", duration, 5.0, "The shortest time between two HAProxy reloads"),
        Flag("drain_timeout", duration, 5.0, "How long a leaving task drains before its slot is emptied"),
        Flag("sync_interval", duration, 60.0, "Full sync with Marathon at least this often"),
        Flag("auth_credentials", str, None, "user:password for Marathon's HTTP API"),
        Flag("marathon_auth_credential_file", str, None, "A file holding user:password for Marathon's HTTP API"),
        Flag("marathon_ca_cert", str, None, "The CA certificate Marathon's https certificate is checked against"),
        Flag("logging_level", str, "info", "debug, info, warning or error"),
    ],
)
START_POLICY = RetryPolicy(initial=0.5, maximum=30.0)
HAPROXY_WATCH_INTERVAL = 2.0
# Bits of `show servers state`'s srv_admin_state: forced, inherited, resolution and health-check maintenance;
# forced and inherited drain. Not 0x04 (`disabled` in the configuration): it stays set on a slot the runtime
# API has made `ready` since, which serves.
ADMIN_MAINTENANCE = 0x01 | 0x02 | 0x20 | 0x40
ADMIN_DRAIN = 0x08 | 0x10


@dataclass
class Slot:
    """One server slot of a backend in the running HAProxy."""

    server: Server | None = None
    state: str = "maint"  # ready | drain | maint
    drain_until: float = 0.0


@dataclass(frozen=True)
class LbSettings:
    exposure: Exposure
    globals: GlobalSettings
    server_slots: int = 10
    reload_interval: float = 5.0
    drain_timeout: float = 5.0


@dataclass
class LoadBalancer:
    """Marathon's apps in, HAProxy's configuration and runtime state out."""

    settings: LbSettings
    haproxy: HAProxy
    apps: list[dict[str, Any]] | None = None
    leaving: dict[str, str] = field(default_factory=dict)  # task id -> the status that took it out
    applied: Layout | None = None
    slots: dict[str, list[Slot]] = field(default_factory=dict)
    rejected: Layout | None = None
    runtime_changes: int = 0
    _problems: tuple[str, ...] = ()
    _addresses: dict[str, str | None] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.api = RuntimeApi(self.haproxy.stats_socket)
        self._start_backoff = START_POLICY.backoff()

    # inputs

    async def on_apps(self, apps: list[dict[str, Any]]) -> None:
        self.apps = apps
        listed = {str(task.get("id")) for app in apps for task in app.get("tasks") or []}
        # Forget a leaving task once Marathon no longer lists it (its id is not reused).
        self.leaving = {task: status for task, status in self.leaving.items() if task in listed}
        self._changed.set()

    async def on_leaving(self, task_id: str, status: str) -> None:
        if task_id and task_id not in self.leaving:
            self.leaving[task_id] = status
            self._changed.set()

    # the loop

    async def run(self) -> None:
        failures = START_POLICY.backoff()
        while True:
            try:
                wake_in = await self.apply()
                failures.reset()
            except Exception:
                # A bug in one change must not stop the LB: HAProxy keeps serving, and the next change retries.
                log.exception("applying a change failed")
                wake_in = failures.next_delay()
            if self.applied is not None:
                # Notice an HAProxy that exited even when Marathon is quiet.
                wake_in = HAPROXY_WATCH_INTERVAL if wake_in is None else min(wake_in, HAPROXY_WATCH_INTERVAL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wake_in)
            self._changed.clear()

    async def apply(self) -> float | None:
        """Bring HAProxy to the desired state; how long until it should be called again (None: on change)."""
        if self.apps is None:
            return None  # nothing known yet: HAProxy starts with the first sync, not with an empty guess
        desired = await self._desired()
        layout = layout_for(desired.backends, self.settings.globals, self.settings.server_slots, self.applied)
        if not self.haproxy.running and self.applied is not None:
            status = self.haproxy.process.returncode if self.haproxy.process is not None else "unknown"
            log.error("HAProxy exited (status %s); starting it again", status)
            self.applied = None
        if layout != self.applied and layout != self.rejected:
            wait = self._reload_wait()
            if wait > 0:
                return wait
            try:
                await self._load(layout, desired)
                self._start_backoff.reset()
            except ConfigurationRejected as error:
                self.rejected = layout
                log.error("the new HAProxy configuration was rejected; HAProxy keeps the running one:\n%s", error)
            except (HAProxyError, RuntimeApiError, OSError) as error:
                log.error("HAProxy could not be started or reloaded: %s", error)
                return self._start_backoff.next_delay()
        if self.applied is None:
            return None
        try:
            return await self._update_servers(desired)
        except RuntimeApiError as error:
            log.error("%s; the next change reloads HAProxy with the full configuration", error)
            self.applied = None
            return self.settings.reload_interval

    async def _desired(self) -> DesiredState:
        assert self.apps is not None
        # Names that did not resolve are tried again at every change (None is not cached).
        hosts = task_hosts(self.apps) - {host for host, address in self._addresses.items() if address}
        if hosts:
            loop = asyncio.get_running_loop()
            for host in hosts:
                self._addresses[host] = await loop.run_in_executor(None, _resolve, host)
        desired = desired_state(self.apps, self.settings.exposure, set(self.leaving), self._addresses.get)
        if desired.problems != self._problems:
            for problem in sorted(set(desired.problems) - set(self._problems)):
                log.warning("not served: %s", problem)
            self._problems = desired.problems
        return desired

    def _reload_wait(self) -> float:
        if not self.haproxy.running:
            return 0.0
        return max(0.0, self.haproxy.last_reload + self.settings.reload_interval - time.monotonic())

    async def _load(self, layout: Layout, desired: DesiredState) -> None:
        """Render `layout` with the desired servers, validate it, and start or reload HAProxy with it."""
        slots: dict[str, list[Slot]] = {}
        servers: dict[str, list[Server | None]] = {}
        for backend in desired.backends:
            kept = [slot.server for slot in self.slots.get(backend.name, []) if slot.state == "ready" and slot.server]
            # Servers keep their slot numbers across a reload (stable names in stats and sticky cookies).
            placed = _place(kept, list(backend.servers), layout.slot_count(backend.name))
            servers[backend.name] = placed
            slots[backend.name] = [Slot(server, "ready" if server else "maint") for server in placed]
        ready = {server.task_id for backend in desired.backends for server in backend.servers}
        text = render(layout, servers, ready)
        adopted = not self.haproxy.running and await self.haproxy.adopt()
        if adopted and await self._take_over(layout, text, desired):
            return
        await self.haproxy.install(text)
        before = self.applied
        if adopted:
            await self.haproxy.reload()
            log.info("reloaded HAProxy (reload %d): adopted, with another layout", self.haproxy.reloads)
        elif self.haproxy.running:
            await self.haproxy.reload()
            log.info("reloaded HAProxy (reload %d): %s", self.haproxy.reloads, _layout_change(before, layout))
        else:
            await self.haproxy.start()
        self.applied, self.slots, self.rejected = layout, slots, None
        for backend in desired.backends:
            log.info("backend %s: %d servers %s", backend.name, len(backend.servers), _endpoints(backend.servers))

    async def _take_over(self, layout: Layout, text: str, desired: DesiredState) -> bool:
        """Whether the adopted HAProxy already runs `layout` (a restart of the LB alone changes nothing): then its
        slots are read back from the runtime API, and the servers are brought up to date without a reload."""
        try:
            running = self.haproxy.config_path.read_text()
        except OSError:
            return False
        if _without_servers(running) != _without_servers(text):
            return False
        known = {(server.address, server.port): server for backend in desired.backends for server in backend.servers}
        draining_until = time.monotonic() + self.settings.drain_timeout
        slots: dict[str, list[Slot]] = {}
        try:
            for name in sorted(layout.backend_names):
                states = await self.api.servers_state(name)
                slots[name] = []
                for number in range(1, layout.slot_count(name) + 1):
                    state = states[f"slot{number}"]
                    admin = int(state["srv_admin_state"])
                    address, port = state["srv_addr"], int(state["srv_port"])
                    # A server no task of the desired state owns is drained by `_update_servers` right after.
                    server = known.get((address, port)) or Server(address, port, f"unknown at {address}:{port}")
                    if admin & ADMIN_MAINTENANCE:
                        slots[name].append(Slot())
                    elif admin & ADMIN_DRAIN:
                        slots[name].append(Slot(server, "drain", draining_until))
                    else:
                        slots[name].append(Slot(server, "ready"))
        except (RuntimeApiError, KeyError, ValueError) as error:
            log.info("cannot read the adopted HAProxy's servers (%s): reloading it", error)
            return False
        self.applied, self.slots, self.rejected = layout, slots, None
        log.info("adopted HAProxy's running configuration: same layout, no reload")
        return True

    async def _update_servers(self, desired: DesiredState) -> float | None:
        """Move servers in and out of the running backends' slots; when to come back for draining slots."""
        assert self.applied is not None
        now = time.monotonic()
        wanted = {backend.name: set(backend.servers) for backend in desired.backends}
        next_wake: float | None = None
        for name in sorted(self.applied.backend_names):
            servers = wanted.get(name, set())
            slots = self.slots.setdefault(name, [Slot() for _ in range(self.applied.slot_count(name))])
            for number, slot in enumerate(slots, start=1):
                if slot.server is None:
                    continue
                if slot.state == "ready" and slot.server not in servers:
                    await self.api.set_state(name, f"slot{number}", "drain")
                    slot.state, slot.drain_until = "drain", now + self.settings.drain_timeout
                    self._applied_change(
                        f"{name}/slot{number}: draining task {slot.server.task_id} ({self._why(slot)})"
                    )
                elif slot.state == "drain" and slot.server in servers:
                    await self.api.set_state(name, f"slot{number}", "ready")
                    slot.state = "ready"
                    self._applied_change(f"{name}/slot{number}: task {slot.server.task_id} serves again")
                elif slot.state == "drain" and now >= slot.drain_until:
                    await self.api.set_state(name, f"slot{number}", "maint")
                    self._applied_change(f"{name}/slot{number}: task {slot.server.task_id} removed")
                    slot.server, slot.state = None, "maint"
                if slot.state == "drain":
                    delay = slot.drain_until - now
                    next_wake = delay if next_wake is None else min(next_wake, delay)
            present = {slot.server for slot in slots if slot.server is not None}
            for server in sorted(servers - present):
                free = next((number for number, slot in enumerate(slots, start=1) if slot.server is None), None)
                if free is None:
                    # All slots busy (some still draining): the server joins when a slot frees up, or the
                    # layout grows by a reload when the servers alone outnumber the slots.
                    break
                await self.api.set_address(name, f"slot{free}", server.address, server.port)
                await self.api.set_state(name, f"slot{free}", "ready")
                slots[free - 1] = Slot(server, "ready")
                self._applied_change(
                    f"{name}/slot{free}: task {server.task_id} at {server.address}:{server.port} ready"
                )
        return max(0.0, next_wake) if next_wake is not None else None

    def _why(self, slot: Slot) -> str:
        assert slot.server is not None
        return self.leaving.get(slot.server.task_id, "no longer running and healthy")

    def _applied_change(self, change: str) -> None:
        self.runtime_changes += 1
        log.info("runtime API: %s", change)


def _place(kept: list[Server], servers: list[Server], count: int) -> list[Server | None]:
    """Slots for `servers`: those in `kept` keep their order first, the others follow; None fills the rest."""
    wanted = set(servers)
    placed: list[Server | None] = [server for server in kept if server in wanted]
    placed += [server for server in servers if server not in placed]
    return placed[:count] + [None] * (count - len(placed[:count]))


def _without_servers(text: str) -> str:
    """A configuration without its servers' addresses and states: what stays the same within one layout."""
    return "\n".join(
        " ".join(line.split()[:2]) if line.startswith("  server slot") else line for line in text.splitlines()
    )


def _layout_change(before: Layout | None, after: Layout) -> str:
    if before is None:
        return "first configuration"
    old = {service.backend: (service, count) for service, count in before.services}
    new = {service.backend: (service, count) for service, count in after.services}
    parts = [f"+{name}" for name in sorted(new.keys() - old.keys())]
    parts += [f"-{name}" for name in sorted(old.keys() - new.keys())]
    parts += [f"~{name}" for name in sorted(new.keys() & old.keys()) if new[name] != old[name]]
    if before.settings != after.settings:
        parts.append("global settings")
    return ", ".join(parts) or "no visible change"


def _endpoints(servers: tuple[Server, ...]) -> str:
    return "[" + ", ".join(f"{server.address}:{server.port}" for server in servers) + "]"


def _resolve(host: str) -> str | None:
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError):
        return None


def marathon_endpoint(flags: Any) -> MarathonEndpoint:
    """Where Marathon is, and how to authenticate to it and trust it, from the flags (and LIBPROCESS_SSL_*)."""
    urls = tuple(url.strip() for url in str(flags.marathon).split(",") if url.strip())
    if not urls:
        raise ValueError("--marathon names no URL")
    credentials = None
    text = flags.auth_credentials
    if flags.marathon_auth_credential_file:
        text = Path(flags.marathon_auth_credential_file).read_text().strip()
    if text:
        user, password = next(iter(parse_user_passwords(text, "--auth_credentials").items()))
        credentials = (user, password)
    context = None
    if any(url.startswith("https://") for url in urls):
        tls = TlsSettings.from_environment()
        if flags.marathon_ca_cert:
            tls = dataclasses.replace(tls, ca_file=Path(flags.marathon_ca_cert))
        context = tls.client_context()
    return MarathonEndpoint(urls, credentials, context)


def lb_settings(flags: Any, stats_socket: str) -> LbSettings:
    globals_ = GlobalSettings(
        stats_socket=stats_socket,
        bind_address=flags.bind_address,
        http_port=flags.http_port,
        https_port=flags.https_port,
        stats_port=flags.stats_port,
        bind_http_https=not flags.dont_bind_http_https,
        ssl_certificates=tuple(path.strip() for path in flags.ssl_certs.split(",") if path.strip()),
        maxconn=flags.maxconn,
    )
    reserved = {flags.stats_port} | ({flags.http_port, flags.https_port} if globals_.bind_http_https else set())
    exposure = Exposure(
        groups=frozenset(group.strip() for group in flags.group.split(",") if group.strip()),
        expose_ungrouped=flags.expose_ungrouped,
        strict_mode=flags.strict_mode,
        bind_address=flags.bind_address,
        reserved_ports=frozenset(reserved),
    )
    return LbSettings(exposure, globals_, flags.server_slots, flags.reload_interval, flags.drain_timeout)


class LoadBalancerService:
    """The process: a Marathon follower feeding a `LoadBalancer`, until told to stop."""

    def __init__(self, flags: Any) -> None:
        self.flags = flags
        self.endpoint = marathon_endpoint(flags)
        self.haproxy = HAProxy(flags.haproxy_binary, Path(flags.haproxy_config), Path(flags.run_directory))
        self.balancer = LoadBalancer(lb_settings(flags, self.haproxy.stats_socket), self.haproxy)
        self.follower = MarathonFollower(
            self.endpoint, self.balancer.on_apps, self.balancer.on_leaving, sync_interval=flags.sync_interval
        )

    async def run(self, stopped: asyncio.Event | None = None) -> None:
        """Serve until `stopped` is set (SIGTERM or SIGINT when None)."""
        if stopped is None:
            stopped = asyncio.Event()
            set_on_termination(stopped)
        log.info("following Marathon at %s for groups %s", ", ".join(self.endpoint.urls), self.flags.group)
        running = [
            asyncio.create_task(self.follower.run(), name="marathon"),
            asyncio.create_task(self.balancer.run(), name="lb"),
        ]
        try:
            await stopped.wait()
        finally:
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if not self.flags.haproxy_keep_running:
                await self.haproxy.stop()


def main(argv: list[str]) -> int:
    flags = FLAGS.load(argv)
    configure_logging(flags.logging_level)
    try:
        asyncio.run(LoadBalancerService(flags).run())
    except (CredentialsError, TlsError, OSError, ValueError) as error:
        log.error("%s", error)
        return 1
    return 0
