"""The operator's view of the master: /master/state, /master/frameworks, /master/slaves, /master/tasks.

Key names are Mesos's own (its `state` endpoint of 1.11), so that tools written for Mesos read them.
Everything here is computed on request: nothing is kept up to date per second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace

from mesolite import MESOS_COMPATIBLE_VERSION, __version__
from mesolite.master.agents import AgentState, RegisteredAgent
from mesolite.master.frameworks import Framework
from mesolite.master.master import Master
from mesolite.master.tasks import Task, task_user
from mesolite.resources import Resources
from mesolite.security.authorization import Authorizer

BUILD_DATE = "2024-01-01 00:00:00"


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the views show only the frameworks and tasks the ACLs let this principal see
    (`view_frameworks` by FrameworkInfo.user, `view_tasks` by the task's user), as Mesos filters them."""

    authorizer: Authorizer = field(default_factory=Authorizer.open)
    principal: str | None = None

    def sees_framework(self, framework: Framework) -> bool:
        return self.authorizer.allows("view_frameworks", self.principal, framework.info.get("user") or "")

    def sees_task(self, framework: Framework, task: Task) -> bool:
        return self.authorizer.allows("view_tasks", self.principal, task_user(task.info, framework.info))

    def frameworks(self, frameworks: Iterable[Framework]) -> list[Framework]:
        if self.authorizer.is_open:
            return list(frameworks)
        return [framework for framework in frameworks if self.sees_framework(framework)]

    def tasks(self, framework: Framework, tasks: Iterable[Task]) -> list[Task]:
        if self.authorizer.is_open:
            return list(tasks)
        return [task for task in tasks if self.sees_task(framework, task)]


EVERYONE = Viewer()


def build_info() -> dict:
    return {
        "version": MESOS_COMPATIBLE_VERSION,
        "build_date": BUILD_DATE,
        "build_time": 1704067200.0,
        "build_user": "mesolite",
        "git_tag": f"mesolite-{__version__}",
    }


def framework_json(
    master: Master | None, framework: Framework, include_tasks: bool = True, viewer: Viewer = EVERYONE
) -> dict:
    used = Resources()
    for task in framework.tasks.values():
        if not task.terminal:
            used = used + task.resources
    offered = Resources()
    offers = []
    if master is not None:
        for offer_id in framework.offer_ids:
            offer = master.offers.get(offer_id)
            if offer is not None:
                offered = offered + offer.resources
                offers.append(offer.to_state_json())
    info = framework.info
    result = {
        "id": framework.framework_id,
        "name": info.get("name", ""),
        "pid": "",
        "used_resources": used.flatten(),
        "offered_resources": offered.flatten(),
        "resources": (used + offered).flatten(),
        "allocated_resources": (used + offered).flatten(),
        "capabilities": [item.get("type") for item in info.get("capabilities", []) if isinstance(item, dict)],
        "hostname": info.get("hostname", ""),
        "webui_url": info.get("webui_url", ""),
        "active": framework.active,
        "connected": framework.connected,
        "recovered": framework.recovered,
        "user": info.get("user", ""),
        "failover_timeout": framework.failover_timeout,
        "checkpoint": bool(info.get("checkpoint", False)),
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time or 0,
        "principal": info.get("principal", ""),
        "role": framework.roles[0],
        "roles": list(framework.roles),
        "labels": (info.get("labels") or {}).get("labels", []),
        "offers": offers,
        "executors": [],
    }
    if framework.reregistered_time is not None:
        result["reregistered_time"] = framework.reregistered_time
    if include_tasks:
        result["tasks"] = [task.to_state_json() for task in viewer.tasks(framework, framework.tasks.values())]
        result["unreachable_tasks"] = [
            task.to_state_json() for task in viewer.tasks(framework, framework.unreachable_tasks.values())
        ]
        result["completed_tasks"] = [
            task.to_state_json() for task in viewer.tasks(framework, framework.completed_tasks)
        ]
    return result


def agent_json(master: Master, agent: RegisteredAgent) -> dict:
    """An agent as /master/state shows it, with its drain state (DRAIN_AGENT) as Mesos 1.9+ shows it."""
    view = agent.to_state_json()
    drain_info = master.maintenance.drain_info(agent.agent_id)
    if drain_info is not None:
        view["deactivated"] = True
        view["drain_info"] = drain_info
    return view


def leader_fields(leader_info: dict | None) -> dict:
    if not leader_info:
        return {}
    address = leader_info.get("address") or {}
    return {
        "leader": leader_info.get("pid", ""),
        "leader_info": leader_info,
        "leader_hostname": address.get("hostname", leader_info.get("hostname", "")),
    }


def master_state(
    master: Master, info: dict, flags: SimpleNamespace, start_time: float, viewer: Viewer = EVERYONE
) -> dict:
    agents = list(master.agents.values())
    state = {
        **build_info(),
        "start_time": start_time,
        "elected_time": master.elected_time,
        "id": info["id"],
        "pid": info["pid"],
        "hostname": info["hostname"],
        "capabilities": ["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"],
        "activated_slaves": sum(1 for agent in agents if agent.active),
        "deactivated_slaves": sum(1 for agent in agents if agent.state == AgentState.DISCONNECTED),
        "unreachable_slaves": sum(1 for agent in agents if agent.state == AgentState.UNREACHABLE),
        **leader_fields(info),
        "flags": flags_json(flags),
        "slaves": [agent_json(master, agent) for agent in agents if agent.state != AgentState.UNREACHABLE],
        "recovered_slaves": [agent.agent_info_json() for agent in agents if agent.state == AgentState.RECOVERED],
        "frameworks": [
            framework_json(master, framework, viewer=viewer)
            for framework in viewer.frameworks(master.frameworks.values())
        ],
        "completed_frameworks": [
            framework_json(None, framework, viewer=viewer)
            for framework in viewer.frameworks(master.completed_frameworks)
        ],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }
    if getattr(flags, "cluster", None):
        state["cluster"] = flags.cluster
    return state


def state_summary(master: Master, info: dict, flags: SimpleNamespace, viewer: Viewer = EVERYONE) -> dict:
    """The cheap summary the UI polls: no tasks, counts only."""
    frameworks = []
    for framework in viewer.frameworks(master.frameworks.values()):
        summary = framework_json(master, framework, include_tasks=False)
        counts: dict[str, int] = {}
        for task in viewer.tasks(framework, framework.tasks.values()):
            counts[task.state] = counts.get(task.state, 0) + 1
        summary.update(counts)
        frameworks.append(summary)
    return {
        "hostname": info["hostname"],
        "cluster": getattr(flags, "cluster", None) or "",
        "slaves": [agent_json(master, agent) for agent in master.agents.values()],
        "frameworks": frameworks,
    }


def slaves_json(master: Master) -> dict:
    agents = master.agents.values()
    return {
        "slaves": [agent_json(master, agent) for agent in agents if agent.state != AgentState.UNREACHABLE],
        "recovered_slaves": [agent.agent_info_json() for agent in agents if agent.state == AgentState.RECOVERED],
    }


def frameworks_json(master: Master, framework_id: str | None = None, viewer: Viewer = EVERYONE) -> dict:
    frameworks = [
        framework_json(master, framework, viewer=viewer)
        for framework in viewer.frameworks(master.frameworks.values())
        if framework_id in (None, framework.framework_id)
    ]
    completed = [
        framework_json(None, framework, viewer=viewer)
        for framework in viewer.frameworks(master.completed_frameworks)
        if framework_id in (None, framework.framework_id)
    ]
    return {"frameworks": frameworks, "completed_frameworks": completed, "unregistered_frameworks": []}


def tasks_json(
    master: Master,
    limit: int = 100,
    offset: int = 0,
    order: str = "des",
    framework_id: str | None = None,
    task_id: str | None = None,
    viewer: Viewer = EVERYONE,
) -> dict:
    tasks = []
    for framework in viewer.frameworks(master.frameworks.values()):
        if framework_id not in (None, framework.framework_id):
            continue
        for group in (framework.tasks.values(), framework.unreachable_tasks.values(), framework.completed_tasks):
            tasks += [task for task in viewer.tasks(framework, group) if task_id in (None, task.task_id)]
    tasks.sort(key=lambda task: task.created, reverse=(order != "asc"))
    return {"tasks": [task.to_state_json() for task in tasks[offset : offset + limit]]}


def flags_json(flags: SimpleNamespace) -> dict:
    result = {}
    for name, value in sorted(vars(flags).items()):
        if value is None:
            continue
        result[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return result
