"""`mesolite marathon`: flags, and the wiring of election, state, the Mesos framework and the HTTP API.

Flags come from the command line, `MARATHON_<FLAG>` variables and one file per flag in
`/etc/marathon/conf/`; `--master` also comes from `/etc/mesos/zk` (as Marathon's packaging does), and
`--zk` defaults to the master's ZooKeeper servers with the path `/marathon`. The security flags (HTTP Basic,
https, the credentials towards the master) are read in `security.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import logging
import signal
import socket
import ssl
from typing import Any

from aiohttp import web

from mesolite.flags import Flag, FlagSet, duration
from mesolite.http_server import start_http_server
from mesolite.marathon.api.app import create_http_app
from mesolite.marathon.callbacks import EVENT_SUBSCRIBER_HTTP_CALLBACK, HttpCallbacks, validate_callback_url
from mesolite.marathon.events import EventBus
from mesolite.marathon.marathon import Marathon, MarathonSettings
from mesolite.marathon.scheduler import MesosScheduler, framework_info
from mesolite.marathon.security import client_context, cluster_tls, http_security, mesos_authentication
from mesolite.marathon.storage import MarathonStorage
from mesolite.process import configure_logging, set_on_termination
from mesolite.scheduler.client import SchedulerClient, SchedulerError
from mesolite.zookeeper.detector import MasterLocation, parse_master_location
from mesolite.zookeeper.election import MARATHON_MEMBER_LABEL, LeaderElection, SuspensionPolicy
from mesolite.zookeeper.session import ZooKeeperSession
from mesolite.zookeeper.store import ZooKeeperStore
from mesolite.zookeeper.url import ZooKeeperUrl, parse_zookeeper_url

log = logging.getLogger("mesolite.marathon")


def _milliseconds(text: str) -> float:
    """Marathon's timeouts are milliseconds; Mesos-style durations (`5secs`) are accepted too."""
    stripped = text.strip()
    return float(stripped) if stripped.replace(".", "", 1).isdigit() else duration(stripped) * 1000


FLAGS = FlagSet(
    service_name="marathon",
    env_prefix="MARATHON_",
    config_directories=["/etc/marathon/conf"],
    zookeeper_file="/etc/mesos/zk",
    zookeeper_flag="master",
    description="The Marathon-compatible scheduler: keeps long-running apps running on the cluster.",
    flags=[
        Flag("master", str, "zk://localhost:2181/mesos", "The Mesos master: zk://host:port/mesos or host:port"),
        Flag("zk", str, None, "Where Marathon keeps its state (default: the master's ZooKeeper, path /marathon)"),
        Flag("hostname", str, None, "The name this instance advertises (default: the host's name)"),
        Flag("http_address", str, "0.0.0.0", "The address the HTTP API listens on"),
        Flag("http_port", int, 8080, "The port of the HTTP API"),
        Flag("disable_http", bool, False, "Serve https only (needs TLS key material)"),
        Flag("https_address", str, None, "The address https listens on (default: --http_address)"),
        Flag("https_port", int, 8443, "The port of the HTTPS API (served when TLS key material is given)"),
        Flag("ssl_keystore_path", str, None, "A PKCS#12 keystore with the https certificate and its key"),
        Flag("ssl_keystore_password", str, None, "The password of --ssl_keystore_path"),
        Flag("ssl_certificate_path", str, None, "The https certificate chain (PEM), instead of a keystore"),
        Flag("ssl_key_path", str, None, "The private key (PEM) of --ssl_certificate_path"),
        Flag("http_credentials", str, None, "user:password[,user:password]: HTTP Basic on every route"),
        Flag("http_realm", str, "Mesosphere", "The HTTP Basic realm"),
        Flag("framework_name", str, "marathon", "The framework name registered with Mesos"),
        Flag("failover_timeout", float, 604800.0, "Seconds Mesos keeps the tasks while no Marathon is connected"),
        Flag("mesos_role", str, "*", "The Mesos role of the framework"),
        Flag("mesos_user", str, None, "FrameworkInfo.user: tasks of apps without `user` run as it (default: ours)"),
        Flag("mesos_authentication", bool, False, "Authenticate to the master (needs the principal and secret)"),
        Flag("mesos_authentication_principal", str, None, "The framework's principal towards the master"),
        Flag("mesos_authentication_secret_file", str, None, "A file holding the principal's secret"),
        Flag("local_port_min", int, 10000, "The lowest service port handed out"),
        Flag("local_port_max", int, 20000, "The highest service port handed out"),
        Flag("task_launch_timeout", _milliseconds, 300000.0, "Milliseconds a task may take to start running"),
        Flag("zk_timeout", _milliseconds, 10000.0, "Milliseconds to wait for ZooKeeper at start"),
        Flag("zk_session_timeout", _milliseconds, 10000.0, "The ZooKeeper session timeout in milliseconds"),
        Flag("zk_max_versions", int, 50, "How many versions of each app are kept"),
        Flag("zk_max_node_size", int, 1024000, "The largest record (app, group, deployment) stored, in bytes"),
        Flag("webui_url", str, None, "The URL Mesos shows for this framework (default: this instance's own)"),
        Flag("disable_ha", bool, False, "Run without leader election semantics (a single instance)"),
        Flag("event_subscriber", str, None, "http_callback: POST every event to the /v2/eventSubscriptions URLs"),
        Flag("http_endpoints", str, None, "Comma-separated callback URLs added to the event subscribers at start"),
        Flag("http_event_request_timeout", _milliseconds, 10000.0, "Milliseconds an event callback may take"),
        Flag("logging_level", str, "info", "debug, info, warning or error"),
    ],
)


class MarathonService:
    """One Marathon instance: an election candidate that runs the scheduler while it leads."""

    def __init__(self, flags: Any) -> None:
        self.flags = flags
        self.hostname = flags.hostname or socket.getfqdn()
        self.security = http_security(flags)
        self.mesos_authentication = mesos_authentication(flags)
        self.tls = cluster_tls()
        self.client_ssl_context = client_context(self.tls)
        # As Marathon: an instance that serves https only advertises its https port (to the other instances,
        # whose leader proxy then talks https to it, to Mesos as the web UI, and to clients).
        self.scheme = self.security.advertised_scheme
        self.address = f"{self.hostname}:{flags.http_port if self.security.serve_http else flags.https_port}"
        self.master = parse_master_location(flags.master)
        self.zk_url: ZooKeeperUrl = parse_zookeeper_url(flags.zk) if flags.zk else default_zookeeper_url(self.master)
        self.redacted_zk = str(self.zk_url)
        self.mesos_user = flags.mesos_user or getpass.getuser()
        self.events = EventBus()
        self.http_callbacks_enabled = _http_callbacks_enabled(flags)
        self.static_callbacks = tuple(
            validate_callback_url(url.strip()) for url in (flags.http_endpoints or "").split(",") if url.strip()
        )
        self.callbacks: HttpCallbacks | None = None
        self.session = ZooKeeperSession(self.zk_url, session_timeout=flags.zk_session_timeout / 1000)
        # Curator's LeaderLatch semantics, as Marathon has them: a dropped ZooKeeper connection ends the term
        # at once (writes could not be stored, and another instance may be elected soon).
        self.election = LeaderElection(
            self.session,
            self.address.encode(),
            self._lead,
            self._stop_leading,
            policy=SuspensionPolicy.STEP_DOWN_WHEN_SUSPENDED,
            label=MARATHON_MEMBER_LABEL,
            path=self.zk_url.child("leader"),
        )
        self.marathon: Marathon | None = None
        self._client: SchedulerClient | None = None
        self._running: list[asyncio.Task] = []
        self._stopped = asyncio.Event()
        self.exit_status = 0

    # what the API reads

    @property
    def is_leader(self) -> bool:
        """Leads and serves: elected, and its state loaded. Between the two, /v2/info says `elected: false` and
        the API answers 503, as Marathon only reports leadership once it has started leading."""
        return self.election.is_leader and self.marathon is not None

    @property
    def leader_address(self) -> str | None:
        """`host:port` of the leading instance, or None while nobody is known to lead."""
        data = self.election.leader_data
        return data.decode(errors="replace") if data else None

    def base_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}" if request.host else f"{self.scheme}://{self.address}"

    def leader_url(self) -> str | None:
        """The base URL of the leading instance (every instance is configured alike, as Marathon assumes)."""
        leader = self.leader_address
        return f"{self.scheme}://{leader}" if leader else None

    async def abdicate(self) -> None:
        asyncio.get_running_loop().call_later(0.1, lambda: asyncio.ensure_future(self.election.abdicate()))

    # running

    async def run(self) -> None:
        await self.session.start(timeout=self.flags.zk_timeout / 1000)
        runners = await self._start_http_servers()
        await self.election.start()
        set_on_termination(self._stopped)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _log_tasks)
        try:
            await self._stopped.wait()
        finally:
            await self.election.stop()
            for runner in runners:
                await runner.cleanup()
            await self.session.stop()

    async def _start_http_servers(self) -> list[web.AppRunner]:
        """The http listener unless --disable_http, the https one when TLS key material is given."""
        listeners: list[tuple[str, str, int, ssl.SSLContext | None]] = []
        if self.security.serve_http:
            listeners.append(("http", self.flags.http_address, self.flags.http_port, None))
        if self.security.https_context is not None:
            address = self.flags.https_address or self.flags.http_address
            listeners.append(("https", address, self.flags.https_port, self.security.https_context))
        runners: list[web.AppRunner] = []
        try:
            for scheme, address, port, context in listeners:
                # One application per listener (a runner owns its application); the state is the service's.
                # Event streams never end by themselves: give open requests a moment, not aiohttp's minute.
                runner = await start_http_server(
                    create_http_app(self), address, port, shutdown_timeout=2.0, ssl_context=context
                )
                runners.append(runner)
                log.info("Marathon API on %s://%s:%s", scheme, address, port)
        except BaseException:
            for runner in runners:
                await runner.cleanup()
            raise
        log.info(
            "state in %s; HTTP authentication %s",
            self.zk_url,
            f"required (realm {self.security.realm!r})" if self.security.credentials else "off",
        )
        return runners

    async def _lead(self) -> None:
        storage = MarathonStorage(ZooKeeperStore(self.session, self.zk_url.child("state")), self.flags.zk_max_versions)
        settings = MarathonSettings(
            hostname=self.hostname,
            http_port=self.flags.http_port,
            service_port_range=(self.flags.local_port_min, self.flags.local_port_max),
            task_launch_timeout=self.flags.task_launch_timeout / 1000,
        )
        marathon = Marathon(storage, settings, self.events)
        await marathon.load()
        if self.http_callbacks_enabled:
            callbacks = HttpCallbacks(
                storage, self.events, self.flags.http_event_request_timeout / 1000, self.static_callbacks
            )
            await callbacks.start()
            self.callbacks = callbacks
        mesos_scheduler = MesosScheduler(marathon)
        info = framework_info(
            name=self.flags.framework_name,
            hostname=self.hostname,
            webui_url=self.flags.webui_url or f"{self.scheme}://{self.address}",
            failover_timeout=self.flags.failover_timeout,
            user=self.mesos_user,
            role=self.flags.mesos_role,
            framework_id=marathon.framework_id,
            principal=self.mesos_authentication.principal,
        )
        client = SchedulerClient(
            self.master,
            info,
            mesos_scheduler.on_event,
            principal=self.mesos_authentication.principal,
            secret=self.mesos_authentication.secret,
            ssl_context=self.client_ssl_context,
        )
        mesos_scheduler.attach(client)
        self._client = client
        self.marathon = marathon
        self._running = [
            asyncio.create_task(self._keep_subscribed(client), name="mesos-subscription"),
            asyncio.create_task(mesos_scheduler.run_ticks(), name="marathon-ticks"),
        ]
        log.info(
            "leading with %d apps and %d tasks; framework id %s",
            len(marathon.apps),
            len(marathon.tasks),
            marathon.framework_id or "(new)",
        )

    async def _keep_subscribed(self, client: SchedulerClient) -> None:
        while True:
            try:
                await client.run()
                return
            except SchedulerError as error:
                # The master removed the framework (ERROR) or refuses it: a leader that cannot launch must not
                # accept work. Exit non-zero, so that systemd restarts this instance and a standby leads.
                log.error("the Mesos master ended the framework: %s; exiting", error)
                self.exit_status = 1
                self._stopped.set()
                return
            except Exception as error:
                log.error("the Mesos subscription failed: %s; retrying", error)
                await asyncio.sleep(2)

    async def _stop_leading(self, reason: str = "stepped down") -> None:
        self.marathon = None
        self.events.close_all()
        callbacks, self.callbacks = self.callbacks, None
        if callbacks is not None:
            with contextlib.suppress(Exception):
                await callbacks.stop()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.stop()
        for running in self._running:
            running.cancel()
        for running in self._running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
        self._running = []


def _log_tasks() -> None:
    """SIGUSR1: log what every asyncio task is waiting for (to diagnose a stuck scheduler)."""
    import io

    for task in asyncio.all_tasks():
        stack = io.StringIO()
        task.print_stack(file=stack)
        log.warning("task %s:\n%s", task.get_name(), stack.getvalue())


def _http_callbacks_enabled(flags: Any) -> bool:
    """`--event_subscriber http_callback` (the only subscriber type Marathon has besides the event stream)."""
    value = (flags.event_subscriber or "").strip()
    if value and value != EVENT_SUBSCRIBER_HTTP_CALLBACK:
        raise ValueError(f"--event_subscriber: unknown subscriber {value!r}; the one known is http_callback")
    return value == EVENT_SUBSCRIBER_HTTP_CALLBACK


def default_zookeeper_url(master: MasterLocation) -> ZooKeeperUrl:
    """Marathon's state next to the master's: the same ZooKeeper servers (and credentials) under /marathon,
    or localhost:2181/marathon when the master is a fixed address."""
    if master.zookeeper is None:
        return ZooKeeperUrl(hosts="localhost:2181", path="/marathon")
    return dataclasses.replace(master.zookeeper, path="/marathon")


def main(argv: list[str]) -> int:
    flags = FLAGS.load(argv)
    configure_logging(flags.logging_level)
    try:
        service = MarathonService(flags)
        asyncio.run(service.run())
    except (TimeoutError, ValueError) as error:
        log.error("%s", error)
        return 1
    return service.exit_status
