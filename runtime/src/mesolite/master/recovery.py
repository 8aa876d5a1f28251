"""Recovery: how a newly elected master rebuilds what the previous leader knew.

A master keeps its frameworks and agents (with the tasks each ran) in the registry (`registry.py` writes what
`agent_record` and `framework_record` describe). A new leader reads those records back (`recover`): frameworks
wait, inactive, for their scheduler to re-subscribe; agents wait, RECOVERED, for the agent to re-register and
tell what it actually runs (`reconcile_agent_tasks`). An agent that does not re-register within
`agent_reregister_timeout` of the election is declared unreachable and its tasks reported
(`expire_agents_not_back`). This is apart from `master.py` for the reason Mesos keeps `registrar.cpp` apart from
`master.cpp`: what is persisted, and how a leader comes back from it, is one story, told once, while the
operations of a running master are another.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mesolite.master.agents import AgentState, RegisteredAgent
from mesolite.master.frameworks import Framework
from mesolite.master.tasks import Task
from mesolite.protocol.v1 import event, id_value, is_terminal, now, task_status, value_of
from mesolite.resources import ResourceError, Resources

if TYPE_CHECKING:
    from mesolite.master.master import Master

log = logging.getLogger(__name__)


class Recovery:
    """The registry records of one `Master`, and its recovery from the records its predecessor left."""

    def __init__(self, master: Master) -> None:
        self.master = master

    # ------------------------------------------------------------------ records the registry stores

    def agent_record(self, agent_id: str) -> dict | None:
        """What the registry stores for an agent (see registry.py)."""
        master = self.master
        if agent_id in master.removed_agent_ids:
            return {"state": "removed", "agent_info": {"id": id_value(agent_id)}}
        agent = master.agents.get(agent_id)
        if agent is None:
            return None
        tasks = []
        for framework_id, task_ids in agent.task_ids.items():
            for task_id in task_ids:
                task = master.find_task(framework_id, task_id)
                if task is not None:
                    tasks.append(
                        {
                            "task_id": task_id,
                            "framework_id": framework_id,
                            "executor_id": task.executor_id,
                            "state": task.state,
                            "name": task.name,
                            "role": task.role,
                        }
                    )
        if agent.state == AgentState.RECOVERED:
            tasks = agent.recovered_tasks
        record = {"agent_info": agent.agent_info_json(), "state": "admitted", "tasks": tasks}
        if agent.state == AgentState.UNREACHABLE:
            record["state"] = "unreachable"
            record["unreachable_time"] = agent.unreachable_time
        return record

    def framework_record(self, framework_id: str) -> dict | None:
        master = self.master
        framework = master.frameworks.get(framework_id)
        if framework is not None:
            return {"framework_info": framework.info, "removed": False}
        if framework_id in master.removed_framework_ids:
            return {"framework_info": {"id": id_value(framework_id)}, "removed": True}
        return None

    # ------------------------------------------------------------------ recovering from them

    def recover(self, agents: dict[str, dict], frameworks: dict[str, dict]) -> None:
        master = self.master
        for framework_id, record in frameworks.items():
            if record.get("removed"):
                master.removed_framework_ids.add(framework_id)
                continue
            info = dict(record.get("framework_info", {}))
            self._add_recovered_framework(framework_id, info)
        for agent_id, record in agents.items():
            state = record.get("state", "admitted")
            if state == "removed":
                master.removed_agent_ids.add(agent_id)
                continue
            info = record.get("agent_info", {})
            try:
                total = Resources.from_protobuf_json(info.get("resources", []))
            except ResourceError as error:
                log.error("registry entry of agent %s has bad resources (%s); skipping it", agent_id, error)
                continue
            agent = RegisteredAgent(agent_id, info, total, state=AgentState.RECOVERED)
            if state == "unreachable":
                agent.state = AgentState.UNREACHABLE
                agent.unreachable_time = record.get("unreachable_time")
            agent.recovered_tasks = record.get("tasks", [])
            master.agents[agent_id] = agent
            master.agents_by_address[(agent.hostname, agent.port)] = agent_id

    def _add_recovered_framework(self, framework_id: str, info: dict) -> Framework:
        """A framework known from the registry or from an agent's report, inactive until it re-subscribes."""
        master = self.master
        framework = master.new_framework(framework_id, info, active=False, recovered=True)
        master.frameworks[framework_id] = framework
        master.allocator.add_framework(framework_id, framework.roles)
        master.allocator.set_framework_active(framework_id, False)
        # A framework that does not come back gets its failover timeout, counted from now, but at
        # least as long as agents have to re-register (so its tasks can be known before removal).
        grace = max(framework.failover_timeout, master.settings.agent_reregister_timeout)
        master.start_failover_timer(framework, grace)
        return framework

    def recovered_agent_with(self, framework: Framework, task_id: str) -> RegisteredAgent | None:
        """The agent, recovered from the registry and not yet re-registered, that had this task."""
        for agent in self.master.agents.values():
            if agent.state == AgentState.RECOVERED and any(
                record.get("task_id") == task_id and record.get("framework_id") == framework.framework_id
                for record in agent.recovered_tasks
            ):
                return agent
        return None

    # ------------------------------------------------------------------ agents coming back, or not

    def reconcile_agent_tasks(self, agent: RegisteredAgent, body: dict) -> None:
        """Merge what a re-registering agent runs with what we know of it."""
        master = self.master
        frameworks_info = {
            value_of(info, "id"): info for info in body.get("frameworks", []) or [] if isinstance(info, dict)
        }
        reported: set[tuple[str, str]] = set()
        for reported_task in body.get("tasks", []) or []:
            if not isinstance(reported_task, dict):
                continue
            framework_id = value_of(reported_task, "framework_id")
            task_id = value_of(reported_task, "task_id")
            if not framework_id or not task_id:
                continue
            reported.add((framework_id, task_id))
            if framework_id in master.removed_framework_ids:
                agent.send(event("SHUTDOWN_FRAMEWORK", {"framework_id": id_value(framework_id)}))
                continue
            framework = master.frameworks.get(framework_id)
            if framework is None:
                info = dict(frameworks_info.get(framework_id) or {"name": "", "user": ""})
                info["id"] = id_value(framework_id)
                framework = self._add_recovered_framework(framework_id, info)
                master.persist_framework(framework_id)
            known = framework.tasks.get(task_id)
            if known is not None:
                continue  # its state follows from the updates the agent (re)sends
            lost = framework.unreachable_tasks.pop(task_id, None)
            if lost is not None and not framework.partition_aware:
                # Reported LOST to a framework that cannot take it back: the task must go.
                agent.send(event("KILL_TASK", {"framework_id": id_value(framework_id), "task_id": id_value(task_id)}))
                continue
            role = (lost.role if lost else None) or reported_task.get("role") or framework.roles[0]
            try:
                task = Task.from_protobuf_json(reported_task, role)
            except ResourceError as error:
                log.warning("agent %s reported task %s with bad resources: %s", agent.agent_id, task_id, error)
                continue
            task.agent_id = agent.agent_id
            framework.tasks[task_id] = task
            agent.add_task(framework_id, task_id)
            if not task.terminal:
                agent.used = agent.used + task.resources
                master.allocator.track(framework_id, role, agent.agent_id, task.resources)
        # Tasks we launched there that the agent does not know: they never arrived.
        for framework_id, task_ids in list(agent.task_ids.items()):
            framework = master.frameworks.get(framework_id)
            for task_id in list(task_ids):
                if (framework_id, task_id) in reported or framework is None:
                    continue
                task = framework.tasks.get(task_id)
                if task is None or task.terminal:
                    continue
                aware = framework.partition_aware
                state = ("TASK_DROPPED" if task.state == "TASK_STAGING" else "TASK_GONE") if aware else "TASK_LOST"
                status = task_status(
                    task_id,
                    state,
                    agent_id=agent.agent_id,
                    source="SOURCE_MASTER",
                    reason="REASON_AGENT_RESTARTED" if task.state != "TASK_STAGING" else "REASON_AGENT_DISCONNECTED",
                    message="Task was not found on the agent when it re-registered",
                    with_uuid=False,
                )
                master.transition(framework, task, status)
                framework.send(event("UPDATE", {"status": status}))
                master.forget_task(framework, task)

    def expire_agents_not_back(self, current: float) -> None:
        """Registry agents that did not re-register within `agent_reregister_timeout` of the election."""
        master = self.master
        reregister_deadline = master.elected_time + master.settings.agent_reregister_timeout
        if current <= reregister_deadline:
            return
        for agent in list(master.agents.values()):
            if agent.state == AgentState.RECOVERED:
                self._agent_not_back(agent)

    def _agent_not_back(self, agent: RegisteredAgent) -> None:
        """An agent from the registry that did not re-register in time: its tasks are unreachable."""
        master = self.master
        when = now()
        for record in agent.recovered_tasks:
            framework = master.frameworks.get(record.get("framework_id", ""))
            if framework is None or is_terminal(record.get("state", "")):
                continue
            aware = framework.partition_aware
            state = "TASK_UNREACHABLE" if aware else "TASK_LOST"
            status = task_status(
                record.get("task_id", ""),
                state,
                agent_id=agent.agent_id,
                source="SOURCE_MASTER",
                reason="REASON_AGENT_REMOVED",
                message=f"Agent {agent.hostname} did not re-register after a master failover",
                with_uuid=False,
            )
            task = Task(
                task_id=record.get("task_id", ""),
                framework_id=framework.framework_id,
                agent_id=agent.agent_id,
                executor_id=record.get("executor_id", ""),
                role=record.get("role", framework.roles[0]),
                info={"name": record.get("name", "")},
                resources=Resources(),
                state=state,
                unreachable_time=when,
            )
            task.apply(status)
            framework.unreachable_tasks[task.task_id] = task
            framework.send(event("UPDATE", {"status": status}))
            master.counters[f"master/tasks_{state[5:].lower()}"] += 1
        agent.recovered_tasks = []
        agent.state = AgentState.UNREACHABLE
        agent.unreachable_time = when
        log.warning(
            "agent %s did not re-register within %.0fs: unreachable",
            agent.agent_id,
            master.settings.agent_reregister_timeout,
        )
        master.persist_agent(agent.agent_id, urgent=True)
