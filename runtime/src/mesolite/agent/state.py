"""The agent's /state and /metrics/snapshot views, with Mesos's key names."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from mesolite import MESOS_COMPATIBLE_VERSION, __version__
from mesolite.agent.containerizers.mesos import task_user
from mesolite.resources import flatten_attributes

if TYPE_CHECKING:
    from mesolite.agent.agent import Agent, TaskRun

# Whether the request may see an object of `user` through a Mesos ACL action (view_frameworks, view_executors,
# view_tasks): the objects it may not see are left out of /state, as Mesos does.
Viewer = Callable[[str, str], bool]


def _sees_everything(_action: str, _user: str) -> bool:
    return True


STATE_METRICS = {
    "TASK_STAGING": "slave/tasks_staging",
    "TASK_STARTING": "slave/tasks_starting",
    "TASK_RUNNING": "slave/tasks_running",
    "TASK_KILLING": "slave/tasks_killing",
    "TASK_FINISHED": "slave/tasks_finished",
    "TASK_FAILED": "slave/tasks_failed",
    "TASK_KILLED": "slave/tasks_killed",
    "TASK_LOST": "slave/tasks_lost",
    "TASK_GONE": "slave/tasks_gone",
    "TASK_ERROR": "slave/tasks_error",
    "TASK_DROPPED": "slave/tasks_dropped",
}


def pid(agent: Agent) -> str:
    return f"slave(1)@{agent.options.ip}:{agent.port}"


def _task(agent: Agent, run: TaskRun) -> dict:
    task = agent.task_json(run)
    return {
        "id": run.task_id,
        "name": task["name"],
        "framework_id": run.framework_id,
        "executor_id": run.executor_id if run.group else "",  # command tasks: Mesos shows the command executor as ""
        "slave_id": agent.agent_id or "",
        "state": run.state,
        "resources": run.resources.flatten(),
        "role": run.framework.get("role") or "*",
        "statuses": [
            {key: status[key] for key in ("state", "timestamp", "container_status") if key in status}
            for status in run.stream.history
        ],
        **{key: task[key] for key in ("labels", "discovery", "container") if key in task},
    }


def _executor(agent: Agent, run: TaskRun, completed: bool, may_view: Viewer) -> dict:
    task = _task(agent, run)
    shown = [task] if may_view("view_tasks", task_user(run.task, run.framework) or "") else []
    return {
        "id": run.executor_id,
        "name": f"Command Executor (Task: {run.task_id})",
        "source": run.task_id,
        "container": run.container_id,
        "directory": str(run.paths.sandbox),
        "resources": run.resources.flatten(),
        "role": task["role"],
        "type": "COMMAND",
        "tasks": [] if completed else shown,
        "queued_tasks": [],
        "completed_tasks": shown if completed else [],
    }


def _framework(
    agent: Agent, framework_id: str, live: list[TaskRun], completed: list[TaskRun], may_view: Viewer
) -> dict | None:
    info = agent.frameworks.get(framework_id, {})
    if not may_view("view_frameworks", info.get("user") or ""):
        return None

    def executors(runs: list[TaskRun], completed: bool) -> list[dict]:
        visible = [run for run in runs if may_view("view_executors", task_user(run.task, run.framework) or "")]
        return [_executor(agent, run, completed, may_view) for run in visible]

    return {
        "id": framework_id,
        "name": info.get("name", ""),
        "user": info.get("user", ""),
        "hostname": info.get("hostname", ""),
        "role": info.get("role") or "*",
        "failover_timeout": info.get("failover_timeout", 0),
        "checkpoint": info.get("checkpoint", False),
        "principal": info.get("principal", ""),
        "capabilities": [capability.get("type") for capability in info.get("capabilities") or []],
        "executors": executors(live, completed=False),
        "completed_executors": executors(completed, completed=True),
    }


def state(agent: Agent, may_view: Viewer = _sees_everything) -> dict:
    live_by_framework: dict[str, list[TaskRun]] = {}
    for run in agent.runs.values():
        live_by_framework.setdefault(run.framework_id, []).append(run)
    frameworks = [
        _framework(agent, framework_id, runs, list(agent.completed.get(framework_id, ())), may_view)
        for framework_id, runs in sorted(live_by_framework.items())
    ]
    completed_frameworks = [
        _framework(agent, framework_id, [], list(runs), may_view)
        for framework_id, runs in sorted(agent.completed.items())
        if framework_id not in live_by_framework and runs
    ]
    total = agent.resources
    master = agent.master_info or {}
    return {
        "version": MESOS_COMPATIBLE_VERSION,
        "mesolite_version": __version__,
        "build_time": 0,
        "start_time": agent.started_at,
        "id": agent.agent_id or "",
        "pid": pid(agent),
        "hostname": agent.options.hostname,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
        "resources": total.flatten(),
        "reserved_resources": {},
        "unreserved_resources": total.unreserved().flatten(),
        "reserved_resources_full": {},
        "unreserved_resources_full": total.unreserved().to_protobuf_json(),
        "used_resources": agent.used_resources().flatten(),
        "attributes": flatten_attributes(agent.attributes),
        "master_hostname": (master.get("address") or {}).get("hostname") or master.get("hostname", ""),
        "registered": agent.registered,
        "flags": agent.flags_for_state,
        "frameworks": [framework for framework in frameworks if framework is not None],
        "completed_frameworks": [framework for framework in completed_frameworks if framework is not None],
    }


def metrics(agent: Agent) -> dict[str, float]:
    states = Counter(run.state for run in agent.runs.values())
    for runs in agent.completed.values():
        states.update(run.state for run in runs)
    total = agent.resources
    used = agent.used_resources()
    snapshot: dict[str, float] = {
        "slave/registered": 1.0 if agent.registered else 0.0,
        "slave/uptime_secs": time.time() - agent.started_at,
        "slave/executors_running": float(sum(1 for run in agent.runs.values() if not run.terminal)),
        "slave/executors_terminated": float(sum(len(runs) for runs in agent.completed.values())),
        "slave/frameworks_active": float(len({run.framework_id for run in agent.runs.values()})),
        "slave/valid_status_updates": float(agent.counters["valid_status_updates"]),
        "slave/status_updates_pending": float(agent.updates.pending_count()),
        "slave/container_launch_errors": float(agent.counters["container_launch_errors"]),
        "slave/recovery_errors": float(agent.counters["recovery_errors"]),
    }
    for task_state, key in STATE_METRICS.items():
        snapshot[key] = float(states.get(task_state, 0))
    for name in ("cpus", "mem", "disk", "gpus"):
        have, using = total.scalar(name), used.scalar(name)
        snapshot[f"slave/{name}_total"] = have
        snapshot[f"slave/{name}_used"] = using
        snapshot[f"slave/{name}_percent"] = using / have if have else 0.0
    load = os.getloadavg()
    snapshot.update(
        {
            "system/cpus_total": float(os.cpu_count() or 0),
            "system/load_1min": load[0],
            "system/load_5min": load[1],
            "system/load_15min": load[2],
        }
    )
    return snapshot
