"""The Docker containerizer: runs tasks whose `container.type` is DOCKER through the node's dockerd.

Agent side, `validate` turns the TaskInfo into a container configuration (`container_spec`) and refuses
what cannot or may not run (TASK_ERROR), and `recover` removes `mesos-*` containers that no task
accounts for. Executor side, `run` makes sure the image is there, creates and starts the container
`mesos-<container_id>`, copies its stdout and stderr into the sandbox, reports TASK_RUNNING with the
container's addresses and waits for it to exit; `kill` is `docker stop` with the grace period. Health
checks reach into the container as Mesos's do: a COMMAND check is a `docker exec`, and HTTP/TCP checks of
a BRIDGE or USER task go to the container's address.

Everything that talks to dockerd is blocking (the docker SDK) and runs in daemon threads, so that an
executor can always exit, and every call that watches a running container survives dockerd going
away: a restart of dockerd (with live-restore the containers keep running) only pauses the watching,
which then resumes where it stopped — the log copy included, without writing a line twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
from typing import Any

import docker
import docker.errors
from docker.utils import parse_repository_tag

from mesolite.agent.containerizers.base import (
    LOOPBACK,
    AgentOptions,
    Containerizer,
    ExecutorRun,
    Termination,
    container_status,
)
from mesolite.agent.containerizers.docker.logs import follow_logs
from mesolite.agent.containerizers.docker.parameters import DockerTaskError
from mesolite.agent.containerizers.docker.session import (
    DockerSession,
    DockerUnavailable,
    PullFailed,
    error_text,
    in_thread,
)
from mesolite.agent.containerizers.docker.spec import (
    LABEL_FRAMEWORK_ID,
    LABEL_TASK_ID,
    LABEL_WORK_DIR,
    NAME_PREFIX,
    ContainerSpec,
    TaskIdentity,
    container_name,
    container_spec,
    task_network,
)

logger = logging.getLogger(__name__)

PULL_TIMEOUT_SECONDS = 600.0
LAUNCH_RETRY_SECONDS = 60.0  # how long creating and starting a container waits for an unreachable dockerd
LOG_DRAIN_SECONDS = 10.0  # after the exit, how long the log copy may take to catch up
# How often a health check command running in the container is asked whether it has ended: soon at first
# (most checks take milliseconds), then less often.
CHECK_FIRST_POLL_SECONDS = 0.02
CHECK_MAX_POLL_SECONDS = 0.5


def _identity(run: ExecutorRun) -> TaskIdentity:
    return TaskIdentity(run.container_id, run.task_id, run.framework_id, run.agent_id, run.executor_id)


def _addresses(inspection: dict, spec: ContainerSpec, options: AgentOptions) -> list[dict]:
    """network_infos for TASK_RUNNING: the addresses the task is reachable at, and its host ports."""
    if spec.network == "HOST":
        return [{"ip_addresses": [{"protocol": "IPv4", "ip_address": options.ip}]}]
    networks = (inspection.get("NetworkSettings") or {}).get("Networks") or {}
    infos = []
    for name, network in networks.items():
        addresses = []
        if network.get("IPAddress"):
            addresses.append({"protocol": "IPv4", "ip_address": network["IPAddress"]})
        if network.get("GlobalIPv6Address"):
            addresses.append({"protocol": "IPv6", "ip_address": network["GlobalIPv6Address"]})
        info: dict[str, Any] = {"ip_addresses": addresses}
        if spec.network == "USER":
            info["name"] = name
        if spec.port_mappings:
            info["port_mappings"] = spec.port_mappings
        infos.append(info)
    return infos or [{"ip_addresses": []}]


def _container_ipv4(inspection: dict) -> str | None:
    """The container's IPv4 address on its (first) network; None on the host's network or none."""
    networks = (inspection.get("NetworkSettings") or {}).get("Networks") or {}
    return next((network["IPAddress"] for network in networks.values() if network.get("IPAddress")), None)


def check_command_argv(command: dict) -> list[str]:
    """What `docker exec` runs for a COMMAND check: `sh -c <value>` when `shell` is true (the default), as
    Mesos does, else `value` with the arguments after argv[0] (an exec cannot set argv[0] on its own)."""
    value = str(command.get("value") or "")
    if command.get("shell", True):
        return ["sh", "-c", value]
    arguments = [str(argument) for argument in command.get("arguments") or []]
    return [value, *arguments[1:]]


def _started(inspection: dict) -> bool:
    """Whether the container has ever run (dockerd's zero time means never)."""
    started_at = (inspection.get("State") or {}).get("StartedAt") or ""
    return bool(started_at) and not started_at.startswith("0001-")


def _reported_running(run: ExecutorRun) -> bool:
    """Whether an earlier executor of this run reported TASK_RUNNING already (then it is not news)."""
    try:
        lines = run.events_path.read_text().splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        with contextlib.suppress(ValueError):  # a line torn by a crash
            if json.loads(line).get("state") == "TASK_RUNNING":
                return True
    return False


def _launch_without_dockerd(run: ExecutorRun) -> Termination | None:
    """The failure of a launch on a node without dockerd: its socket file does not exist (the packages'
    docker.socket keeps the file while dockerd restarts). Waiting LAUNCH_RETRY_SECONDS for it would only make
    the failure late and vague. A socket that exists but does not answer yet is waited for, as is a
    re-attach (dockerd may be restarting under a running container)."""
    if os.path.exists(run.options.docker_socket) or _may_have_a_container(run):
        return None
    return _launch_failure(
        f"dockerd is not running: its socket {run.options.docker_socket} does not exist "
        "(start dockerd, or point --docker_socket at its socket)"
    )


def _may_have_a_container(run: ExecutorRun) -> bool:
    """Whether an earlier executor of this run may have started its container (which a new executor
    must then wait for dockerd to re-attach to, rather than fail): it reported TASK_RUNNING, or it had
    begun copying the container's output."""
    return _reported_running(run) or (run.run_dir / "docker-stdout.position").exists()


def _termination(state: dict | None, killed: bool) -> Termination:
    if state is None:
        if killed:
            return Termination("TASK_KILLED", "Container was removed by a kill request")
        return Termination(
            "TASK_FAILED", "Container disappeared (removed outside of mesolite)", reason="REASON_EXECUTOR_TERMINATED"
        )
    exit_code = state.get("ExitCode")
    if killed:
        return Termination("TASK_KILLED", f"Container stopped by a kill request (exit status {exit_code})",
                           exit_status=exit_code)  # fmt: skip
    if state.get("OOMKilled"):
        return Termination(
            "TASK_FAILED",
            "Container exceeded its memory limit and was killed",
            reason="REASON_CONTAINER_LIMITATION_MEMORY",
            exit_status=exit_code,
        )
    if exit_code == 0:
        return Termination("TASK_FINISHED", "Container exited with status 0", exit_status=0)
    message = f"Container exited with status {exit_code}"
    if state.get("Error"):
        message += f": {state['Error']}"
    return Termination("TASK_FAILED", message, reason="REASON_COMMAND_EXECUTOR_FAILED", exit_status=exit_code)


def _launch_failure(message: str) -> Termination:
    return Termination("TASK_FAILED", message, reason="REASON_CONTAINER_LAUNCH_FAILED")


class DockerContainerizer(Containerizer):
    name = "docker"
    reattaches = True  # run() re-attaches to the container of an earlier executor of the run

    def __init__(self, options: AgentOptions):
        super().__init__(options)
        self._kill_grace: dict[str, float] = {}  # container id -> grace period, once a kill was asked for
        self._session: DockerSession | None = None

    def session(self) -> DockerSession:
        if self._session is None:
            self._session = DockerSession(self.options.docker_socket)
        return self._session

    # agent side

    def supports(self, task: dict) -> bool:
        return (task.get("container") or {}).get("type") == "DOCKER"

    def validate(self, task: dict, options: AgentOptions) -> str | None:
        placeholder = TaskIdentity("validation", "task", "framework", "agent", "executor")
        try:
            container_spec(task, placeholder, "/sandbox", options)
        except DockerTaskError as error:
            return str(error)
        return None

    async def recover(self, known_container_ids: set[str], options: AgentOptions) -> list[str]:
        session = DockerSession(options.docker_socket)
        try:
            return await in_thread(self._remove_orphans, session, known_container_ids, options)
        finally:
            session.reset()

    @staticmethod
    def _remove_orphans(session: DockerSession, known: set[str], options: AgentOptions) -> list[str]:
        containers = session.call(lambda api: api.containers(all=True, filters={"name": NAME_PREFIX}), 30)
        cleaned = []
        for container in containers:
            name = (container.get("Names") or ["/"])[0].lstrip("/")
            if not name.startswith(NAME_PREFIX) or name[len(NAME_PREFIX) :] in known:
                continue
            labels = container.get("Labels") or {}
            owner = labels.get(LABEL_WORK_DIR)
            if owner is not None and owner != options.work_dir:
                continue  # another agent's, on the same dockerd
            description = (
                f"{name} (task {labels.get(LABEL_TASK_ID, 'unknown')}, "
                f"framework {labels.get(LABEL_FRAMEWORK_ID, 'unknown')}, {container.get('Status', '')})"
            )
            if not options.docker_kill_orphans:
                logger.warning("Leaving orphaned container %s (--no-docker_kill_orphans)", description)
                continue
            try:
                session.call(lambda api, id=container["Id"]: api.remove_container(id, v=True, force=True), 30)
            except docker.errors.NotFound:
                pass  # gone already
            except docker.errors.APIError as error:
                logger.error("Could not remove orphaned container %s: %s", description, error_text(error))
                continue
            cleaned.append(description)
        return cleaned

    # executor side

    async def run(self, run: ExecutorRun) -> Termination:
        session = self.session()
        try:
            spec = container_spec(run.task, _identity(run), str(run.sandbox), run.options)
        except DockerTaskError as error:
            return Termination("TASK_ERROR", str(error), reason="REASON_TASK_INVALID")
        for stream in ("stdout", "stderr"):  # there from the start, as in every Mesos sandbox
            (run.sandbox / stream).touch()
        failure = _launch_without_dockerd(run)
        if failure is not None:
            return failure
        existing = await in_thread(self._inspect, session, spec.name)
        if existing is not None and _started(existing):
            logger.info("Re-attaching to container %s", spec.name)
        elif existing is None and _reported_running(run):
            # The task ran, and its container is gone: starting it again would run the task twice.
            return _termination(None, self._killed(run))
        else:
            failure = await self._launch(run, session, spec, created=existing is not None)
            if failure is not None:
                return failure
            existing = await in_thread(self._inspect, session, spec.name)
        return await self._watch(run, session, spec, existing)

    async def _launch(
        self, run: ExecutorRun, session: DockerSession, spec: ContainerSpec, created: bool
    ) -> Termination | None:
        """Get the image, create the container (unless an earlier executor of the run did) and start it;
        a Termination when that cannot or need not happen."""
        killed = Termination("TASK_KILLED", "Killed before the container was started")
        if self._killed(run):
            await in_thread(self._remove, session, spec.name)
            return killed
        if not created:
            failure = await self._ensure_image(session, spec)
            if failure is not None:
                return failure
            if self._killed(run):
                return killed
        try:
            await in_thread(self._create_and_start, session, spec)
        except (docker.errors.APIError, DockerUnavailable) as error:
            await in_thread(self._remove, session, spec.name)
            return _launch_failure(f"Failed to start container {spec.name} (image '{spec.image}'): {error_text(error)}")
        return None

    async def _watch(
        self, run: ExecutorRun, session: DockerSession, spec: ContainerSpec, inspection: dict | None
    ) -> Termination:
        """Copy the output, report TASK_RUNNING, wait for the end, clean up."""
        loggers = [
            asyncio.ensure_future(in_thread(follow_logs, session, spec.name, stream, run.sandbox, run.run_dir))
            for stream in ("stdout", "stderr")
        ]
        if inspection is not None and _started(inspection) and not _reported_running(run):
            run.report(
                "TASK_RUNNING",
                message=f"Container {spec.name} is running",
                container_status=container_status(run, [], network_infos=_addresses(inspection, spec, run.options)),
            )
        if self._killed(run):  # a kill that came while the container was being started
            await self._stop(session, spec.name, self._kill_grace[run.container_id])
        state = await in_thread(self._wait, session, spec.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*loggers, return_exceptions=True), LOG_DRAIN_SECONDS)
        termination = _termination(state, self._killed(run))
        await in_thread(self._remove, session, spec.name)
        return termination

    async def kill(self, run: ExecutorRun, grace_period: float) -> None:
        self._kill_grace[run.container_id] = grace_period
        await self._stop(self.session(), container_name(run.container_id), grace_period)

    def _killed(self, run: ExecutorRun) -> bool:
        return run.container_id in self._kill_grace

    # executor side, for health checks: Mesos runs them in the container's namespaces. Each call to dockerd
    # is tried once (give_up_after 0): a check does not wait for dockerd to come back, it fails.

    async def run_check_command(self, run: ExecutorRun, command: dict) -> int:
        """A `docker exec` in the task's container: the check sees the container's filesystem, processes
        and environment (plus the check's own variables), as Mesos's COMMAND checks of Docker tasks do."""
        session = self.session()
        name = container_name(run.container_id)
        try:
            exec_id = await in_thread(self._start_exec, session, name, command)
        except docker.errors.APIError as error:  # e.g. no such executable, or the container has stopped
            raise RuntimeError(f"docker exec in {name} failed: {error_text(error)}") from None
        try:
            return await self._exit_status(session, exec_id)
        except BaseException:  # timed out (cancelled) or dockerd gone: the check must not live on
            with contextlib.suppress(Exception):
                await asyncio.shield(in_thread(self._kill_exec, session, exec_id))
            raise

    async def check_address(self, run: ExecutorRun, port: int) -> str:
        """Mesos checks `port` from inside the container's network namespace. For a HOST task that is the
        host's loopback; a BRIDGE or USER task listens on its own address, with the port as the task binds
        it (the container port, not a mapped one: Marathon puts the container port in such checks)."""
        if task_network(run.task) not in ("BRIDGE", "USER"):
            return LOOPBACK
        name = container_name(run.container_id)
        inspection = await in_thread(self.session().call, lambda api: api.inspect_container(name), 0)
        address = _container_ipv4(inspection)
        if address is None:
            raise RuntimeError(f"container {name} has no IPv4 address")
        return address

    @staticmethod
    async def _exit_status(session: DockerSession, exec_id: str) -> int:
        """The exit status of a started exec, once it has ended."""
        delay = CHECK_FIRST_POLL_SECONDS
        while True:
            state = await in_thread(session.call, lambda api: api.exec_inspect(exec_id), 0)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            await asyncio.sleep(delay)
            delay = min(delay * 2, CHECK_MAX_POLL_SECONDS)

    async def _stop(self, session: DockerSession, name: str, grace_period: float) -> None:
        seconds = max(0, math.ceil(grace_period))

        def stop(api: docker.APIClient) -> None:
            api.stop(name, timeout=seconds)

        # NotFound: not created yet (run() sees the kill before it creates it) or gone already.
        with contextlib.suppress(docker.errors.NotFound):
            await in_thread(session.call, stop, seconds + LAUNCH_RETRY_SECONDS)

    async def _ensure_image(self, session: DockerSession, spec: ContainerSpec) -> Termination | None:
        present = await in_thread(self._image_present, session, spec.image)
        if present and not spec.force_pull:
            return None
        try:
            await asyncio.wait_for(in_thread(self._pull, session, spec.image), PULL_TIMEOUT_SECONDS)
        except (TimeoutError, docker.errors.APIError, DockerUnavailable, PullFailed) as error:
            reason = "timed out" if isinstance(error, TimeoutError) else error_text(error)
            if present:
                return _launch_failure(f"Failed to pull image '{spec.image}' (force_pull_image is set): {reason}")
            return _launch_failure(f"Image '{spec.image}' is not on this agent and could not be pulled: {reason}")
        return None

    # blocking helpers, run in threads

    @staticmethod
    def _inspect(session: DockerSession, name: str) -> dict | None:
        try:
            return session.call(lambda api: api.inspect_container(name), LAUNCH_RETRY_SECONDS)
        except docker.errors.NotFound:
            return None

    @staticmethod
    def _image_present(session: DockerSession, image: str) -> bool:
        try:
            session.call(lambda api: api.inspect_image(image), LAUNCH_RETRY_SECONDS)
        except docker.errors.NotFound:
            return False
        return True

    @staticmethod
    def _pull(session: DockerSession, image: str) -> None:
        repository, tag = parse_repository_tag(image)

        def pull(api: docker.APIClient) -> None:
            # A pull reports most failures inside its progress stream, not as an HTTP error.
            for progress in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if "error" in progress:
                    raise PullFailed(progress.get("error"))

        session.call(pull, LAUNCH_RETRY_SECONDS)

    @staticmethod
    def _create_and_start(session: DockerSession, spec: ContainerSpec) -> None:
        def create(api: docker.APIClient) -> None:
            host_config = api.create_host_config(**spec.host)
            try:
                api.create_container(spec.image, name=spec.name, host_config=host_config, detach=True, **spec.create)
            except docker.errors.APIError as error:
                # A retry after a dropped connection finds the container it created the first time.
                if error.status_code != 409:
                    raise

        session.call(create, LAUNCH_RETRY_SECONDS)
        session.call(lambda api: api.start(spec.name), LAUNCH_RETRY_SECONDS)

    @staticmethod
    def _start_exec(session: DockerSession, name: str, command: dict) -> str:
        """Start a check command in the container, detached (its output is not kept); the exec's id."""
        variables = (command.get("environment") or {}).get("variables") or []
        environment = {variable["name"]: str(variable.get("value", "")) for variable in variables}
        created = session.call(
            lambda api: api.exec_create(
                name, check_command_argv(command), stdout=False, stderr=False, environment=environment
            ),
            0,
        )
        session.call(lambda api: api.exec_start(created["Id"], detach=True), 0)
        return created["Id"]

    @staticmethod
    def _kill_exec(session: DockerSession, exec_id: str) -> None:
        """Kill a check command that still runs. dockerd cannot stop an exec, so its process is killed by the
        host pid dockerd reports, looked up just before (one try: dockerd may be the reason it hangs)."""
        state = session.call(lambda api: api.exec_inspect(exec_id), 0)
        if state.get("Running") and state.get("Pid"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(state["Pid"]), signal.SIGKILL)

    @staticmethod
    def _wait(session: DockerSession, name: str) -> dict | None:
        """The container's final State, waiting through dockerd restarts; None when it is gone."""
        while True:
            try:
                session.call(lambda api: api.wait(name))
                state = session.call(lambda api: api.inspect_container(name)["State"])
            except docker.errors.NotFound:
                return None
            if not state.get("Running"):
                return state

    @staticmethod
    def _remove(session: DockerSession, name: str) -> None:
        try:
            session.call(lambda api: api.remove_container(name, v=True, force=True), LAUNCH_RETRY_SECONDS)
        except (docker.errors.APIError, DockerUnavailable) as error:
            if not isinstance(error, docker.errors.NotFound):
                logger.warning("Could not remove container %s: %s", name, error_text(error))
