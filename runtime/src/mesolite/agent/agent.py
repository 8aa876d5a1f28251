"""The agent itself: its tasks (one executor run each), its reactions to the master, and its recovery.

State changes go through here: a task is launched (`run_task`), its executor's events become status
updates (`follow_runs`), it is killed (`kill_task`), acknowledged to completion (`_on_stream_done`),
or recovered from the checkpoint after a restart (`recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesolite import MESOS_COMPATIBLE_VERSION
from mesolite.agent import processes
from mesolite.agent.checkpoint import (
    RunPaths,
    WorkDirectory,
    open_for_append,
    read_json,
    read_json_lines,
    write_atomically,
    write_json,
    write_symlink,
)
from mesolite.agent.containerizers import UnavailableContainerizer, load_containerizers, pick_containerizer
from mesolite.agent.containerizers.base import AgentOptions
from mesolite.agent.containerizers.mesos import task_user
from mesolite.agent.files import SandboxUsers
from mesolite.agent.status_updates import StatusUpdateManager, UpdateStream, read_stream
from mesolite.agent.task_validation import (
    InvalidField,
    framework_problem,
    grace_period_seconds,
    id_of,
    id_problem,
    task_problem,
)
from mesolite.ids import new_container_id
from mesolite.protocol.v1 import is_terminal, task_status, value_of
from mesolite.resources import Resources

log = logging.getLogger("mesolite.agent")

FOLLOW_INTERVAL_SECONDS = 0.2
DEFAULT_KILL_GRACE_SECONDS = 3.0  # Mesos's default when neither the kill nor the task has a kill policy
MAX_COMPLETED_TASKS_PER_FRAMEWORK = 150  # Mesos's max_completed_executors_per_framework
RECOVER_TIMEOUT_SECONDS = 60.0  # how long one containerizer may take to clean up orphans
# New executors started for one run whose executors keep dying (containerizers that re-attach only);
# beyond that the run fails as any other whose executor died.
MAX_EXECUTOR_RESTARTS = 3
# An invalid task is still answered with TASK_ERROR under its id, unless the id is absurdly long.
MAX_ECHOED_ID_CHARACTERS = 4096


class AgentConfigurationError(Exception):
    """The agent cannot start as configured (the message says what to do)."""


@dataclass
class TaskRun:
    """One task and its executor run."""

    paths: RunPaths
    task: dict
    framework: dict
    containerizer: str
    stream: UpdateStream
    executor: tuple[int, int] | None = None  # (pid, start time) once the executor wrote its pid file
    spawned_at: float = field(default_factory=time.time)
    spawn_failed: bool = False
    kill_signaled: bool = False
    executor_restarts: int = 0  # executors started after the first one died (this agent process)
    group: str | None = None  # the executor id of its task group (LAUNCH_GROUP), None for a lone task

    @property
    def framework_id(self) -> str:
        return self.framework["id"]["value"]

    @property
    def task_id(self) -> str:
        return self.task["task_id"]["value"]

    @property
    def executor_id(self) -> str:
        return self.paths.meta.parent.parent.name

    @property
    def container_id(self) -> str:
        return self.paths.container_id

    @property
    def state(self) -> str:
        return self.stream.latest_state or "TASK_STAGING"

    @property
    def terminal(self) -> bool:
        return is_terminal(self.state)

    @property
    def resources(self) -> Resources:
        return Resources.from_protobuf_json(self.task.get("resources") or [])


def _executor_problem(executor: Any) -> str | None:
    try:
        id_of(executor.get("executor_id") if isinstance(executor, dict) else None, "executor.executor_id")
    except InvalidField as error:
        return str(error)
    return None


def read_boot_id(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise AgentConfigurationError(f"cannot read the boot id from {path}: {error.strerror}") from None


def kill_grace_seconds(kill_policy: dict | None, task: dict) -> float:
    """The grace period of a kill: the KILL's policy, else the task's, else Mesos's 3 seconds. A malformed
    policy counts as none (the task's was checked at launch; a KILL's is the master's to validate)."""
    for policy, where in ((kill_policy, "the kill's kill_policy"), (task.get("kill_policy"), "the task's kill_policy")):
        try:
            seconds = grace_period_seconds(policy)
        except InvalidField as error:
            log.warning("ignoring %s: %s", where, error)
            continue
        if seconds is not None:
            return seconds
    return DEFAULT_KILL_GRACE_SECONDS


class Agent:
    def __init__(
        self,
        options: AgentOptions,
        resources: Resources,
        attributes: list[dict],
        port: int,
        *,
        recover_mode: str = "reconnect",
        status_update_retry_interval: float = 10.0,
        executor_registration_timeout: float = 60.0,
        advertised_ip: str | None = None,
        scheme: str = "http",
    ):
        self.options = options
        # How the master and the UI reach this agent's HTTP API: https when it serves TLS (LIBPROCESS_SSL_ENABLED).
        self.scheme = scheme
        # The address the operator told us to be reached at (--advertise_ip, else --ip). Without one the
        # master takes the address this agent connects from, which beats a guess from the hostname.
        self.advertised_ip = advertised_ip
        self.work = WorkDirectory(options.work_dir)
        self.resources = resources
        self.attributes = attributes
        self.port = port
        self.recover_mode = recover_mode
        self.executor_registration_timeout = executor_registration_timeout
        self.containerizers = load_containerizers(options.containerizers, options)
        self.boot_id = read_boot_id(options.boot_id_path)
        self.agent_id: str | None = None
        self.master_info: dict | None = None
        self.master_address: str | None = None
        self.registered = False
        self.started_at = time.time()
        self.runs: dict[tuple[str, str], TaskRun] = {}
        self.completed: dict[str, deque[TaskRun]] = defaultdict(lambda: deque(maxlen=MAX_COMPLETED_TASKS_PER_FRAMEWORK))
        self.frameworks: dict[str, dict] = {}
        self.counters: dict[str, int] = defaultdict(int)
        self.link = None  # set by the service: a registration.MasterLink
        self.updates = StatusUpdateManager(
            self._send_update, retry_interval=status_update_retry_interval, on_stream_done=self._on_stream_done
        )
        self._background: set[asyncio.Task] = set()

    # -- identity --------------------------------------------------------------------------------

    def agent_info(self) -> dict:
        info = {
            "hostname": self.options.hostname,
            "port": self.port,
            "resources": self.resources.to_protobuf_json(),
            "attributes": self.attributes,
        }
        if self.advertised_ip:
            info["ip"] = self.advertised_ip
        if self.agent_id:
            info["id"] = {"value": self.agent_id}
        return info

    def subscribe_body(self) -> dict:
        live = [run for run in self.runs.values()]
        framework_ids = {run.framework_id for run in live}
        return {
            "type": "REREGISTER" if self.agent_id else "REGISTER",
            "agent_info": self.agent_info(),
            "boot_id": self.boot_id,
            "version": MESOS_COMPATIBLE_VERSION,
            "tasks": [self.task_json(run) for run in live],
            "frameworks": [self.frameworks[framework_id] for framework_id in sorted(framework_ids)],
            "executors": [],
            # Mesos's AgentInfo has no scheme (libprocess's TLS setting is cluster-wide): the master is told here.
            **({"scheme": self.scheme} if self.scheme != "http" else {}),
        }

    def task_json(self, run: TaskRun) -> dict:
        """A v1 `Task` (what REREGISTER and /state describe)."""
        task = run.task
        body = {
            "task_id": task["task_id"],
            "name": task.get("name", ""),
            "framework_id": {"value": run.framework_id},
            "executor_id": {"value": run.executor_id},
            "agent_id": {"value": self.agent_id or task.get("agent_id", {}).get("value", "")},
            "state": run.state,
            "resources": task.get("resources") or [],
            "statuses": run.stream.history[-10:],
        }
        if run.stream.pending:
            head = run.stream.pending[0]["status"]
            body["status_update_state"] = head["state"]
            body["status_update_uuid"] = head.get("uuid")
        for optional in ("labels", "discovery", "container", "health_check", "kill_policy"):
            if optional in task:
                body[optional] = task[optional]
        return body

    # -- recovery --------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Pick up where the last agent process stopped (see docs/architecture.md, Recovery)."""
        self.work.meta.mkdir(parents=True, exist_ok=True)
        checkpointed_id = self.work.latest_agent_id()
        previous_boot = self.work.boot_id.read_text().strip() if self.work.boot_id.exists() else None
        if checkpointed_id and previous_boot is not None and previous_boot != self.boot_id:
            log.warning(
                "the host rebooted since agent %s ran (boot id %s, now %s): registering as a new agent",
                checkpointed_id,
                previous_boot,
                self.boot_id,
            )
            self.work.forget_latest_agent()
            checkpointed_id = None
        if checkpointed_id:
            self._check_agent_info(checkpointed_id)
            self.agent_id = checkpointed_id
            self._recover_runs(checkpointed_id)
            if self.recover_mode == "cleanup":
                log.warning("--recover=cleanup: killing %d tasks and registering as a new agent", len(self.runs))
                self._abandon_all_runs("the agent was restarted with --recover=cleanup")
                self.agent_id = None
                self.work.forget_latest_agent()
        write_atomically(self.work.boot_id, self.boot_id + "\n")
        # Orphans are cleaned in the background: a containerizer whose daemon is down (dockerd) must not keep
        # the agent from serving and re-registering its tasks.
        self._background_task(self._clean_orphans(at_start=True))
        if self.agent_id:
            log.info(
                "recovered agent %s: %d live tasks, %d unacknowledged status updates",
                self.agent_id,
                len(self.runs),
                self.updates.pending_count(),
            )

    def _check_agent_info(self, agent_id: str) -> None:
        try:
            checkpointed = read_json(self.work.agent_info(agent_id))
        except (OSError, ValueError):
            return
        before = Resources.from_protobuf_json(checkpointed.get("resources") or [])
        if before != self.resources or (checkpointed.get("attributes") or []) != self.attributes:
            raise AgentConfigurationError(
                f"incompatible agent info: agent {agent_id} was checkpointed with resources '{before}' and "
                f"attributes {checkpointed.get('attributes') or []}, now '{self.resources}' and {self.attributes}. "
                f"To register as a new agent (its tasks are then lost), remove {self.work.latest_agent} "
                "and start the agent again."
            )

    def _recover_runs(self, agent_id: str) -> None:
        for paths in self.work.runs_of(agent_id):
            try:
                info = read_json(paths.task_info)
                framework_id = info["framework"]["id"]["value"]
                task_id = info["task"]["task_id"]["value"]
            except (OSError, ValueError, KeyError, TypeError) as error:
                self.counters["recovery_errors"] += 1
                log.error("cannot recover the run in %s: %s", paths.meta, error)
                continue
            stream = read_stream(framework_id, task_id, paths.updates)
            run = TaskRun(
                paths,
                info["task"],
                info["framework"],
                info["containerizer"],
                stream,
                executor=processes.read_identity(paths.executor_pid),
                group=info.get("task_group"),
            )
            with contextlib.suppress(OSError):
                run.spawned_at = paths.task_info.stat().st_mtime
            self.frameworks[framework_id] = info["framework"]
            if run.terminal and not stream.pending:
                self.completed[framework_id].append(run)
                continue
            self.runs[(framework_id, task_id)] = run
            self.updates.add_stream(stream)

    # -- the master ------------------------------------------------------------------------------

    async def on_registered(self, registered: dict, address: str) -> None:
        agent_id = value_of(registered, "agent_id")
        if not agent_id:
            raise ValueError("REGISTERED without agent_id")
        if self.agent_id != agent_id:
            if self.agent_id:
                log.warning("the master gave id %s instead of %s: this is a new agent", agent_id, self.agent_id)
                self._abandon_all_runs("the master registered this agent under a new id")
            self.agent_id = agent_id
            self.work.set_latest_agent_id(agent_id)
            write_json(self.work.agent_info(agent_id), self.agent_info())
            log.info("registered with master %s as agent %s", address, agent_id)
        else:
            log.info("re-registered with master %s as agent %s", address, agent_id)
        self.master_info = registered.get("master_info")
        self.master_address = address
        self.registered = True
        self.updates.set_connected(True)

    async def on_disconnected(self) -> None:
        self.registered = False
        self.updates.set_connected(False)
        log.info("disconnected from master %s", self.master_address)

    async def on_refused(self, message: str) -> None:
        """The master removed this agent: its tasks were reported lost, so kill them and start afresh."""
        self._abandon_all_runs(f"the master refused this agent: {message}")
        self.agent_id = None
        self.work.forget_latest_agent()

    async def on_event(self, event: dict) -> None:
        """One event of the master's stream. Malformed fields are logged and the event ignored, or, where a
        task is named, answered with TASK_ERROR: nothing the master sends may stop the agent."""
        kind = event.get("type")
        if not isinstance(kind, str):
            log.warning("ignoring an event without a type from the master: %.300s", event)
            return
        body = event.get(kind.lower())
        if body is None:
            body = {}
        if not isinstance(body, dict):
            log.warning("ignoring event %s from the master: '%s' is not an object", kind, kind.lower())
            return
        if kind == "PING":
            self._background_task(self.link.call({"type": "PONG"}, self.agent_id))
        elif kind == "RUN_TASK":
            await self.run_task(body.get("framework"), body.get("task"))
        elif kind == "RUN_TASK_GROUP":
            task_group = body.get("task_group")
            tasks = task_group.get("tasks") if isinstance(task_group, dict) else None
            await self.run_task_group(body.get("framework"), body.get("executor"), tasks)
        elif kind == "KILL_TASK":
            kill_policy = body.get("kill_policy")
            self.kill_task(value_of(body, "framework_id"), value_of(body, "task_id"), kill_policy)
        elif kind == "ACKNOWLEDGE":
            uuid = body.get("uuid")
            self.acknowledge(value_of(body, "framework_id"), value_of(body, "task_id"), uuid)
        elif kind == "SHUTDOWN_FRAMEWORK":
            self.shutdown_framework(value_of(body, "framework_id"))
        elif kind == "UPDATE_FRAMEWORK":
            # The framework failed over to a new scheduler: what it did not acknowledge goes out again now.
            self.updates.resume(value_of(body, "framework_id") or "")
        elif kind == "RECONCILE":
            tasks = body.get("tasks")
            if tasks is not None and not isinstance(tasks, list):
                log.warning("ignoring RECONCILE from the master: 'tasks' is not an array")
                return
            await self.reconcile(value_of(body, "framework_id"), tasks or [])
        elif kind == "SHUTDOWN":
            message = body.get("message")
            message = message if isinstance(message, str) and message else "SHUTDOWN"
            log.warning("the master shut this agent down: %s", message)
            await self.on_refused(message)
        else:
            log.warning("ignoring unknown event %.100s from the master", kind)

    async def _send_update(self, update: dict) -> bool:
        if self.link is None or not self.agent_id:
            return False
        return await self.link.call({"type": "STATUS_UPDATE", "status_update": update}, self.agent_id)

    # -- tasks -----------------------------------------------------------------------------------

    async def run_task(self, framework: Any, task: Any) -> None:
        problem = framework_problem(framework) or task_problem(task)
        if problem is not None:
            self._refuse_invalid(framework, [task], problem)
            return
        framework_id = framework["id"]["value"]
        task_id = task["task_id"]["value"]
        if (framework_id, task_id) in self.runs:
            log.warning("ignoring RUN_TASK for task %s of framework %s: it already runs here", task_id, framework_id)
            return
        self.frameworks[framework_id] = framework
        containerizer, refusal = self._pick_containerizer(task)
        try:
            if refusal is not None:
                self._refuse_task(framework, task, *refusal)
            else:
                self._launch(framework, task, containerizer.name)
        except OSError as error:
            self._fail_unrecorded(framework_id, [task_id], f"the agent cannot checkpoint the task: {error}")

    async def run_task_group(self, framework: Any, executor: Any, tasks: Any) -> None:
        """A task group (LAUNCH_GROUP), run the simple way: each task as a command task of its own (its own
        executor process and container), all under the group's executor id. Mesos's default executor is not
        emulated beyond its kill policy: when a task of the group fails or is killed, the others are killed
        (`_kill_group`). The group is launched whole or not at all."""
        if not isinstance(tasks, list) or not tasks:
            self._refuse_invalid(framework, [], "task_group.tasks must be a non-empty array")
            return
        problem = framework_problem(framework) or _executor_problem(executor)
        if problem is None:
            problem = next(
                (f"task_group.tasks[{index}]: {why}" for index, why in enumerate(map(task_problem, tasks)) if why),
                None,
            )
        if problem is None and len({task["task_id"]["value"] for task in tasks}) != len(tasks):
            problem = "task_group.tasks: task ids must be unique"
        if problem is not None:
            self._refuse_invalid(framework, tasks, problem, group=value_of(executor, "executor_id"))
            return
        framework_id = framework["id"]["value"]
        group = executor["executor_id"]["value"]
        tasks = [task for task in tasks if (framework_id, task["task_id"]["value"]) not in self.runs]
        self.frameworks[framework_id] = framework
        chosen = [self._pick_containerizer(task) for task in tasks]
        refusal = next(((task, refused) for task, (_, refused) in zip(tasks, chosen, strict=True) if refused), None)
        try:
            if refusal is not None:
                bad, (state, reason, message) = refusal
                for task in tasks:
                    if task is bad:
                        self._refuse_task(framework, task, state, reason, message, group=group)
                    else:
                        why = f"task {value_of(bad, 'task_id')} of its group cannot run: {message}"
                        self._refuse_task(framework, task, state, "REASON_TASK_GROUP_INVALID", why, group=group)
                return
            for task, (containerizer, _) in zip(tasks, chosen, strict=True):
                self._launch(framework, task, containerizer.name, group=group)
        except OSError as error:
            task_ids = [task["task_id"]["value"] for task in tasks]
            self._fail_unrecorded(framework_id, task_ids, f"the agent cannot checkpoint the task group: {error}")

    def _refuse_invalid(self, framework: Any, tasks: list, problem: str, group: str | None = None) -> None:
        """TASK_ERROR for tasks the agent cannot accept. Where the ids are valid the update is checkpointed like
        any other; where they cannot be a file name it is sent once, unrecorded (the master validates ids too)."""
        framework_id = value_of(framework, "id")
        task_ids = [value_of(task, "task_id") for task in tasks]
        log.warning("refusing task(s) %.300s of framework %.300s: %s", task_ids, framework_id, problem)
        valid_framework = framework_problem(framework) is None
        valid_group = group is None or id_problem(group, "executor_id") is None
        for task, task_id in zip(tasks, task_ids, strict=True):
            if valid_framework and valid_group and id_problem(task_id, "task_id") is None:
                if (framework_id, task_id) in self.runs:
                    continue
                self.frameworks[framework_id] = framework
                # Only the id is kept: the rest is what was wrong, and /state and REREGISTER read the task.
                name = task.get("name")
                kept = {"task_id": {"value": task_id}, "name": name if isinstance(name, str) else ""}
                try:
                    self._refuse_task(framework, kept, "TASK_ERROR", "REASON_TASK_INVALID", problem, group=group)
                    continue
                except OSError as error:
                    log.error("cannot checkpoint the refusal of task %s: %s", task_id, error)
            self.counters["invalid_tasks"] += 1
            self._send_unrecorded(framework_id, task_id, "TASK_ERROR", "REASON_TASK_INVALID", problem)
        if not tasks:
            self.counters["invalid_tasks"] += 1

    def _fail_unrecorded(self, framework_id: str, task_ids: list[str], message: str) -> None:
        log.error("tasks %s of framework %s: %s", task_ids, framework_id, message)
        self.counters["container_launch_errors"] += 1
        for task_id in task_ids:
            self._send_unrecorded(framework_id, task_id, "TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED", message)

    def _send_unrecorded(
        self, framework_id: str | None, task_id: str | None, state: str, reason: str, message: str
    ) -> None:
        """One status update without uuid (nothing to acknowledge, nothing checkpointed), sent once."""
        if not framework_id or not task_id or self.link is None or not self.agent_id:
            return
        if len(framework_id) > MAX_ECHOED_ID_CHARACTERS or len(task_id) > MAX_ECHOED_ID_CHARACTERS:
            return  # not worth echoing: the master refuses such ids before they get here
        status = task_status(
            task_id, state, agent_id=self.agent_id, source="SOURCE_AGENT", reason=reason, message=message,
            with_uuid=False,
        )  # fmt: skip
        update = {"framework_id": {"value": framework_id}, "status": status, "timestamp": time.time()}
        self._background_task(self.link.call({"type": "STATUS_UPDATE", "status_update": update}, self.agent_id))

    def _pick_containerizer(self, task: dict):
        """(the containerizer to run a task, None) or (None, (state, reason, message) to refuse it with)."""
        if "executor" in task:
            message = "custom executors are not supported: use TaskInfo.command or container.type DOCKER"
            return None, ("TASK_ERROR", "REASON_TASK_INVALID", message)
        containerizer = pick_containerizer(self.containerizers, task)
        if containerizer is None:
            wanted = (task.get("container") or {}).get("type", "MESOS")
            message = (
                f"no enabled containerizer supports container.type {wanted} "
                f"(--containerizers={','.join(self.options.containerizers)})"
            )
            return None, ("TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED", message)
        if isinstance(containerizer, UnavailableContainerizer):
            return None, ("TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED", containerizer.reason)
        try:
            problem = containerizer.validate(task, self.options)
        except Exception as error:  # a field of a type the containerizer did not expect: still the task's fault
            log.warning("the %s containerizer failed to validate a task", containerizer.name, exc_info=True)
            problem = f"invalid TaskInfo: {type(error).__name__}: {error}"[:500]
        if problem:
            return None, ("TASK_ERROR", "REASON_TASK_INVALID", problem)
        return containerizer, None

    def _launch(self, framework: dict, task: dict, containerizer: str, group: str | None = None) -> None:
        run = self._create_run(framework, task, containerizer, group)
        log.info(
            "launching task %s of framework %s in container %s (%s containerizer)%s",
            run.task_id,
            run.framework_id,
            run.container_id,
            containerizer,
            f" for task group {group}" if group else "",
        )
        self._background_task(self._spawn_executor(run))

    def _create_run(self, framework: dict, task: dict, containerizer: str, group: str | None = None) -> TaskRun:
        assert self.agent_id is not None
        framework_id = framework["id"]["value"]
        task_id = task["task_id"]["value"]
        paths = self.work.run(self.agent_id, framework_id, group or task_id, new_container_id())
        paths.meta.mkdir(parents=True)
        paths.sandbox.mkdir(parents=True)
        write_symlink(paths.sandbox.parent / "latest", paths.container_id)
        write_json(self.work.framework_info(self.agent_id, framework_id), framework)
        write_json(
            paths.task_info,
            {
                "task": task,
                "framework": framework,
                "containerizer": containerizer,
                "sandbox": str(paths.sandbox),
                "agent_id": self.agent_id,
                "agent_options": self.options.to_json(),
                **({"task_group": group} if group else {}),
            },
        )
        stream = self.updates.add_stream(UpdateStream(framework_id, task_id, paths.updates))
        run = TaskRun(paths, task, framework, containerizer, stream, group=group)
        self.runs[(framework_id, task_id)] = run
        return run

    def _refuse_task(
        self, framework: dict, task: dict, state: str, reason: str, message: str, group: str | None = None
    ) -> None:
        """A task that never gets an executor: its one (terminal) update, checkpointed like any other."""
        log.warning("task %s: %s: %s", value_of(task, "task_id"), state, message)
        self.counters["container_launch_errors" if state == "TASK_FAILED" else "invalid_tasks"] += 1
        if not value_of(task, "task_id") or not value_of(framework, "id"):
            return
        run = self._create_run(framework, task, "none", group)
        self._add_update(run, state, message=message, reason=reason, source="SOURCE_AGENT")

    async def _spawn_executor(self, run: TaskRun) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("MESOS_")}
        log_file = open_for_append(run.paths.sandbox / "executor.log")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mesolite.cli", "executor", "--run-dir", str(run.paths.meta),
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, cwd=run.paths.sandbox, env=environment,
            )  # fmt: skip
        finally:
            os.close(log_file)
        if await process.wait() != 0:
            run.spawn_failed = True
            log.error("task %s: the executor did not start (see %s/executor.log)", run.task_id, run.paths.sandbox)

    def kill_task(self, framework_id: str | None, task_id: str | None, kill_policy: dict | None = None) -> None:
        run = self.runs.get((framework_id or "", task_id or ""))
        if run is None:
            log.warning("cannot kill task %s of framework %s: no such task on this agent", task_id, framework_id)
            return
        if run.terminal:
            return
        grace = kill_grace_seconds(kill_policy, run.task)
        log.info("killing task %s of framework %s (grace period %.1fs)", run.task_id, run.framework_id, grace)
        self._request_kill(run, grace)

    def _request_kill(self, run: TaskRun, grace: float) -> None:
        if not run.paths.kill_request.exists():
            write_json(run.paths.kill_request, {"grace_period_seconds": grace})
        self._signal_kill(run)

    def _signal_kill(self, run: TaskRun) -> None:
        if run.kill_signaled:
            return
        if run.executor is None:
            run.executor = processes.read_identity(run.paths.executor_pid)
        run.kill_signaled = processes.signal_process(run.executor)

    def acknowledge(self, framework_id: str | None, task_id: str | None, uuid: Any) -> None:
        if framework_id and task_id and isinstance(uuid, str) and uuid:
            self.updates.acknowledge(framework_id, task_id, uuid)

    def shutdown_framework(self, framework_id: str | None) -> None:
        runs = [run for run in self.runs.values() if run.framework_id == framework_id]
        log.info("shutting down framework %s: killing %d tasks", framework_id, len(runs))
        for run in runs:
            if not run.terminal:
                self._request_kill(run, self.options.executor_shutdown_grace_period)
        if framework_id:
            self.updates.drop_framework(framework_id)

    async def reconcile(self, framework_id: str | None, tasks: list[dict]) -> None:
        """Tell the master the latest state of the asked tasks (all of the framework's when none are named).
        Reconciliation updates carry no uuid: nobody acknowledges them."""
        if not framework_id or self.link is None:
            return
        asked = [value_of(task, "task_id") for task in tasks] or [
            run.task_id for run in self.runs.values() if run.framework_id == framework_id
        ]
        for task_id in filter(None, asked):
            run = self.runs.get((framework_id, task_id)) or next(
                (done for done in self.completed.get(framework_id, ()) if done.task_id == task_id), None
            )
            if run is not None:
                status = task_status(
                    task_id,
                    run.state,
                    agent_id=self.agent_id,
                    executor_id=run.executor_id,
                    source="SOURCE_AGENT",
                    reason="REASON_RECONCILIATION",
                    with_uuid=False,
                )
            else:
                status = task_status(
                    task_id,
                    "TASK_LOST",
                    agent_id=self.agent_id,
                    source="SOURCE_AGENT",
                    reason="REASON_RECONCILIATION",
                    message="the agent does not know this task",
                    with_uuid=False,
                )
            update = {"framework_id": {"value": framework_id}, "status": status, "timestamp": time.time()}
            await self.link.call({"type": "STATUS_UPDATE", "status_update": update}, self.agent_id)

    def _abandon_all_runs(self, why: str) -> None:
        """Kill every task and forget it: its framework was (or will be) told by the master."""
        for run in list(self.runs.values()):
            if not run.terminal:
                log.warning("killing task %s of framework %s: %s", run.task_id, run.framework_id, why)
                self._request_kill(run, self.options.executor_shutdown_grace_period)
        for framework_id in {run.framework_id for run in self.runs.values()}:
            self.updates.drop_framework(framework_id)
        self.runs.clear()
        self.updates.streams.clear()

    # -- following executors ---------------------------------------------------------------------

    async def follow_runs(self) -> None:
        """Turn executors' events into status updates and notice executors that died (forever)."""
        while True:
            for run in list(self.runs.values()):
                if not run.terminal:
                    try:
                        self._follow(run)
                    except Exception:
                        log.exception("following task %s failed", run.task_id)
            await asyncio.sleep(FOLLOW_INTERVAL_SECONDS)

    def _follow(self, run: TaskRun) -> None:
        self._consume_events(run)
        if run.terminal:
            return
        if run.executor is None:
            run.executor = processes.read_identity(run.paths.executor_pid)
        if run.paths.kill_request.exists():
            self._signal_kill(run)
        if run.executor is None:
            waited = time.time() - run.spawned_at
            if run.spawn_failed or waited > self.executor_registration_timeout:
                self._executor_gone(run, f"the executor did not start within {waited:.0f}s")
            return
        if not processes.is_alive(run.executor):
            self._consume_events(run)  # it may have written its last event just before it exited
            if run.terminal:
                return
            message = f"the executor (pid {run.executor[0]}) exited without reporting how the task ended"
            if self._may_restart_executor(run):
                self._restart_executor(run, message)
            else:
                self._executor_gone(run, message)

    def _may_restart_executor(self, run: TaskRun) -> bool:
        containerizer = next((c for c in self.containerizers if c.name == run.containerizer), None)
        return (
            containerizer is not None
            and containerizer.reattaches
            and not isinstance(containerizer, UnavailableContainerizer)
            and run.executor_restarts < MAX_EXECUTOR_RESTARTS
        )

    def _restart_executor(self, run: TaskRun, message: str) -> None:
        """A new executor for a run whose container may still run: it re-attaches to the container (or
        reports how it ended), and carries out a kill that was asked for (kill.request)."""
        run.executor_restarts += 1
        log.warning(
            "task %s: %s; starting a new executor for its container %s (restart %d of at most %d)",
            run.task_id,
            message,
            run.container_id,
            run.executor_restarts,
            MAX_EXECUTOR_RESTARTS,
        )
        run.paths.executor_pid.unlink(missing_ok=True)  # the dead one's: the new executor writes its own
        run.executor = None
        run.spawned_at = time.time()
        run.spawn_failed = False
        self._background_task(self._spawn_executor(run))

    def _consume_events(self, run: TaskRun) -> None:
        for event, end in read_json_lines(run.paths.events, run.stream.events_offset):
            state = event.get("state", "")
            if run.terminal:
                break
            self._add_update(
                run,
                state,
                message=event.get("message"),
                reason=event.get("reason"),
                source="SOURCE_EXECUTOR",
                timestamp=event.get("timestamp"),
                container_status=event.get("container_status"),
                healthy=event.get("healthy"),
                events_offset=end,
            )

    def _executor_gone(self, run: TaskRun, message: str) -> None:
        log.warning("task %s: %s", run.task_id, message)
        self._add_update(
            run, "TASK_FAILED", message=message, reason="REASON_EXECUTOR_TERMINATED", source="SOURCE_AGENT"
        )
        self._background_task(self._clean_orphans())

    async def _clean_orphans(self, at_start: bool = False) -> None:
        """Have every containerizer kill the containers of this agent that no live task accounts for."""
        known = {run.container_id for run in self.runs.values() if not run.terminal}
        for containerizer in self.containerizers:
            if isinstance(containerizer, UnavailableContainerizer):
                continue
            try:
                cleaned = await asyncio.wait_for(containerizer.recover(known, self.options), RECOVER_TIMEOUT_SECONDS)
            except Exception as error:
                if at_start:
                    self.counters["recovery_errors"] += 1
                log.warning(
                    "the %s containerizer could not clean up orphans: %s",
                    containerizer.name,
                    str(error) or type(error).__name__,
                )
                continue
            for description in cleaned:
                log.warning("orphan cleaned by the %s containerizer: %s", containerizer.name, description)

    def _add_update(
        self,
        run: TaskRun,
        state: str,
        *,
        message: str | None = None,
        reason: str | None = None,
        source: str,
        timestamp: float | None = None,
        container_status: dict | None = None,
        healthy: bool | None = None,
        events_offset: int | None = None,
    ) -> None:
        extra: dict = {"container_status": container_status} if container_status else {}
        if healthy is not None:
            extra["healthy"] = bool(healthy)
        status = task_status(
            run.task_id,
            state,
            agent_id=self.agent_id,
            executor_id=run.executor_id,
            source=source,
            reason=reason,
            message=message,
            timestamp=timestamp,
            **extra,
        )
        update = {"framework_id": {"value": run.framework_id}, "status": status, "timestamp": time.time()}
        self.counters["valid_status_updates"] += 1
        log.info(
            "task %s of framework %s is %s%s", run.task_id, run.framework_id, state, f": {message}" if message else ""
        )
        self.updates.add(run.stream, update, events_offset)
        if run.group and state in ("TASK_FAILED", "TASK_KILLED"):
            self._kill_group(run)

    def _kill_group(self, ended: TaskRun) -> None:
        """Mesos's default executor: a task of a group that failed or was killed takes the others with it."""
        for run in list(self.runs.values()):
            if run.group == ended.group and run.framework_id == ended.framework_id and not run.terminal:
                if not run.kill_signaled and not run.paths.kill_request.exists():
                    log.info("killing task %s: task %s of its group is %s", run.task_id, ended.task_id, ended.state)
                self._request_kill(run, kill_grace_seconds(None, run.task))

    def _on_stream_done(self, stream: UpdateStream) -> None:
        run = self.runs.pop(stream.key, None)
        if run is not None:
            self.completed[run.framework_id].append(run)

    def _background_task(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- views -----------------------------------------------------------------------------------

    def sandbox_users(self) -> SandboxUsers:
        """Who runs each sandbox this agent knows of (what `access_sandboxes` rules are about)."""
        runs = [*self.runs.values(), *(run for completed in self.completed.values() for run in completed)]
        return SandboxUsers(
            executors={(run.framework_id, run.executor_id): task_user(run.task, run.framework) or "" for run in runs},
            frameworks={framework_id: info.get("user") or "" for framework_id, info in self.frameworks.items()},
        )

    def used_resources(self) -> Resources:
        used = Resources()
        for run in self.runs.values():
            if not run.terminal:
                used = used + run.resources
        return used
