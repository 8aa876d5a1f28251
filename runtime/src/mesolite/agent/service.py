"""`mesolite agent` (systemd unit mesos-slave): flags, wiring, and the process's life.

Flags come from the command line, MESOS_<FLAG> variables, every file in /etc/mesos-slave/ and
/etc/mesos-agent/ (file name = flag) and /etc/mesos/zk (for --master), as with Mesos's packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from types import SimpleNamespace

import aiohttp

from mesolite.agent.agent import Agent, AgentConfigurationError
from mesolite.agent.containerizers import parse_containerizer_names
from mesolite.agent.containerizers.base import (
    DEFAULT_CGROUPS_HIERARCHY,
    DEFAULT_CGROUPS_ROOT,
    DEFAULT_DOCKER_SOCKET,
    DEFAULT_SANDBOX_DIRECTORY,
    AgentOptions,
)
from mesolite.agent.http import create_app
from mesolite.agent.http_security import AgentSecurity, SecurityConfigurationError
from mesolite.agent.registration import LinkEvents, MasterLink
from mesolite.agent.resources_detection import agent_resources
from mesolite.flags import Flag, FlagError, FlagSet, boolean, duration
from mesolite.http_server import start_http_server
from mesolite.process import configure_logging, set_on_termination
from mesolite.resources import ResourceError, parse_attributes
from mesolite.security.tls import TlsError, TlsSettings
from mesolite.zookeeper.detector import MasterLocation, parse_master_location

log = logging.getLogger("mesolite.agent")

DEFAULT_PORT = 5051
ISOLATORS = {"cgroups/cpu", "cgroups/mem", "posix/cpu", "posix/mem", "filesystem/posix", "docker/runtime"}


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def isolation(text: str) -> tuple[str, ...]:
    names = comma_list(text)
    unknown = [name for name in names if name not in ISOLATORS]
    if unknown:
        raise ValueError(f"unknown isolator {', '.join(unknown)} (known: {', '.join(sorted(ISOLATORS))})")
    return names


def recover_mode(text: str) -> str:
    if text not in {"reconnect", "cleanup"}:
        raise ValueError(f"'{text}' is not 'reconnect' or 'cleanup'")
    return text


def containerizer_names(text: str) -> tuple[str, ...]:
    return parse_containerizer_names(text)


FLAGS = FlagSet(
    service_name="mesos-slave",
    env_prefix="MESOS_",
    config_directories=("/etc/mesos-slave", "/etc/mesos-agent"),
    zookeeper_file="/etc/mesos/zk",
    zookeeper_flag="master",
    description="A Mesos-compatible agent: runs tasks for the leading master.",
    flags=[
        Flag(
            "master",
            parse_master_location,
            None,
            "zk://host:port[,host:port]/path, file://<path> holding one, or host:port",
        ),
        Flag("ip", str, None, "IP address to listen on (default: all) and to advertise"),
        Flag("port", int, DEFAULT_PORT, "port to listen on"),
        Flag("advertise_ip", str, None, "IP address advertised to the master and tasks (default: --ip)"),
        Flag("hostname", str, None, "hostname advertised to the master and frameworks (default: this host's name)"),
        Flag("work_dir", str, "/var/lib/mesos", "where sandboxes and checkpoints live"),
        Flag(
            "resources", str, None, "resources, e.g. cpus:2;mem:1024;ports:[31000-32000] (what is missing is detected)"
        ),
        Flag("attributes", str, "", "attributes, e.g. rack:a;zone:1"),
        Flag("containerizers", containerizer_names, ("mesos",), "containerizers in order of preference: mesos, docker"),
        Flag(
            "isolation",
            isolation,
            ("cgroups/cpu", "cgroups/mem"),
            "cgroups/cpu,cgroups/mem enforce limits; posix/* do not",
        ),
        Flag("cgroups_hierarchy", str, DEFAULT_CGROUPS_HIERARCHY, "where the cgroup hierarchies are mounted"),
        Flag("cgroups_root", str, DEFAULT_CGROUPS_ROOT, "the cgroup under which containers get theirs"),
        Flag("cgroups_enable_cfs", boolean, False, "hard CPU limits (CFS quota), not only shares"),
        Flag("switch_user", boolean, True, "run tasks as their framework's user (when the agent runs as root)"),
        Flag(
            "executor_shutdown_grace_period",
            duration,
            5.0,
            "how long tasks get to stop when their framework or the agent shuts down",
        ),
        Flag("executor_registration_timeout", duration, 60.0, "how long an executor may take to start"),
        Flag(
            "recover",
            recover_mode,
            "reconnect",
            "reconnect: keep tasks across agent restarts; cleanup: kill them and register as a new agent",
        ),
        Flag(
            "status_update_retry_interval",
            duration,
            10.0,
            "first re-send of an unacknowledged status update (doubles up to 10mins)",
        ),
        Flag("registration_backoff_factor", duration, 1.0, "back-off between subscription attempts"),
        Flag("sandbox_directory", str, DEFAULT_SANDBOX_DIRECTORY, "the sandbox's path inside containers"),
        Flag("docker_socket", str, DEFAULT_DOCKER_SOCKET, "dockerd's socket"),
        Flag("docker_kill_orphans", boolean, True, "kill mesos-* containers that no task accounts for"),
        Flag("docker_allow_privileged", boolean, False, "let Docker tasks run privileged"),
        Flag(
            "docker_allowed_parameters",
            comma_list,
            (),
            "docker run options tasks may pass, on top of the built-in allowlist",
        ),
        Flag(
            "authenticate_http_readonly",
            boolean,
            False,
            "require HTTP Basic credentials (--http_credentials) for the read-only endpoints and the files API",
        ),
        Flag(
            "authenticate_http_readwrite",
            boolean,
            False,
            "require HTTP Basic credentials (--http_credentials) for the endpoints that change something",
        ),
        Flag("http_credentials", str, None, "Mesos credentials file of the principals the HTTP API accepts"),
        Flag("acls", str, None, "Mesos ACLs (JSON, or a path to it): access_sandboxes guards the files API"),
        Flag("credential", str, None, "file with this agent's principal and secret, presented to the master"),
        Flag("boot_id_file", str, "/proc/sys/kernel/random/boot_id", "where the boot id is read (tests change it)"),
        Flag("log_dir", str, None, "accepted for compatibility: logs go to stderr (the journal)"),
        Flag("logging_level", str, "INFO", "INFO, WARNING or ERROR"),
    ],
)


def configured_ip(flags: SimpleNamespace) -> str | None:
    """The address the operator configured for this agent (--advertise_ip, else a specific --ip)."""
    return next((ip for ip in (flags.advertise_ip, flags.ip) if ip and ip != "0.0.0.0"), None)


def advertised_ip(flags: SimpleNamespace, hostname: str) -> str:
    configured = configured_ip(flags)
    if configured:
        return configured
    with contextlib.suppress(OSError):
        address = socket.gethostbyname(hostname)
        if not address.startswith("127."):
            return address
    return "127.0.0.1"


def check_docker_allowed_parameters(options: AgentOptions) -> None:
    """Refuse --docker_allowed_parameters entries the docker containerizer cannot apply: a typo would
    otherwise pass silently, and every task using the option would get TASK_ERROR."""
    if not options.docker_allowed_parameters:
        return
    try:
        from mesolite.agent.containerizers.docker import parameters as docker_parameters
    except ImportError:
        return  # no docker SDK: the docker containerizer is unavailable, its tasks fail saying so
    unknown = docker_parameters.unknown_allowed_parameters(options)
    if unknown:
        reasons = [
            f"'{key}' ({docker_parameters.RESERVED_PARAMETERS.get(key, 'not a docker run option it can apply')})"
            for key in unknown
        ]
        extra = sorted(set(docker_parameters.PARAMETERS) - docker_parameters.DEFAULT_ALLOWED_PARAMETERS)
        raise FlagError(
            f"--docker_allowed_parameters: the docker containerizer cannot apply {', '.join(reasons)}; "
            f"options that can be allowed beyond the defaults: {', '.join(extra)}"
        )


def build_agent(flags: SimpleNamespace, scheme: str = "http") -> Agent:
    if not flags.master:
        raise FlagError("--master is required (or write the zk:// URL into /etc/mesos/zk)")
    hostname = flags.hostname or socket.gethostname()
    ip = advertised_ip(flags, hostname)
    options = AgentOptions(
        work_dir=flags.work_dir,
        containerizers=tuple(flags.containerizers),
        ip=ip,
        hostname=hostname,
        agent_endpoint=f"{ip}:{flags.port}",
        executor_shutdown_grace_period=flags.executor_shutdown_grace_period,
        isolation=tuple(flags.isolation),
        cgroups_hierarchy=flags.cgroups_hierarchy,
        cgroups_root=flags.cgroups_root,
        cgroups_enable_cfs=flags.cgroups_enable_cfs,
        switch_user=flags.switch_user,
        sandbox_directory=flags.sandbox_directory,
        docker_socket=flags.docker_socket,
        docker_kill_orphans=flags.docker_kill_orphans,
        docker_allow_privileged=flags.docker_allow_privileged,
        docker_allowed_parameters=tuple(flags.docker_allowed_parameters),
        boot_id_path=flags.boot_id_file,
    )
    check_docker_allowed_parameters(options)
    try:
        resources = agent_resources(flags.resources, flags.work_dir)
        attributes = parse_attributes(flags.attributes or "")
    except ResourceError as error:
        raise FlagError(f"--resources/--attributes: {error}") from None
    agent = Agent(
        options,
        resources,
        attributes,
        flags.port,
        recover_mode=flags.recover,
        status_update_retry_interval=flags.status_update_retry_interval,
        executor_registration_timeout=flags.executor_registration_timeout,
        advertised_ip=configured_ip(flags),
        scheme=scheme,
    )
    agent.flags_for_state = {
        name: ",".join(value) if isinstance(value, tuple) else str(value)
        for name, value in vars(flags).items()
        if value is not None
    }
    return agent


async def serve(
    agent: Agent,
    master: MasterLocation,
    listen_ip: str,
    backoff_factor: float,
    security: AgentSecurity | None = None,
    tls: TlsSettings | None = None,
) -> int:
    """Run the agent until SIGTERM/SIGINT (exit status 0) or until one of its workers ends (status 1: the
    workers run forever, so that is a defect, and the service manager must restart the agent)."""
    security = security or AgentSecurity()
    tls = tls or TlsSettings()
    await agent.recover()
    runner = await start_http_server(
        create_app(agent, security), listen_ip, agent.port, ssl_context=tls.server_context()
    )
    log.info(
        "agent listening on %s://%s:%d (advertised as %s, %s)",
        tls.scheme,
        listen_ip,
        agent.port,
        agent.options.ip,
        agent.options.hostname,
    )
    stop = asyncio.Event()
    set_on_termination(stop)
    async with aiohttp.ClientSession() as session:
        agent.link = MasterLink(
            master,
            session,
            LinkEvents(
                subscribe_body=agent.subscribe_body,
                on_registered=agent.on_registered,
                on_event=agent.on_event,
                on_disconnected=agent.on_disconnected,
                on_refused=agent.on_refused,
            ),
            backoff_factor=backoff_factor,
            credential=security.credential,
            tls=tls,
        )
        workers = [
            asyncio.create_task(agent.link.run(), name="master-link"),
            asyncio.create_task(agent.updates.run(), name="status-updates"),
            asyncio.create_task(agent.follow_runs(), name="follow-runs"),
        ]
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *workers], return_when=asyncio.FIRST_COMPLETED)
        status = 0
        for task in done:
            if task is not waiter:
                status = 1
                log.error("agent worker %s ended: exiting", task.get_name(), exc_info=task.exception())
        # Tasks keep running: a stopped agent is restarted and reattaches to them (Mesos does the same).
        log.info("agent stopping; %d tasks keep running", sum(1 for run in agent.runs.values() if not run.terminal))
        for task in [waiter, *workers]:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    await runner.cleanup()
    return status


def main(argv: list[str] | None = None) -> int:
    flags = FLAGS.load(sys.argv[1:] if argv is None else argv)
    configure_logging(flags.logging_level)
    try:
        security = AgentSecurity.from_flags(flags)
        tls = TlsSettings.from_environment()
        # Load the certificate and the CA now: a bad file stops the start, with its name.
        tls.server_context()
        tls.client_context()
        agent = build_agent(flags, tls.scheme)
    except (FlagError, AgentConfigurationError, SecurityConfigurationError, TlsError) as error:
        print(f"mesos-slave: {error}", file=sys.stderr)
        return 2
    listen_ip = flags.ip or "0.0.0.0"
    try:
        return asyncio.run(serve(agent, flags.master, listen_ip, flags.registration_backoff_factor, security, tls))
    except AgentConfigurationError as error:
        print(f"mesos-slave: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
