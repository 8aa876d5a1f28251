"""A task as the master knows it: its TaskInfo, where it runs, and its state machine.

States only move forward: a terminal state is final, and a late non-terminal update after it is
ignored (it is still forwarded so that the agent gets its acknowledgement). The master keeps a task
until its framework has acknowledged the terminal update; then it becomes a completed task.

As in Mesos, an agent sends only the oldest unacknowledged update of a task, and attaches `latest_state`:
the newest state it knows. The task's state is that latest state (what /state and reconciliation report
at once, even while a framework has not acknowledged an older update), while the update itself is
forwarded unchanged and `unacknowledged_state` remembers the state of the update awaiting acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mesolite.protocol.v1 import TASK_STATES, id_value, is_terminal, now, task_status, value_of
from mesolite.resources import Resources

# How many status entries a task keeps for /state (Mesos keeps the whole history; a bound keeps
# memory flat for long-lived tasks with flapping health).
MAX_STATUS_HISTORY = 20


def task_user(task_info: dict, framework_info: dict, executor_info: dict | None = None) -> str:
    """The user a task runs as, as Mesos decides it: its CommandInfo.user, else its executor's, else the
    framework's FrameworkInfo.user. ACLs (`run_tasks`, `view_tasks`, `access_sandboxes`) name this user."""
    for holder in (task_info, task_info.get("executor"), executor_info):
        command = holder.get("command") if isinstance(holder, dict) else None
        user = command.get("user") if isinstance(command, dict) else None
        if isinstance(user, str) and user:
            return user
    user = framework_info.get("user")
    return user if isinstance(user, str) else ""


@dataclass
class Task:
    task_id: str
    framework_id: str
    agent_id: str
    executor_id: str
    role: str
    info: dict
    resources: Resources
    state: str = "TASK_STAGING"
    latest_status: dict | None = None
    statuses: list[dict] = field(default_factory=list)
    # The uuid and state of the newest update forwarded and not yet acknowledged (None once acknowledged).
    unacknowledged_uuid: str | None = None
    unacknowledged_state: str | None = None
    created: float = field(default_factory=now)
    unreachable_time: float | None = None

    @property
    def terminal(self) -> bool:
        return is_terminal(self.state)

    @property
    def name(self) -> str:
        return self.info.get("name", "")

    def apply(self, status: dict, latest_state: str | None = None) -> bool:
        """Record a status (and the agent's `latest_state`, when the update carries one); True when the
        task's state changed."""
        state = status.get("state", "")
        new_state = latest_state if latest_state in TASK_STATES else state
        if status.get("uuid"):
            self.unacknowledged_uuid = status["uuid"]
            self.unacknowledged_state = state
        if self.terminal and new_state != self.state:
            return False
        changed = new_state != self.state
        self.state = new_state
        self.latest_status = status
        entry = {"state": state, "timestamp": status.get("timestamp", now())}
        for key in ("container_status", "healthy", "labels"):
            if key in status:
                entry[key] = status[key]
        # One entry per state in a row (as Mesos keeps them): a retried or repeated update replaces its entry.
        if self.statuses and self.statuses[-1].get("state") == state:
            self.statuses[-1] = entry
        else:
            self.statuses.append(entry)
            del self.statuses[:-MAX_STATUS_HISTORY]
        return changed

    def acknowledged(self, uuid: str) -> bool:
        """The framework acknowledged `uuid`; True when that was the update awaited and it was terminal
        (then the master may forget the task)."""
        if self.unacknowledged_uuid != uuid:
            return False
        final = is_terminal(self.unacknowledged_state or "")
        self.unacknowledged_uuid = None
        self.unacknowledged_state = None
        return final

    def current_status(self, reason: str | None = None, message: str | None = None) -> dict:
        """The latest status without a uuid (for reconciliation: it needs no acknowledgement)."""
        base = dict(self.latest_status or {})
        base.pop("uuid", None)
        status = task_status(
            self.task_id,
            self.state,
            agent_id=self.agent_id,
            source=base.get("source", "SOURCE_MASTER"),
            with_uuid=False,
        )
        for key in ("executor_id", "message", "container_status", "healthy", "labels", "data", "reason"):
            if key in base:
                status[key] = base[key]
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        if self.unreachable_time is not None:
            status["unreachable_time"] = {"nanoseconds": int(self.unreachable_time * 1e9)}
        return status

    def to_protobuf_json(self) -> dict:
        """A v1 `Task` (as the agent protocol and the v1 operator API render it)."""
        task = {
            "name": self.name,
            "task_id": id_value(self.task_id),
            "framework_id": id_value(self.framework_id),
            "agent_id": id_value(self.agent_id),
            "state": self.state,
            "resources": self.resources.to_protobuf_json(),
            "statuses": list(self.statuses),
        }
        if self.executor_id:
            task["executor_id"] = id_value(self.executor_id)
        for key in ("labels", "discovery", "container", "health_check", "kill_policy", "user"):
            if key in self.info:
                task[key] = self.info[key]
        return task

    def to_state_json(self) -> dict:
        """The task as /master/state shows it (ids as plain strings, resources flattened)."""
        task = {
            "id": self.task_id,
            "name": self.name,
            "framework_id": self.framework_id,
            "executor_id": self.executor_id,
            "slave_id": self.agent_id,
            "agent_id": self.agent_id,
            "state": self.state,
            "resources": self.resources.flatten(),
            "role": self.role,
            "statuses": list(self.statuses),
        }
        for key in ("labels", "discovery", "container", "health_check", "kill_policy", "user"):
            if key in self.info:
                task[key] = self.info[key]
        if self.unreachable_time is not None:
            task["unreachable_time"] = {"nanoseconds": int(self.unreachable_time * 1e9)}
        return task

    @classmethod
    def from_protobuf_json(cls, task: dict, role: str) -> Task:
        """A task reported by a re-registering agent (a v1 `Task`)."""
        resources = Resources.from_protobuf_json(task.get("resources", []))
        info = {key: task[key] for key in ("name", "labels", "discovery", "container", "kill_policy") if key in task}
        info["task_id"] = task.get("task_id")
        info["resources"] = task.get("resources", [])
        result = cls(
            task_id=value_of(task, "task_id") or "",
            framework_id=value_of(task, "framework_id") or "",
            agent_id=value_of(task, "agent_id") or "",
            executor_id=value_of(task, "executor_id") or "",
            role=role,
            info=info,
            resources=resources,
            state=task.get("state", "TASK_STAGING"),
            statuses=list(task.get("statuses", []))[-MAX_STATUS_HISTORY:],
        )
        if result.statuses:
            latest = dict(result.statuses[-1])
            latest.setdefault("task_id", id_value(result.task_id))
            latest.setdefault("agent_id", id_value(result.agent_id))
            result.latest_status = latest
        return result
