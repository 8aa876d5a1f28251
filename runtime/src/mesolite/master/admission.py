"""Agents joining the master and talking to it: REGISTER and REREGISTER, then their calls (status updates,
PONGs, UNREGISTER).

Admission decides whether an agent may join and under which id: a new agent gets a fresh id (and replaces an
older one at the same address), a known agent comes back with its tasks (reconciled by `recovery.py`), and a
removed agent, or one whose resources or attributes changed, is refused so that it registers anew, as Mesos
refuses it. What losing an agent means for frameworks and offers stays in `master.py` (`remove_agent`); whether
an agent still answers is `liveness.py`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from mesolite.master.agents import AgentState, RegisteredAgent
from mesolite.master.streams import EventStream
from mesolite.master.validation import CallError
from mesolite.protocol.v1 import TASK_STATES, event, id_value, now, value_of
from mesolite.resources import ResourceError, Resources

if TYPE_CHECKING:
    from mesolite.master.master import Master

log = logging.getLogger(__name__)


class AgentAdmission:
    """Registers the agents of one `Master` and carries their calls to it."""

    def __init__(self, master: Master) -> None:
        self.master = master

    def admit(self, body: dict, stream: EventStream) -> RegisteredAgent:
        """REGISTER or REREGISTER over `stream` (not started yet: REGISTERED is queued first, then whatever
        the admission has to tell the agent). CallError refuses (403: removed, or changed resources)."""
        kind = body.get("type")
        if kind not in ("REGISTER", "REREGISTER"):
            raise CallError("'type' must be REGISTER or REREGISTER")
        info = body.get("agent_info")
        if not isinstance(info, dict) or not isinstance(info.get("hostname"), str) or not info["hostname"]:
            raise CallError("Expecting 'agent_info' with a 'hostname'")
        try:
            total = Resources.from_protobuf_json(info.get("resources", []))
        except ResourceError as error:
            raise CallError(f"agent_info.{error}") from None
        port = info.get("port", 5051)
        if not isinstance(port, int):
            raise CallError("agent_info.port must be an integer")
        agent_id = value_of(info, "id")
        if kind == "REREGISTER" and agent_id is None:
            raise CallError("REREGISTER needs agent_info.id")
        if kind == "REGISTER" or agent_id is None:
            return self._register(self.master.ids.agent_id(), info, total, body, stream)
        if agent_id in self.master.removed_agent_ids:
            raise CallError(f"Agent {agent_id} was removed from the cluster; register as a new agent", status=403)
        agent = self.master.agents.get(agent_id)
        if agent is not None and (agent.total != total or attributes_key(agent.info) != attributes_key(info)):
            raise CallError(
                f"Agent {agent_id} re-registered with different resources or attributes "
                f"(was {agent.total}, now {total}); register as a new agent",
                status=403,
            )
        return self._reregister(agent_id, info, total, body, stream)

    def _register(
        self, agent_id: str, info: dict, total: Resources, body: dict, stream: EventStream
    ) -> RegisteredAgent:
        address = (info["hostname"], int(info.get("port", 5051)))
        previous = self.master.agents_by_address.get(address)
        if previous is not None and previous in self.master.agents:
            self.master.remove_agent(previous, "a new agent registered at the same address", removed=True)
        info = {**info, "id": id_value(agent_id)}
        agent = RegisteredAgent(
            agent_id, info, total, version=str(body.get("version", "")), boot_id=str(body.get("boot_id", ""))
        )
        agent.capabilities = body.get("capabilities", [])
        self.master.agents[agent_id] = agent
        self.master.agents_by_address[address] = agent_id
        self.attach_stream(agent, stream)
        self.master.allocator.add_agent(agent_id, total)
        self.master.counters["master/slave_registrations"] += 1
        self.master.persist_agent(agent_id, urgent=True)
        log.info("agent %s at %s:%d registered with %s", agent_id, address[0], address[1], total)
        self.master.trigger_allocation()
        return agent

    def _reregister(
        self, agent_id: str, info: dict, total: Resources, body: dict, stream: EventStream
    ) -> RegisteredAgent:
        agent = self.master.agents.get(agent_id)
        info = {**info, "id": id_value(agent_id)}
        if agent is None:
            # Unknown to us (the registry was lost, or it registered with a master that never wrote it): admit.
            agent = RegisteredAgent(agent_id, info, total)
            self.master.agents[agent_id] = agent
            self.master.allocator.add_agent(agent_id, total)
        else:
            if agent.stream is not None and not agent.stream.closed:
                agent.stream.close()  # the agent reconnected before we noticed the old stream end
            agent.stream = None
            was_unreachable = agent.state == AgentState.UNREACHABLE
            if agent_id not in self.master.allocator.agents:
                self.master.allocator.add_agent(agent_id, total)
                for framework_id, task_ids in agent.task_ids.items():
                    for task_id in task_ids:
                        task = self.master.find_task(framework_id, task_id)
                        if task is not None and not task.terminal:
                            self.master.allocator.track(framework_id, task.role, agent_id, task.resources)
            if was_unreachable:
                agent.unreachable_time = None
        agent.info = info
        agent.recovered_tasks = []
        agent.version = str(body.get("version", agent.version))
        agent.boot_id = str(body.get("boot_id", agent.boot_id))
        agent.capabilities = body.get("capabilities", agent.capabilities)
        agent.state = AgentState.ACTIVE
        agent.reregistered_time = now()
        agent.last_seen = now()
        self.master.agents_by_address[(agent.hostname, agent.port)] = agent_id
        self.master.allocator.set_agent_active(agent_id, True)
        self.attach_stream(agent, stream)
        self.master.recovery.reconcile_agent_tasks(agent, body)
        self.master.counters["master/slave_reregistrations"] += 1
        self.master.persist_agent(agent_id, urgent=True)
        log.info("agent %s at %s:%d re-registered", agent_id, agent.hostname, agent.port)
        self.master.trigger_allocation()
        return agent

    def attach_stream(self, agent: RegisteredAgent, stream: EventStream) -> None:
        agent.stream = stream
        self.master.liveness.watch(agent, stream)
        stream.send(
            event(
                "REGISTERED",
                {
                    "agent_id": id_value(agent.agent_id),
                    "master_info": self.master.master_info,
                    "ping_interval_seconds": self.master.settings.agent_ping_timeout,
                },
            )
        )

    def call(self, agent_id: str | None, call: dict) -> None:
        if agent_id is None:
            raise CallError("Expecting the 'Mesos-Agent-Id' header")
        agent = self.master.agents.get(agent_id)
        if agent is None or agent.state in (AgentState.UNREACHABLE, AgentState.RECOVERED):
            raise CallError(f"Agent {agent_id} is not registered with this master; (re-)register first", status=403)
        agent.last_seen = now()
        kind = call.get("type")
        if kind == "PONG":
            return
        if kind == "STATUS_UPDATE":
            self.status_update(agent, call.get("status_update"))
        elif kind == "STATUS_UPDATES":
            updates = call.get("status_updates")
            if not isinstance(updates, list):
                raise CallError("STATUS_UPDATES needs 'status_updates', a list")
            for update in updates:
                self.status_update(agent, update)
        elif kind == "UNREGISTER":
            self.master.remove_agent(agent_id, "the agent unregistered (clean shutdown)", removed=True)
        else:
            raise CallError(f"Unknown agent call type {kind!r} (STATUS_UPDATE, STATUS_UPDATES, PONG, UNREGISTER)")

    def status_update(self, agent: RegisteredAgent, update: object) -> None:
        if not isinstance(update, dict) or not isinstance(update.get("status"), dict):
            raise CallError("a status update needs 'status', a TaskStatus object")
        framework_id = value_of(update, "framework_id")
        status = update["status"]
        task_id = value_of(status, "task_id")
        if framework_id is None or task_id is None or status.get("state") not in TASK_STATES:
            raise CallError("a status update needs framework_id, status.task_id and a known status.state")
        status.setdefault("agent_id", id_value(agent.agent_id))
        self.master.counters["master/messages_status_update"] += 1
        framework = self.master.frameworks.get(framework_id)
        if framework is None:
            # Its framework is gone: acknowledge on its behalf so that the agent stops retrying.
            if framework_id in self.master.removed_framework_ids and status.get("uuid"):
                agent.send(
                    event(
                        "ACKNOWLEDGE",
                        {"framework_id": id_value(framework_id), "task_id": id_value(task_id), "uuid": status["uuid"]},
                    )
                )
            return
        task = framework.tasks.get(task_id)
        if task is not None:
            # The task takes the agent's latest state; the framework gets the update as it is (in order).
            latest_state = update.get("latest_state")
            self.master.transition(framework, task, status, latest_state if latest_state in TASK_STATES else None)
        self.master.counters["master/valid_status_updates"] += 1
        framework.send(event("UPDATE", {"status": status}))


def attributes_key(info: dict) -> str:
    """The agent's attributes in a canonical form: a re-registering agent must present the same ones."""
    return json.dumps(sorted(info.get("attributes", []) or [], key=lambda a: str(a.get("name"))), sort_keys=True)
