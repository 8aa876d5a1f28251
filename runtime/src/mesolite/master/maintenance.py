"""Maintenance as Mesos does it: the schedule, machines' modes, inverse offers, and draining agents.

Mesos's maintenance primitives (docs/maintenance.md of Mesos, and the v1 operator API):

- The *schedule* is a list of windows, each a set of machines (`{"hostname", "ip"}`) and an unavailability
  (`{"start": {"nanoseconds"}, "duration"?: {"nanoseconds"}}`). A machine is in at most one window.
- A machine is UP (not scheduled), DRAINING (scheduled: its agents' offers carry the window's `unavailability`,
  and the frameworks running tasks there get inverse offers, which they accept or decline) or DOWN (`/machine/down`
  on a DRAINING machine: its agents are removed, their tasks lost, and no agent may register from it until
  `/machine/up`, which also takes it out of the schedule).
- A machine is identified as Mesos does: an agent's machine is its (hostname, ip) pair, and a schedule entry
  matches it when both fields are equal (the hostname case-insensitively): give both.

Apart from machines, Mesos 1.9's agent draining: `DRAIN_AGENT` stops offers from one agent and kills its tasks
(each with its kill policy's grace period, capped at `max_grace_period`); the agent is DRAINED once none is left,
and with `mark_gone` it is then marked gone (`MARK_AGENT_GONE`: removed for good, its id never admitted again).
`REACTIVATE_AGENT` ends draining.

The schedule, the machines' modes and the agents' drain states persist in the registry (one record, see
registry.py), so a new leader keeps them. Inverse offers and their answers are not persisted (as in Mesos).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mesolite.master.agents import RegisteredAgent
from mesolite.master.validation import CallError
from mesolite.protocol.v1 import event, id_value, now, value_of

if TYPE_CHECKING:
    from mesolite.master.master import Master

log = logging.getLogger(__name__)

UP = "UP"
DRAINING = "DRAINING"
DOWN = "DOWN"

AGENT_DRAINING = "DRAINING"
AGENT_DRAINED = "DRAINED"

# How long an operator call waits for its change to reach ZooKeeper before answering 503 (the change stands, and
# is written as soon as ZooKeeper answers).
PERSIST_TIMEOUT_SECONDS = 10.0
NANOSECONDS = 1_000_000_000
# Mesos's kill grace period when neither the task nor the kill names one.
DEFAULT_GRACE_SECONDS = 3.0

# The Mesos ACL (`--acls`) that decides each operator call, judged for no object in particular.
ACL_ACTIONS = {
    "GET_MAINTENANCE_SCHEDULE": "get_maintenance_schedules",
    "UPDATE_MAINTENANCE_SCHEDULE": "update_maintenance_schedules",
    "GET_MAINTENANCE_STATUS": "get_maintenance_statuses",
    "START_MAINTENANCE": "start_maintenances",
    "STOP_MAINTENANCE": "stop_maintenances",
    "DRAIN_AGENT": "drain_agents",
    "REACTIVATE_AGENT": "reactivate_agents",
    "MARK_AGENT_GONE": "mark_agents_gone",
}

MachineKey = tuple[str | None, str | None]  # (lowercased hostname, ip): Mesos's MachineID equality


@dataclass
class Machine:
    machine_id: dict  # {"hostname"?, "ip"?} as the operator gave it
    mode: str
    unavailability: dict
    # framework id -> InverseOfferStatus JSON ({"status", "framework_id", "timestamp"})
    inverse_offer_statuses: dict[str, dict] = field(default_factory=dict)


@dataclass
class InverseOffer:
    offer_id: str
    framework_id: str
    agent_id: str
    unavailability: dict

    def to_protobuf_json(self, agent: RegisteredAgent | None) -> dict:
        offer = {
            "id": id_value(self.offer_id),
            "framework_id": id_value(self.framework_id),
            "agent_id": id_value(self.agent_id),
            "unavailability": self.unavailability,
        }
        if agent is not None:
            offer["url"] = agent.url_json()
        return offer


# ------------------------------------------------------------------------------- validation (Mesos's rules)


def machine_key(machine_id: dict) -> MachineKey:
    hostname = machine_id.get("hostname")
    return (hostname.lower() if hostname else None, machine_id.get("ip") or None)


def agent_machine_key(agent: RegisteredAgent) -> MachineKey:
    return ((agent.hostname or "").lower() or None, agent.info.get("ip") or None)


def describe(machine_id: dict) -> str:
    return json.dumps(machine_id, sort_keys=True, separators=(",", ":"))


def parse_machine_id(value: object, where: str) -> dict:
    """A MachineID: a hostname (lowercase) and/or an IPv4 address; 400 naming `where` otherwise."""
    if not isinstance(value, dict):
        raise CallError(f"{where}: expecting a machine id object with 'hostname' and/or 'ip'")
    unknown = sorted(set(value) - {"hostname", "ip"})
    if unknown:
        raise CallError(f"{where}: unknown field '{unknown[0]}' (a machine id has 'hostname' and 'ip')")
    machine: dict = {}
    for name in ("hostname", "ip"):
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise CallError(f"{where}.{name}: expecting a string")
        if item:
            machine[name] = item
    if not machine:
        raise CallError(f"{where}: Both 'hostname' and 'ip' for a machine are empty")
    if "hostname" in machine and machine["hostname"].lower() != machine["hostname"]:
        raise CallError(f"{where}.hostname: Machine hostname must be lowercase")
    if "ip" in machine:
        try:
            ipaddress.IPv4Address(machine["ip"])
        except ValueError:
            raise CallError(f"{where}.ip: '{machine['ip']}' is not an IPv4 address") from None
    return machine


def parse_machine_list(value: object, where: str) -> list[dict]:
    """A list of MachineIDs (`/machine/down`, `/machine/up`, START/STOP_MAINTENANCE): not empty, no duplicates."""
    if not isinstance(value, list):
        raise CallError(f"{where}: expecting a list of machine ids")
    if not value:
        raise CallError(f"{where}: List of machines is empty")
    machines: list[dict] = []
    seen: set[MachineKey] = set()
    for index, item in enumerate(value):
        machine = parse_machine_id(item, f"{where}[{index}]")
        if machine_key(machine) in seen:
            raise CallError(f"{where}[{index}]: Machine '{describe(machine)}' appears more than once in the list")
        seen.add(machine_key(machine))
        machines.append(machine)
    return machines


def parse_duration(value: object, where: str) -> int:
    """A DurationInfo/TimeInfo: `{"nanoseconds": <integer>}`."""
    if not isinstance(value, dict) or "nanoseconds" not in value:
        raise CallError(f'{where}: expecting {{"nanoseconds": <integer>}}')
    nanoseconds = value["nanoseconds"]
    if isinstance(nanoseconds, str) and nanoseconds.lstrip("-").isdigit():
        nanoseconds = int(nanoseconds)  # protobuf's JSON mapping writes int64 as a string
    if not isinstance(nanoseconds, int) or isinstance(nanoseconds, bool):
        raise CallError(f"{where}.nanoseconds: expecting an integer")
    return nanoseconds


def parse_unavailability(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise CallError(f"{where}: expecting an object with 'start' (and optionally 'duration')")
    result = {"start": {"nanoseconds": parse_duration(value.get("start"), f"{where}.start")}}
    if value.get("duration") is not None:
        duration = parse_duration(value["duration"], f"{where}.duration")
        if duration < 0:
            raise CallError(f"{where}.duration: Unavailability 'duration' is negative")
        result["duration"] = {"nanoseconds": duration}
    return result


def parse_schedule(value: object, where: str = "schedule") -> list[dict]:
    """A maintenance Schedule's windows, normalized; 400 naming the field and the reason otherwise."""
    if not isinstance(value, dict):
        raise CallError(f"{where}: expecting an object with 'windows'")
    windows = value.get("windows", [])
    if not isinstance(windows, list):
        raise CallError(f"{where}.windows: expecting a list")
    seen: set[MachineKey] = set()
    parsed = []
    for index, window in enumerate(windows):
        here = f"{where}.windows[{index}]"
        if not isinstance(window, dict):
            raise CallError(f"{here}: expecting an object with 'machine_ids' and 'unavailability'")
        machine_ids = window.get("machine_ids")
        if not isinstance(machine_ids, list) or not machine_ids:
            raise CallError(f"{here}.machine_ids: List of machines in the maintenance window is empty")
        machines = []
        for position, item in enumerate(machine_ids):
            machine = parse_machine_id(item, f"{here}.machine_ids[{position}]")
            if machine_key(machine) in seen:
                raise CallError(
                    f"{here}.machine_ids[{position}]: Machine '{describe(machine)}' appears more than once "
                    "in the schedule"
                )
            seen.add(machine_key(machine))
            machines.append(machine)
        unavailability = parse_unavailability(window.get("unavailability"), f"{here}.unavailability")
        parsed.append({"machine_ids": machines, "unavailability": unavailability})
    return parsed


def grace_nanoseconds(task_info: dict) -> int | None:
    policy = task_info.get("kill_policy") if isinstance(task_info, dict) else None
    grace = policy.get("grace_period") if isinstance(policy, dict) else None
    if isinstance(grace, dict) and isinstance(grace.get("nanoseconds"), int):
        return grace["nanoseconds"]
    return None


# ------------------------------------------------------------------------------- the master's maintenance


class Maintenance:
    """The maintenance state of one `Master` and what it does to agents, offers and frameworks."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.windows: list[dict] = []
        self.machines: dict[MachineKey, Machine] = {}
        # agent id -> DrainInfo JSON ({"state", "config": {"max_grace_period"?, "mark_gone"}})
        self.draining_agents: dict[str, dict] = {}
        self.inverse_offers: dict[str, InverseOffer] = {}
        # (framework id, agent id) pairs that have an inverse offer, or answered one, for the current schedule
        self._inverse_offered: set[tuple[str, str]] = set()
        self._next_inverse_offer = 0

    # ------------------------------------------------------------------ persistence

    def record(self) -> dict:
        """What the registry stores (one record: `<zk path>/registry/maintenance/state`)."""
        return {
            "schedule": self.schedule_json(),
            "machines": [{"id": machine.machine_id, "mode": machine.mode} for machine in self.machines.values()],
            "draining_agents": self.draining_agents,
        }

    def restore(self, record: dict | None) -> None:
        """A new leader takes over its predecessor's schedule, machine modes and draining agents."""
        if not record:
            return
        try:
            self.windows = parse_schedule(record.get("schedule") or {})
        except CallError as error:
            log.error("the registry's maintenance schedule is unusable (%s); starting without one", error.message)
            return
        modes = {
            machine_key(item.get("id") or {}): item.get("mode")
            for item in record.get("machines") or []
            if isinstance(item, dict)
        }
        self._rebuild_machines(modes)
        drains = record.get("draining_agents") or {}
        self.draining_agents = {key: value for key, value in drains.items() if isinstance(value, dict)}
        for agent_id in self.draining_agents:
            self.master.allocator.set_agent_draining(agent_id, True)

    def _rebuild_machines(self, modes: dict[MachineKey, str | None]) -> None:
        machines = {}
        for window in self.windows:
            for machine_id in window["machine_ids"]:
                key = machine_key(machine_id)
                mode = DOWN if modes.get(key) == DOWN else DRAINING
                previous = self.machines.get(key)
                statuses = previous.inverse_offer_statuses if previous is not None else {}
                machines[key] = Machine(machine_id, mode, window["unavailability"], statuses)
        self.machines = machines

    def changed(self) -> None:
        self.master.persist_maintenance()

    async def persisted(self) -> None:
        """Wait until the change is in ZooKeeper; 503 if it takes longer than PERSIST_TIMEOUT_SECONDS."""
        registry = self.master.registry
        if registry is None:
            return
        try:
            async with asyncio.timeout(PERSIST_TIMEOUT_SECONDS):
                await registry.flushed()
        except TimeoutError:
            raise CallError(
                f"The change is made but not yet written to the registry (ZooKeeper) after "
                f"{PERSIST_TIMEOUT_SECONDS:.0f}s; it will be written when ZooKeeper answers",
                503,
            ) from None

    # ------------------------------------------------------------------ views

    def schedule_json(self) -> dict:
        return {"windows": self.windows}

    def status_json(self) -> dict:
        """Mesos's ClusterStatus: the draining machines (with the frameworks' answers), the down machines."""
        draining = []
        down = []
        for machine in self.machines.values():
            if machine.mode == DOWN:
                down.append(machine.machine_id)
            else:
                draining.append({"id": machine.machine_id, "statuses": list(machine.inverse_offer_statuses.values())})
        return {"draining_machines": draining, "down_machines": down}

    def machine_of(self, agent: RegisteredAgent) -> Machine | None:
        return self.machines.get(agent_machine_key(agent))

    def unavailability_of(self, agent: RegisteredAgent) -> dict | None:
        """The `unavailability` an offer from this agent carries (its machine is scheduled), else None."""
        if not self.machines:
            return None
        machine = self.machine_of(agent)
        return machine.unavailability if machine is not None else None

    def drain_info(self, agent_id: str) -> dict | None:
        return self.draining_agents.get(agent_id)

    # ------------------------------------------------------------------ the schedule and machine modes

    def update_schedule(self, schedule: object, where: str = "schedule") -> None:
        """Replace the schedule: newly scheduled machines become DRAINING, unscheduled ones UP; DOWN ones must stay."""
        windows = parse_schedule(schedule, where)
        scheduled = {machine_key(machine_id) for window in windows for machine_id in window["machine_ids"]}
        for key, machine in self.machines.items():
            if machine.mode == DOWN and key not in scheduled:
                raise CallError(
                    f"{where}: Machine '{describe(machine.machine_id)}' is deactivated and cannot be removed "
                    "from the schedule"
                )
        self.windows = windows
        self._rebuild_machines({key: machine.mode for key, machine in self.machines.items()})
        # The frameworks hear of the new schedule: inverse offers again, for the new unavailabilities.
        self._rescind_inverse_offers()
        self._inverse_offered.clear()
        self.changed()
        log.info("maintenance schedule updated: %d windows, %d machines", len(windows), len(self.machines))
        self.send_inverse_offers()

    def _scheduled_machines(self, value: object, where: str, required_mode: str, change: str) -> list[dict]:
        """The MachineIDs of a /machine/down or /machine/up body, each scheduled and in `required_mode`."""
        machine_ids = parse_machine_list(value, where)
        for index, machine_id in enumerate(machine_ids):
            machine = self.machines.get(machine_key(machine_id))
            if machine is None:
                raise CallError(
                    f"{where}[{index}]: Machine '{describe(machine_id)}' is not part of a maintenance schedule"
                )
            if machine.mode != required_mode:
                raise CallError(
                    f"{where}[{index}]: Machine '{describe(machine_id)}' is not in {required_mode} mode and cannot be "
                    f"{change}"
                )
        return machine_ids

    def start_maintenance(self, value: object, where: str = "machines") -> None:
        """`/machine/down`: scheduled (DRAINING) machines go DOWN; their agents are removed, their tasks lost."""
        machine_ids = self._scheduled_machines(value, where, DRAINING, "brought down")
        keys = {machine_key(machine_id) for machine_id in machine_ids}
        for key in keys:
            self.machines[key].mode = DOWN
            self.machines[key].inverse_offer_statuses.clear()
        self.changed()
        for agent in list(self.master.agents.values()):
            if agent_machine_key(agent) in keys:
                self.master.remove_agent(agent.agent_id, "removed: Operator initiated 'Machine DOWN'", removed=True)
        log.info("machines down for maintenance: %s", ", ".join(describe(item) for item in machine_ids))

    def stop_maintenance(self, value: object, where: str = "machines") -> None:
        """`/machine/up`: DOWN machines come back UP and leave the schedule; their agents may register again."""
        machine_ids = self._scheduled_machines(value, where, DOWN, "brought up")
        keys = {machine_key(machine_id) for machine_id in machine_ids}
        windows = []
        for window in self.windows:
            remaining = [item for item in window["machine_ids"] if machine_key(item) not in keys]
            if remaining:
                windows.append({**window, "machine_ids": remaining})
        self.windows = windows
        for key in keys:
            del self.machines[key]
        self.changed()
        log.info("machines up after maintenance: %s", ", ".join(describe(item) for item in machine_ids))

    def refusal(self, agent_info: dict) -> str | None:
        """Why an agent may not (re-)register from its machine (DOWN), or None."""
        if not self.machines:
            return None
        hostname = agent_info.get("hostname") or ""
        key = (hostname.lower() or None, agent_info.get("ip") or None)
        machine = self.machines.get(key)
        if machine is None or machine.mode != DOWN:
            return None
        return (
            f"Agent at {hostname} refused: its machine '{describe(machine.machine_id)}' is DOWN for maintenance "
            "(/machine/up or STOP_MAINTENANCE brings it back)"
        )

    # ------------------------------------------------------------------ inverse offers

    def send_inverse_offers(self) -> None:
        """An inverse offer to each framework running tasks on an agent of a DRAINING machine (once per schedule
        and agent: an answer is recorded for /maintenance/status)."""
        if not any(machine.mode == DRAINING for machine in self.machines.values()):
            return
        by_framework: dict[str, list[dict]] = {}
        for agent in self.master.agents.values():
            machine = self.machine_of(agent)
            if machine is None or machine.mode != DRAINING:
                continue
            for framework_id in agent.task_ids:
                framework = self.master.frameworks.get(framework_id)
                if framework is None or not framework.connected:
                    continue
                if (framework_id, agent.agent_id) in self._inverse_offered:
                    continue
                self._inverse_offered.add((framework_id, agent.agent_id))
                self._next_inverse_offer += 1
                offer_id = f"{self.master.master_info['id']}-I{self._next_inverse_offer}"
                offer = InverseOffer(offer_id, framework_id, agent.agent_id, machine.unavailability)
                self.inverse_offers[offer_id] = offer
                machine.inverse_offer_statuses.setdefault(framework_id, self._status("UNKNOWN", framework_id))
                by_framework.setdefault(framework_id, []).append(offer.to_protobuf_json(agent))
        for framework_id, offers in by_framework.items():
            self.master.frameworks[framework_id].send(event("OFFERS", {"offers": [], "inverse_offers": offers}))

    def answer_inverse_offers(self, framework_id: str, body: object, accepted: bool) -> None:
        """ACCEPT_INVERSE_OFFERS / DECLINE_INVERSE_OFFERS: the answer is recorded for /maintenance/status."""
        kind = "accept_inverse_offers" if accepted else "decline_inverse_offers"
        ids = body.get("inverse_offer_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise CallError(f"Expecting '{kind}.inverse_offer_ids' to be a list")
        for index, item in enumerate(ids):
            offer_id = value_of(item)
            if offer_id is None:
                raise CallError(f'{kind}.inverse_offer_ids[{index}]: expecting {{"value": <id>}}')
            offer = self.inverse_offers.get(offer_id)
            if offer is None or offer.framework_id != framework_id:
                continue  # rescinded or answered already, as Mesos ignores it
            del self.inverse_offers[offer_id]
            agent = self.master.agents.get(offer.agent_id)
            machine = self.machine_of(agent) if agent is not None else None
            if machine is not None:
                machine.inverse_offer_statuses[framework_id] = self._status(
                    "ACCEPT" if accepted else "DECLINE", framework_id
                )

    def _status(self, status: str, framework_id: str) -> dict:
        return {
            "status": status,
            "framework_id": id_value(framework_id),
            "timestamp": {"nanoseconds": int(now() * NANOSECONDS)},
        }

    def _rescind_inverse_offers(self) -> None:
        for offer in self.inverse_offers.values():
            framework = self.master.frameworks.get(offer.framework_id)
            if framework is not None:
                framework.send(event("RESCIND_INVERSE_OFFER", {"inverse_offer_id": id_value(offer.offer_id)}))
        self.inverse_offers.clear()

    # ------------------------------------------------------------------ agents: drain, reactivate, gone

    def _known_agent(self, body: object, where: str) -> RegisteredAgent:
        agent_id = value_of(body, "agent_id") if isinstance(body, dict) else None
        if agent_id is None:
            raise CallError(f"Expecting '{where}.agent_id.value' to be present")
        agent = self.master.agents.get(agent_id)
        if agent is None:
            if agent_id in self.master.removed_agent_ids:
                raise CallError(f"{where}.agent_id: Agent {agent_id} has been removed (or marked gone)")
            raise CallError(f"{where}.agent_id: Unknown agent {agent_id}", 404)
        return agent

    def drain_agent(self, body: object) -> None:
        """DRAIN_AGENT: no more offers from the agent, its tasks killed (grace capped by `max_grace_period`)."""
        agent = self._known_agent(body, "drain_agent")
        assert isinstance(body, dict)
        config: dict = {"mark_gone": bool(body.get("mark_gone", False))}
        max_grace = None
        if body.get("max_grace_period") is not None:
            max_grace = parse_duration(body["max_grace_period"], "drain_agent.max_grace_period")
            if max_grace < 0:
                raise CallError("drain_agent.max_grace_period: must not be negative")
            config["max_grace_period"] = {"nanoseconds": max_grace}
        existing = self.draining_agents.get(agent.agent_id)
        if existing is not None and existing.get("config", {}).get("mark_gone") and not config["mark_gone"]:
            raise CallError(f"drain_agent.mark_gone: Agent {agent.agent_id} is already draining to be marked gone")
        self.draining_agents[agent.agent_id] = {"state": AGENT_DRAINING, "config": config}
        self.master.allocator.set_agent_draining(agent.agent_id, True)
        self.master.rescind_offers_on(agent)
        self.changed()
        log.info("draining agent %s (%s)", agent.agent_id, config)
        self._kill_tasks_of(agent, max_grace)
        self.check_drained(agent.agent_id)

    def agent_admitted(self, agent: RegisteredAgent) -> None:
        """A draining agent that (re-)registers, after a failover or a reconnection, gets its kills again (the
        agent does not remember the drain), and is DRAINED at once if nothing runs there any more."""
        info = self.draining_agents.get(agent.agent_id)
        if info is None or info["state"] != AGENT_DRAINING:
            return
        max_grace = info["config"].get("max_grace_period", {}).get("nanoseconds")
        self._kill_tasks_of(agent, max_grace)
        self.check_drained(agent.agent_id)

    def _kill_tasks_of(self, agent: RegisteredAgent, max_grace: int | None) -> None:
        for framework_id, task_ids in agent.task_ids.items():
            for task_id in task_ids:
                task = self.master.find_task(framework_id, task_id)
                if task is None or task.terminal:
                    continue
                kill = {"framework_id": id_value(framework_id), "task_id": id_value(task_id)}
                grace = grace_nanoseconds(task.info)
                if grace is None:
                    grace = int(DEFAULT_GRACE_SECONDS * NANOSECONDS)
                if max_grace is not None:
                    grace = min(grace, max_grace)
                kill["kill_policy"] = {"grace_period": {"nanoseconds": grace}}
                agent.send(event("KILL_TASK", kill))

    def check_drained(self, agent_id: str) -> None:
        """A draining agent without live tasks is DRAINED (and, with `mark_gone`, gone)."""
        info = self.draining_agents.get(agent_id)
        agent = self.master.agents.get(agent_id)
        if info is None or agent is None or info["state"] == AGENT_DRAINED:
            return
        for framework_id, task_ids in agent.task_ids.items():
            for task_id in task_ids:
                task = self.master.find_task(framework_id, task_id)
                if task is not None and not task.terminal:
                    return
        info["state"] = AGENT_DRAINED
        self.changed()
        log.info("agent %s drained", agent_id)
        if info["config"].get("mark_gone"):
            self.mark_gone(agent_id, "drained and marked gone (DRAIN_AGENT with mark_gone)")

    def reactivate_agent(self, body: object) -> None:
        """REACTIVATE_AGENT: a draining (or drained) agent is offered again."""
        agent = self._known_agent(body, "reactivate_agent")
        if agent.agent_id not in self.draining_agents:
            raise CallError(f"reactivate_agent.agent_id: Agent {agent.agent_id} is not deactivated or draining")
        del self.draining_agents[agent.agent_id]
        self.master.allocator.set_agent_draining(agent.agent_id, False)
        self.changed()
        self.master.trigger_allocation()
        log.info("agent %s reactivated", agent.agent_id)

    def mark_agent_gone(self, body: object) -> None:
        agent_id = value_of(body, "agent_id") if isinstance(body, dict) else None
        if agent_id is not None and agent_id in self.master.removed_agent_ids:
            return  # already gone: as Mesos, nothing to do
        agent = self._known_agent(body, "mark_agent_gone")
        self.mark_gone(agent.agent_id, "marked gone by the operator")

    def mark_gone(self, agent_id: str, reason: str) -> None:
        """Remove the agent for good: its tasks TASK_GONE_BY_OPERATOR (TASK_LOST for frameworks that are not
        partition-aware), its id never admitted again."""
        self.draining_agents.pop(agent_id, None)
        self.master.allocator.set_agent_draining(agent_id, False)
        self.master.remove_agent(
            agent_id,
            f"removed: {reason}",
            removed=True,
            gone_state="TASK_GONE_BY_OPERATOR",
            reason_code="REASON_AGENT_REMOVED_BY_OPERATOR",
        )
        self.changed()

    def agent_removed(self, agent_id: str) -> None:
        """Forget what concerned an agent that is gone."""
        if self.draining_agents.pop(agent_id, None) is not None:
            self.master.allocator.set_agent_draining(agent_id, False)
            self.changed()
        for offer_id in [key for key, offer in self.inverse_offers.items() if offer.agent_id == agent_id]:
            del self.inverse_offers[offer_id]
        self._inverse_offered = {pair for pair in self._inverse_offered if pair[1] != agent_id}

    # ------------------------------------------------------------------ the v1 operator API

    def operator_call(self, call: dict) -> dict | None:
        """A maintenance or agent call of the v1 operator API (`POST /api/v1`): the response body, or None for
        `200 OK` without one. Persisting is the caller's to await (`persisted`)."""
        kind = call.get("type")
        body = call.get(str(kind).lower()) if isinstance(kind, str) else None
        if kind == "GET_MAINTENANCE_SCHEDULE":
            return {"type": kind, "get_maintenance_schedule": {"schedule": self.schedule_json()}}
        if kind == "GET_MAINTENANCE_STATUS":
            return {"type": kind, "get_maintenance_status": {"status": self.status_json()}}
        if kind == "UPDATE_MAINTENANCE_SCHEDULE":
            if not isinstance(body, dict) or "schedule" not in body:
                raise CallError("Expecting 'update_maintenance_schedule.schedule' to be present")
            self.update_schedule(body["schedule"], "update_maintenance_schedule.schedule")
        elif kind in ("START_MAINTENANCE", "STOP_MAINTENANCE"):
            where = f"{kind.lower()}.machines"
            machines = body.get("machines") if isinstance(body, dict) else None
            if kind == "START_MAINTENANCE":
                self.start_maintenance(machines, where)
            else:
                self.stop_maintenance(machines, where)
        elif kind == "DRAIN_AGENT":
            self.drain_agent(body)
        elif kind == "REACTIVATE_AGENT":
            self.reactivate_agent(body)
        elif kind == "MARK_AGENT_GONE":
            self.mark_agent_gone(body)
        else:
            raise CallError(
                f"Unsupported operator call type {kind!r}: this master serves GET_MAINTENANCE_SCHEDULE, "
                "UPDATE_MAINTENANCE_SCHEDULE, GET_MAINTENANCE_STATUS, START_MAINTENANCE, STOP_MAINTENANCE, "
                "DRAIN_AGENT, REACTIVATE_AGENT and MARK_AGENT_GONE on /api/v1"
            )
        return None
