"""`mesos-execute`: run one task on the cluster through the v1 scheduler API and report its status updates."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import shlex
import socket
import sys
from typing import Any

from mesolite.flags import Flag, FlagError, FlagSet, duration
from mesolite.protocol.v1 import is_terminal
from mesolite.resources import ResourceError, Resources, parse_resources
from mesolite.scheduler.client import (
    FrameworkRemoved,
    SchedulerCallError,
    SchedulerClient,
    SchedulerError,
)
from mesolite.security.credentials import CredentialsError, load_secret
from mesolite.security.tls import TlsError
from mesolite.zookeeper.detector import parse_master_location

EXIT_FINISHED = 0
EXIT_TASK_NOT_FINISHED = 1
EXIT_USAGE = 2
EXIT_MASTER_REFUSED = 3

DESCRIPTION = """\
Launch one task (a shell command, or a Docker image) and follow it to a terminal state.

Exit status (unlike Mesos's mesos-execute, which exits 0 even when the task failed):
  0  the task reached TASK_FINISHED
  1  the task reached any other terminal state (TASK_FAILED, TASK_KILLED, TASK_LOST, TASK_ERROR, ...)
  2  bad flags
  3  the master refused the framework or one of its calls (or sent an ERROR event), including
     credentials it refused (401) and a role its ACLs refuse to the principal (403)

Authentication and TLS, as with Mesos's mesos-execute:
  --principal=P --secret=S        HTTP Basic towards the master (--authenticate_http_frameworks); --secret may
                                  also be file:///path or /path of a file holding the secret (kept off `ps`;
                                  an inline secret therefore cannot start with '/')
  LIBPROCESS_SSL_ENABLED=true     reach a host:port master over https (also when --master=https://host:port,
                                  or when the master's MasterInfo in ZooKeeper advertises https)
  LIBPROCESS_SSL_CA_FILE=ca.pem   verify the master's certificate against this CA

Example:
  mesos-execute --master=$(mesos-resolve $(cat /etc/mesos/zk)) --name=cluster-test --command="sleep 60"
"""

FLAGS = FlagSet(
    service_name="mesos-execute",
    env_prefix="MESOS_",
    description=DESCRIPTION,
    flags=[
        Flag("master", str, None, "the master: host:port, zk://host:port/path or file:///path (required)"),
        Flag("name", str, None, "name of the task, also its task id (required)"),
        Flag("command", str, None, "shell command to run (required unless --docker_image)"),
        Flag("shell", bool, True, "run --command through /bin/sh -c; --no-shell runs it as argv"),
        Flag("env", str, None, 'environment of the command as a JSON object: {"NAME": "value"}'),
        Flag("resources", str, "cpus:1;mem:128", "resources of the task, in Mesos syntax"),
        Flag("docker_image", str, None, "run the task in this Docker image (with the docker containerizer)"),
        Flag("containerizer", str, None, "'docker' or 'mesos' (default: docker with --docker_image, else mesos)"),
        Flag("role", str, "*", "role of the framework"),
        Flag("framework_name", str, "mesos-execute instance", "name of the framework"),
        Flag("kill_after", duration, None, "kill the task this long after it started (e.g. 10secs, 2mins)"),
        Flag("checkpoint", bool, False, "let the task survive agent restarts (framework checkpointing)"),
        Flag("partition_aware", bool, False, "ask for TASK_UNREACHABLE rather than TASK_LOST on partitions"),
        Flag("principal", str, None, "principal for HTTP basic authentication with the master"),
        Flag("secret", str, None, "secret for --principal, or file:///path (or /path) of a file holding it"),
        Flag("content_type", str, "json", "content type of the scheduler API (only 'json' is supported)"),
        Flag("verbose", bool, False, "log the scheduler client's activity to stderr"),
    ],
)


class UsageError(ValueError):
    pass


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if any(argument in {"-h", "--help"} for argument in arguments):
        print(FLAGS.help_text())
        return EXIT_FINISHED
    try:
        flags = FLAGS.parse(arguments)
        task_template = build_task(flags)
        secret = read_secret(flags.secret)
    except (FlagError, UsageError, ResourceError) as error:
        print(f"mesos-execute: {error}\n\nRun `mesos-execute --help` for the flags.", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if flags.verbose else logging.ERROR,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        execution = Execution(flags, task_template, secret)
    except TlsError as error:
        print(f"mesos-execute: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(execution.run())
    except KeyboardInterrupt:
        return EXIT_TASK_NOT_FINISHED


def build_task(flags: Any) -> dict:
    """The TaskInfo to launch, without `agent_id` and resources (those come from the offer)."""
    missing = [name for name in ("master", "name") if not getattr(flags, name)]
    if not flags.command and not flags.docker_image:
        missing.append("command")
    if missing:
        raise UsageError(f"missing required flag{'s' if len(missing) > 1 else ''}: --{', --'.join(missing)}")
    try:
        parse_master_location(flags.master)
    except ValueError as error:
        raise UsageError(f"--master: {error}") from None
    if flags.content_type.lower() != "json":
        raise UsageError(f"--content_type={flags.content_type}: only 'json' is supported")
    if bool(flags.principal) != bool(flags.secret):
        raise UsageError("--principal and --secret go together")
    task: dict[str, Any] = {"name": flags.name, "task_id": {"value": flags.name}}
    command: dict[str, Any] = {"shell": flags.shell}
    if flags.command:
        if flags.shell:
            command["value"] = flags.command
        else:
            argv = shlex.split(flags.command)
            if not argv:
                raise UsageError("--command is empty")
            command["value"], command["arguments"] = argv[0], argv
    elif not flags.docker_image:
        raise UsageError("--command is required")
    if flags.env:
        command["environment"] = {"variables": parse_environment(flags.env)}
    task["command"] = command
    containerizer = flags.containerizer or ("docker" if flags.docker_image else "mesos")
    if containerizer not in {"docker", "mesos"}:
        raise UsageError(f"--containerizer={containerizer}: expected 'docker' or 'mesos'")
    if flags.docker_image:
        if containerizer != "docker":
            raise UsageError("--docker_image needs --containerizer=docker (the mesos containerizer runs no images)")
        task["container"] = {"type": "DOCKER", "docker": {"image": flags.docker_image, "network": "HOST"}}
        if not flags.command:
            command["shell"] = False  # run the image's own entrypoint
    # Parsed here so that a typo is a usage error, not a task that never launches.
    task["_requested"] = parse_resources(flags.resources)
    if task["_requested"].is_empty():
        raise UsageError(f"--resources='{flags.resources}' asks for nothing")
    return task


def read_secret(value: str | None) -> str | None:
    """`--secret`: the secret itself, or `/path` of a file holding it (kept out of the process list and the shell
    history). `file:///path` works too: every flag reads such a value from its file (mesolite.flags, as Mesos).
    So a secret given inline cannot start with '/'; one that does goes in a file."""
    if value is None or not value.startswith("/"):
        return value
    try:
        return load_secret(value)
    except CredentialsError as error:
        raise UsageError(f"--secret: {error}") from None


def parse_environment(text: str) -> list[dict[str, str]]:
    try:
        variables = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--env is not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(variables, dict):
        raise UsageError('--env must be a JSON object such as {"NAME": "value"}')
    return [{"name": str(name), "value": str(value)} for name, value in variables.items()]


class Execution:
    """One run of mesos-execute: subscribe, launch on the first offer that fits, report until terminal."""

    def __init__(self, flags: Any, task: dict, secret: str | None = None) -> None:
        self.flags = flags
        self.requested: Resources = task.pop("_requested")
        self.task = task
        self.launched_on: str | None = None
        self.exit_code: int | None = None
        self.kill_timer: asyncio.TimerHandle | None = None
        self.kill_request: asyncio.Task | None = None
        # Set once the outcome is known: from then on events are ignored and no call is made (the master
        # removes the framework at our TEARDOWN and would refuse them).
        self.finished = False
        framework: dict[str, Any] = {
            "user": getpass.getuser(),
            "name": flags.framework_name,
            "hostname": socket.gethostname(),
            "checkpoint": flags.checkpoint,
            "roles": [flags.role],
            "capabilities": [{"type": "MULTI_ROLE"}],
            "failover_timeout": 0.0,
        }
        if flags.partition_aware:
            framework["capabilities"].append({"type": "PARTITION_AWARE"})
        # The client sets FrameworkInfo.principal and sends the credentials with every request.
        self.client = SchedulerClient(
            flags.master, framework, self.on_event, principal=flags.principal or None, secret=secret
        )

    async def run(self) -> int:
        try:
            await self.client.run()
        except FrameworkRemoved:
            # The ERROR event was printed as it came. A failover of the master is no error: the client
            # follows the new leader, and SUBSCRIBED reconciles the task.
            return EXIT_MASTER_REFUSED
        except SchedulerError as error:
            print(f"mesos-execute: {error}", file=sys.stderr)
            return EXIT_MASTER_REFUSED
        return EXIT_MASTER_REFUSED if self.exit_code is None else self.exit_code

    async def on_event(self, event: dict) -> None:
        if self.finished:
            return
        try:
            await self.dispatch(event)
        except SchedulerCallError as error:
            await self.on_call_error(error)

    async def on_call_error(self, error: SchedulerCallError) -> None:
        """A call the master did not take. Transient trouble (no answer, a master failing over) heals: the
        client subscribes again and we reconcile. A refusal (4xx) is final: say why and exit."""
        if self.finished:
            return
        if error.status == 0 or error.status >= 500 or error.status in (307, 503):
            print(f"mesos-execute: {error}; carrying on", file=sys.stderr, flush=True)
            return
        print(f"mesos-execute: {error}", file=sys.stderr, flush=True)
        self.finished = True
        self.exit_code = EXIT_MASTER_REFUSED
        await self.client.stop()

    async def dispatch(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            print(f"Subscribed with ID {self.client.framework_id}", flush=True)
            if self.launched_on is not None:
                await self.client.reconcile([(self.task["task_id"]["value"], self.launched_on)])
        elif kind == "OFFERS":
            await self.on_offers(event.get("offers", {}).get("offers", []))
        elif kind == "UPDATE":
            await self.on_update(event["update"]["status"])
        elif kind == "ERROR":
            print(f"Received an ERROR event: {event.get('error', {}).get('message', '')}", flush=True)
            self.finished = True
            self.exit_code = EXIT_MASTER_REFUSED
        elif kind == "FAILURE":
            failure = event.get("failure", {})
            if "executor_id" not in failure:
                print(f"Received a FAILURE event for agent {failure.get('agent_id', {}).get('value')}", flush=True)

    async def on_offers(self, offers: list[dict]) -> None:
        unused = []
        for offer in offers:
            offer_id = offer["id"]["value"]
            if self.launched_on is not None or not self.fits(offer):
                unused.append(offer_id)
                continue
            agent_id = offer["agent_id"]["value"]
            role = (offer.get("allocation_info") or {}).get("role", self.flags.role)
            task = {
                **self.task,
                "agent_id": {"value": agent_id},
                "resources": self.requested.to_protobuf_json(allocation_role=role),
            }
            await self.client.launch(offer_id, [task])
            self.launched_on = agent_id
            print(f"Submitted task '{self.flags.name}' to agent '{agent_id}'", flush=True)
        if unused:
            # Once launched, we need no more offers for a long while.
            filters = {"refuse_seconds": 3600.0} if self.launched_on else None
            await self.client.decline(unused, filters)

    def fits(self, offer: dict) -> bool:
        try:
            offered = Resources.from_protobuf_json(offer.get("resources", []))
        except ResourceError:
            return False
        return offered.contains(self.requested)

    async def on_update(self, status: dict) -> None:
        state = status.get("state", "TASK_UNKNOWN")
        task_id = status.get("task_id", {}).get("value", "")
        lines = [f"Received status update {state} for task '{task_id}'"]
        if status.get("message"):
            lines.append(f"  message: '{status['message']}'")
        if status.get("source"):
            lines.append(f"  source: {status['source']}")
        if status.get("reason"):
            lines.append(f"  reason: {status['reason']}")
        if "healthy" in status:
            lines.append(f"  healthy?: {str(status['healthy']).lower()}")
        print("\n".join(lines), flush=True)
        ours = task_id == self.task["task_id"]["value"]
        if ours and is_terminal(state):
            await self.finish(state, status)
            return
        await self.client.acknowledge(status)
        if ours and state == "TASK_RUNNING" and self.flags.kill_after and self.kill_timer is None:
            self.kill_timer = asyncio.get_running_loop().call_later(self.flags.kill_after, self.kill_task)

    async def finish(self, state: str, status: dict) -> None:
        """The task reached `state` (terminal): that decides the exit status, whatever happens next."""
        self.finished = True
        self.exit_code = EXIT_FINISHED if state == "TASK_FINISHED" else EXIT_TASK_NOT_FINISHED
        if self.kill_timer is not None:
            self.kill_timer.cancel()
        # Acknowledge (the agent stops re-sending the update) and tear the framework down (the master
        # forgets it at once). A refusal now changes nothing, so it is only logged (with --verbose).
        try:
            await self.client.acknowledge(status)
            await self.client.teardown()
        except SchedulerCallError as error:
            logging.getLogger(__name__).warning("ending the framework: %s", error)
            await self.client.stop()

    def kill_task(self) -> None:
        print(f"Killing task '{self.flags.name}' after {self.flags.kill_after:g}secs (--kill_after)", flush=True)
        self.kill_request = asyncio.get_running_loop().create_task(self.send_kill())

    async def send_kill(self) -> None:
        if self.finished:
            return
        try:
            await self.client.kill(self.task["task_id"]["value"], self.launched_on)
        except SchedulerCallError as error:
            await self.on_call_error(error)


if __name__ == "__main__":
    sys.exit(main())
