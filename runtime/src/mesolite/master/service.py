"""`mesolite master`: flags, the HTTP server, and leadership (ZooKeeper election, or standalone).

The HTTP server runs for the whole life of the process; a `Master` exists only while this process holds
a term. A term ends when the ZooKeeper session is lost (expired, or disconnected for a whole session
timeout) or another master out-sequences this one: every stream is closed, the state dropped, and the
process contends again; a new term recovers from the registry. A dropped connection alone does not end
the term (Mesos keeps its candidacy until the session expires): the `LeadershipLease` stops decisions
while this master cannot prove its session, and a reconnection within the session timeout resumes them
with agents and frameworks still connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
import threading
import time
from types import SimpleNamespace

from mesolite import MESOS_COMPATIBLE_VERSION
from mesolite.flags import Flag, FlagError, FlagSet, boolean, duration
from mesolite.http_server import start_http_server
from mesolite.ids import IdGenerator, new_master_id
from mesolite.master.access import MasterSecurity
from mesolite.master.allocator import DEFAULT_MIN_ALLOCATABLE, parse_min_allocatable
from mesolite.master.http import build_app
from mesolite.master.limits import DescriptorBudget
from mesolite.master.master import Master, MasterSettings
from mesolite.master.registry import Registry
from mesolite.process import configure_logging, set_on_termination
from mesolite.resources import ResourceError
from mesolite.zookeeper.acls import ZooKeeperAccessDenied
from mesolite.zookeeper.detector import ip_to_uint32, master_address
from mesolite.zookeeper.url import ZooKeeperUrl, parse_zookeeper_url

log = logging.getLogger("mesolite.master")

# Mesos leaves --offer_timeout unset (offers held forever). A healthy framework answers an offer within seconds
# (Marathon at once); an offer older than a minute was lost (an ACCEPT that never arrived, a scheduler that
# crashed holding it) or is hoarded, and its resources should go back to the allocator. Issue 16 saw 157 offers
# stranded for good after a stall. Frameworks that hoard on purpose (Aurora holds offers for minutes) need a
# larger value.
DEFAULT_OFFER_TIMEOUT = 60.0

FLAGS = FlagSet(
    service_name="mesolite master",
    env_prefix="MESOS_",
    config_directories=["/etc/mesos-master"],
    zookeeper_file="/etc/mesos/zk",
    zookeeper_flag="zk",
    description="A Mesos-compatible master (Mesos API " + MESOS_COMPATIBLE_VERSION + ").",
    flags=[
        Flag(
            "zk",
            parse_zookeeper_url,
            None,
            "ZooKeeper URL for leader election and the registry (zk://host:port,.../path)",
        ),
        Flag("ip", str, None, "IP address to listen on and advertise"),
        Flag("port", int, 5050, "port to listen on"),
        Flag("advertise_ip", str, None, "IP address advertised to agents and frameworks"),
        Flag("advertise_port", int, None, "port advertised to agents and frameworks"),
        Flag("hostname", str, None, "hostname advertised (default: looked up from the IP)"),
        Flag("hostname_lookup", boolean, True, "look the hostname up from the IP when --hostname is not given"),
        Flag("quorum", int, 1, "replicated log quorum (accepted for compatibility; the registry lives in ZooKeeper)"),
        Flag("work_dir", str, "/var/lib/mesos", "accepted for compatibility with Mesos command lines; unused"),
        Flag("log_dir", str, None, "accepted for compatibility: logs go to stderr (journald)"),
        Flag("logging_level", str, "INFO", "INFO, WARNING or ERROR"),
        Flag("cluster", str, None, "human readable cluster name, shown in /state and the UI"),
        Flag("registry", str, "replicated_log", "accepted for compatibility: the registry lives in ZooKeeper"),
        Flag("zk_session_timeout", duration, 10.0, "ZooKeeper session timeout"),
        Flag("allocation_interval", duration, 1.0, "time between batch allocations"),
        Flag(
            "agent_ping_timeout",
            duration,
            15.0,
            "interval of agent pings; an agent is unreachable after max_agent_ping_timeouts of them",
            aliases=("slave_ping_timeout",),
        ),
        Flag(
            "max_agent_ping_timeouts",
            int,
            5,
            "missed pings before an agent is unreachable",
            aliases=("max_slave_ping_timeouts",),
        ),
        Flag(
            "agent_reregister_timeout",
            duration,
            600.0,
            "how long agents have to re-register with a new leader",
            aliases=("slave_reregister_timeout",),
        ),
        Flag(
            "offer_timeout",
            duration,
            DEFAULT_OFFER_TIMEOUT,
            "rescind offers held longer than this and give their resources back to the allocator; 0secs: never "
            "(Mesos's default; mesolite's is 1mins so that a lost or hoarded offer cannot hold resources forever)",
        ),
        Flag("min_allocatable_resources", str, DEFAULT_MIN_ALLOCATABLE, "smallest offer, e.g. cpus:0.01|mem:32"),
        Flag("weights", str, None, "role weights, e.g. web=2,batch=1"),
        Flag("roles", str, None, "accepted for compatibility (roles are implicit)"),
        Flag("framework_heartbeat_interval", duration, 15.0, "HEARTBEAT interval on scheduler streams (mesolite)"),
        Flag("registry_flush_interval", duration, 0.5, "how often changed registry records are written (mesolite)"),
        Flag(
            "authenticate_frameworks",
            boolean,
            False,
            "frameworks must authenticate: a SUBSCRIBE needs HTTP Basic credentials (from --credentials) of the "
            "principal its FrameworkInfo.principal names, and the framework's later calls the same principal",
        ),
        Flag(
            "authenticate_http_frameworks",
            boolean,
            False,
            "HTTP frameworks (the v1 scheduler API, /api/v1/scheduler) must authenticate, as with "
            "--authenticate_frameworks (the only kind of framework this master serves)",
        ),
        Flag(
            "http_framework_authenticators",
            str,
            "basic",
            "how HTTP frameworks authenticate: only 'basic' (HTTP Basic against --credentials) is supported",
        ),
        Flag(
            "credentials",
            str,
            None,
            "file of the principals and secrets that may authenticate: JSON "
            '{"credentials": [{"principal": ..., "secret": ...}]} or one "principal secret" per line',
        ),
        Flag(
            "authenticate_http_readonly",
            boolean,
            False,
            "read-only operator endpoints (/state, /frameworks, /slaves, /tasks, /metrics/snapshot, the UI's data "
            "calls) need HTTP Basic credentials from --credentials",
        ),
        Flag(
            "authenticate_http_readwrite",
            boolean,
            False,
            "read-write operator endpoints (/teardown) need HTTP Basic credentials from --credentials",
        ),
        Flag(
            "authenticate_agents",
            boolean,
            False,
            "agents must authenticate: their calls to /internal/agent/* need HTTP Basic credentials from "
            "--credentials (the agent's --credential)",
        ),
        Flag(
            "acls",
            str,
            None,
            "Mesos ACLs (JSON, inline or a file path) for register_frameworks, run_tasks, teardown_frameworks, "
            "view_frameworks, view_tasks and access_sandboxes; without it everything is allowed",
        ),
        Flag("webui_dir", str, None, "accepted for compatibility: the UI is built in"),
        Flag(
            "fd_reserve",
            int,
            None,
            "file descriptors kept for ZooKeeper, the registry, logs and operator requests: once fewer than this "
            "remain under the process's RLIMIT_NOFILE, new agent and framework subscriptions are answered 503 with "
            "Retry-After (default: a tenth of the limit, at least 64 and at most 4096) (mesolite)",
        ),
        Flag("max_completed_frameworks", int, 50, "completed frameworks kept for /state"),
        Flag("max_completed_tasks_per_framework", int, 1000, "completed tasks kept per framework for /state"),
        Flag("version", boolean, False, "print the version and exit"),
    ],
)


def parse_weights(text: str | None) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in (text or "").split(","))):
        role, separator, value = part.partition("=")
        try:
            weights[role.strip()] = float(value)
        except ValueError:
            raise FlagError(f"--weights: '{part}' is not role=weight") from None
        if not separator or weights[role.strip()] <= 0:
            raise FlagError(f"--weights: '{part}' is not role=<positive weight>")
    return weights


def default_ip() -> str:
    """The IP of this host's name, as Mesos picks it (127.0.0.1 when the name does not resolve)."""
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


def advertised_ip_source(flags: SimpleNamespace) -> str:
    """Where the advertised IP came from, in words for the operator."""
    if flags.advertise_ip:
        return "--advertise_ip"
    if flags.ip:
        return "--ip"
    return f"no --ip given: the address of this host's name '{socket.gethostname()}'"


def loopback_warning(ip: str, source: str, zookeeper: ZooKeeperUrl | None) -> str | None:
    """A warning when this master advertises a loopback IP although ZooKeeper is on another host: masters,
    agents and frameworks elsewhere would find it in ZooKeeper and fail to reach it. (Debian maps the
    hostname to 127.0.1.1, so a master started without --ip advertises exactly that; Mesos does the same.)"""
    try:
        if not zookeeper or not ipaddress.ip_address(ip).is_loopback:
            return None
    except ValueError:
        return None
    servers = zookeeper.hosts
    remote = [server for server in servers.split(",") if not is_loopback_host(server.rpartition(":")[0] or server)]
    if not remote:
        return None
    return (
        f"advertising {ip} ({source}), a loopback address, while ZooKeeper is on another host "
        f"({', '.join(remote)}): agents, frameworks and masters on other hosts will find this master in "
        f"ZooKeeper but cannot reach it. Set --ip (or /etc/mesos-master/ip) to an address they can reach."
    )


def is_loopback_host(host: str) -> bool:
    """Whether `host` (an IP or a name) is this machine's loopback; names that do not resolve are not."""
    host = host.strip("[]")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    with contextlib.suppress(OSError, ValueError):
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    return False


def lookup_hostname(ip: str) -> str:
    with contextlib.suppress(OSError):
        return socket.gethostbyaddr(ip)[0]
    return ip


class LeadershipLease:
    """How long this master may act as leader on the strength of its last word from ZooKeeper.

    Kazoo reports a dead connection only when its threads notice; a process that was frozen (SIGSTOP, a
    VM pause, a long GC-like stall) for longer than its session timeout would act as leader for a moment
    after it thaws, while another master already leads. And a connection that dropped leaves the term in
    place (see the module's documentation) while the session may be expiring. So the leader proves its
    session regularly: a read of its own znode that started at T and found it owned by this session shows
    ZooKeeper heard from us at T or later, so the session cannot expire (and nobody else be elected) before
    T + session timeout. We act only until T + half of it, and renew every quarter.

    The renewal runs on a thread of its own, not on the event loop: a busy loop (a burst of registry
    writes, a large /state) must not make the lease lapse while ZooKeeper is fine.
    """

    def __init__(self, session, election, session_timeout: float):
        self.session = session
        self.election = election
        self.session_timeout = session_timeout
        self.valid_until = 0.0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew_forever, name="leadership-lease", daemon=True)

    def valid(self) -> bool:
        return time.monotonic() < self.valid_until

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    async def renew(self) -> bool:
        """Renew now (at the start of a term), off the event loop."""
        return await asyncio.to_thread(self.renew_blocking)

    def renew_blocking(self) -> bool:
        """Prove the session with a read of our znode; extend the lease if it is ours. Blocks (kazoo's threads)."""
        path = self.election.node_path
        client = self.session.client
        if path is None or not self.session.connected:
            return False
        started = time.monotonic()
        try:
            stat = client.exists(path)
        except Exception as error:
            log.warning("could not confirm the ZooKeeper session: %s", error)
            return False
        if stat is None or stat.ephemeralOwner != client.client_id[0]:
            return False
        with self._lock:
            self.valid_until = max(self.valid_until, started + self.effective_timeout() / 2)
        return True

    def effective_timeout(self) -> float:
        """The session timeout the server granted (it may clamp what we asked for), in seconds."""
        return min(self.session_timeout, self.session.effective_timeout)

    def _renew_forever(self) -> None:
        while not self._stopped.wait(self.effective_timeout() / 4):
            if self.election.is_leader:
                self.renew_blocking()


class MasterProcess:
    """One running master process: its MasterInfo, who leads, and the `Master` while this one does."""

    def __init__(
        self,
        flags: SimpleNamespace,
        settings: MasterSettings,
        security: MasterSecurity | None = None,
        descriptors: DescriptorBudget | None = None,
    ):
        self.flags = flags
        self.settings = settings
        self.security = security or MasterSecurity()
        # Without a budget (tests building the app alone) nothing is refused for lack of descriptors.
        self.descriptors = descriptors or DescriptorBudget(limit=2**62, reserve=0)
        self.start_time = time.time()
        ip = flags.advertise_ip or flags.ip or default_ip()
        port = flags.advertise_port or flags.port
        hostname = flags.hostname or (lookup_hostname(ip) if flags.hostname_lookup else ip)
        master_id = new_master_id()
        self.info = {
            "id": master_id,
            "ip": ip_to_uint32(ip),
            "port": port,
            "pid": f"master@{ip}:{port}",
            "hostname": hostname,
            "version": MESOS_COMPATIBLE_VERSION,
            "address": {"hostname": hostname, "ip": ip, "port": port},
        }
        if self.security.tls.enabled:
            # Mesos's Address has a scheme: schedulers and agents reach this master over https.
            self.info["address"]["scheme"] = self.security.tls.scheme
        self.ids = IdGenerator(master_id)
        self._master: Master | None = None
        self.lease: LeadershipLease | None = None
        self.leader_info: dict | None = None
        self.session = None
        self.election = None
        self._term_lock = asyncio.Lock()

    def is_leading(self) -> bool:
        """Act as leader right now? In a term and with a fresh lease (see LeadershipLease)."""
        if self._master is None:
            return False
        if self.election is None:
            return True  # standalone
        return self.election.is_leader and self.lease is not None and self.lease.valid()

    @property
    def master(self) -> Master | None:
        """The `Master` while this process may act as leader, else None."""
        return self._master if self.is_leading() else None

    async def on_elected(self) -> None:
        async with self._term_lock:
            if self._master is not None:
                return
            registry = None
            if self.session is not None:
                registry = Registry(
                    self.session,
                    self.session.url.path,
                    agent_snapshot=lambda agent_id: master.recovery.agent_record(agent_id),
                    framework_snapshot=lambda framework_id: master.recovery.framework_record(framework_id),
                    flush_interval=self.flags.registry_flush_interval,
                    is_leading=lambda: self.election is not None and self.election.is_leader and self.lease.valid(),
                )
            master = Master(self.info, self.ids, self.settings, registry, is_leading=self.is_leading)
            log.info("elected leading master %s", self.info["pid"])
            try:
                await master.start()
            except ZooKeeperAccessDenied as error:  # the operator's mistake, said plainly: no traceback
                log.error("recovering the registry failed: %s; giving up this term", error)
                await master.stop("recovery failed")
                raise
            except Exception:
                log.exception("recovering the registry failed; giving up this term")
                await master.stop("recovery failed")
                raise
            if self.election is not None and not (self.election.is_leader and await self.lease.renew()):
                await master.stop("lost leadership while recovering")
                return
            self._master = master

    def redirect_target(self, include_self: bool = False) -> tuple[dict | None, str]:
        """The leader to send a request to that this process cannot serve, or None and why (for a 503).

        With `include_self` (for /redirect, which names the leader) this process is a fine answer when it
        is the one elected, even while it cannot act."""
        leader = self.leader_info
        if leader is None:
            return None, "no leading master is known"
        if leader.get("id") == self.info["id"]:
            if include_self:
                return leader, ""
            if self._master is None:
                return None, "this master is recovering its state"
            return None, "this master cannot confirm its ZooKeeper session right now"
        with contextlib.suppress(ValueError):
            if master_address(leader) == master_address(self.info):
                # A previous process on this address (killed, then restarted) still holds the lowest znode:
                # a redirect would point back here. Its session expires within the session timeout.
                return None, (
                    f"the leader {leader.get('id')} at {master_address(leader)} is a previous master process on "
                    "this address whose ZooKeeper session has not expired yet"
                )
        return leader, ""

    async def on_lost(self, reason: str) -> None:
        master, self._master = self._master, None
        if master is not None:
            log.warning("no longer the leading master: %s", reason)
            await master.stop(reason)


async def run(flags: SimpleNamespace) -> None:
    try:
        min_allocatable = parse_min_allocatable(flags.min_allocatable_resources)
    except ResourceError as error:
        raise FlagError(f"--min_allocatable_resources: {error}") from None
    if flags.fd_reserve is not None and flags.fd_reserve < 0:
        raise FlagError(f"--fd_reserve: {flags.fd_reserve} is negative")
    security = MasterSecurity.from_flags(flags)
    settings = MasterSettings.from_flags(flags, min_allocatable, parse_weights(flags.weights), security.authorizer)
    process = MasterProcess(flags, settings, security, DescriptorBudget.for_this_process(flags.fd_reserve))
    warning = loopback_warning(process.info["address"]["ip"], advertised_ip_source(flags), flags.zk)
    if warning:
        log.warning(warning)
    app = build_app(process)
    runner = await start_http_server(
        app,
        flags.ip or "0.0.0.0",
        flags.port,
        backlog=4096,
        handler_cancellation=True,
        ssl_context=security.server_context(),
    )
    log.info(
        "master %s listening on %s://%s:%d",
        process.info["id"],
        security.tls.scheme,
        flags.ip or "0.0.0.0",
        flags.port,
    )

    stop = asyncio.Event()
    set_on_termination(stop)

    detector = election = None
    try:
        if flags.zk:
            detector, election = await start_election(process, flags)
        else:
            log.warning("no --zk given: running as a standalone leader (no failover, no registry)")
            process.leader_info = process.info
            await process.on_elected()
        await stop.wait()
        log.info("shutting down")
    finally:
        if process.lease is not None:
            process.lease.stop()
        if election is not None:
            with contextlib.suppress(Exception):
                await election.stop()
        await process.on_lost("shutting down")
        if detector is not None:
            with contextlib.suppress(Exception):
                await detector.stop()
        if process.session is not None:
            with contextlib.suppress(Exception):
                await process.session.stop()
        await runner.cleanup()


async def start_election(process: MasterProcess, flags: SimpleNamespace):
    from mesolite.zookeeper.detector import MasterDetector
    from mesolite.zookeeper.election import LeaderElection, SuspensionPolicy
    from mesolite.zookeeper.session import ZooKeeperSession

    url = flags.zk
    session = ZooKeeperSession(url, session_timeout=flags.zk_session_timeout)
    while True:
        try:
            await session.start()
            break
        except TimeoutError as error:
            log.warning("%s; retrying", error)
    process.session = session

    def leader_changed(leader: dict | None) -> None:
        process.leader_info = leader

    detector = MasterDetector(session=session, on_change=leader_changed)
    await detector.start()
    election = LeaderElection(
        session,
        process.info,
        on_elected=process.on_elected,
        on_lost=process.on_lost,
        policy=SuspensionPolicy.KEEP_TERM_UNTIL_EXPIRY,
    )
    process.election = election
    process.lease = LeadershipLease(session, election, flags.zk_session_timeout)
    process.lease.start()
    await election.start()
    return detector, election


def main(argv: list[str] | None = None) -> int:
    flags = FLAGS.load(sys.argv[1:] if argv is None else argv)
    if flags.version:
        print(f"mesos {MESOS_COMPATIBLE_VERSION} (mesolite)")
        return 0
    configure_logging(flags.logging_level)
    try:
        asyncio.run(run(flags))
    except FlagError as error:
        print(f"mesolite master: {error}", file=sys.stderr)
        return 2
    return 0
