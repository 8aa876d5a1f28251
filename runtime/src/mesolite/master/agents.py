"""An agent as the master knows it: its AgentInfo, connection, liveness, and what runs on it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mesolite.master.streams import EventStream
from mesolite.protocol.v1 import id_value, now
from mesolite.resources import Resources, flatten_attributes


class AgentState(enum.Enum):
    ACTIVE = "active"  # connected: offered, receives tasks
    DISCONNECTED = "disconnected"  # stream closed, tasks kept until the ping timeout
    RECOVERED = "recovered"  # known from the registry after a failover, not re-registered yet
    UNREACHABLE = "unreachable"  # missed its pings (or never came back): tasks reported unreachable / lost


@dataclass
class RegisteredAgent:
    """The master's entry for one agent (registered now, or before a failover and read back from the registry).

    Not the agent process's own `mesolite.agent` domain object: this is what the master keeps about it.
    """

    agent_id: str
    info: dict  # AgentInfo JSON as the agent sent it, with `id` filled in
    total: Resources
    version: str = ""
    boot_id: str = ""
    state: AgentState = AgentState.ACTIVE
    stream: EventStream | None = None
    registered_time: float = field(default_factory=now)
    reregistered_time: float | None = None
    unreachable_time: float | None = None
    last_seen: float = field(default_factory=now)
    next_ping: float = 0.0  # time.monotonic() when the next PING is due (see liveness.AgentLiveness.run)
    # framework id -> ids of its tasks here (the Task objects live in the framework)
    task_ids: dict[str, set[str]] = field(default_factory=dict)
    offer_ids: set[str] = field(default_factory=set)
    used: Resources = field(default_factory=Resources)
    offered: Resources = field(default_factory=Resources)
    capabilities: list = field(default_factory=list)
    # From the registry after a failover, until the agent re-registers: [{task_id, framework_id, state, ...}]
    recovered_tasks: list[dict] = field(default_factory=list)

    @property
    def hostname(self) -> str:
        return self.info.get("hostname", "")

    @property
    def port(self) -> int:
        return int(self.info.get("port", 5051))

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.info.get('ip') or self.hostname}:{self.port}"

    @property
    def active(self) -> bool:
        return self.state == AgentState.ACTIVE

    def send(self, event: dict) -> bool:
        if self.stream is None or self.stream.closed:
            return False
        self.stream.send(event)
        return True

    def send_encoded(self, record: bytes) -> bool:
        """Send an event already JSON-encoded (one encoding shared by many agents)."""
        if self.stream is None or self.stream.closed:
            return False
        self.stream.send_encoded(record)
        return True

    def add_task(self, framework_id: str, task_id: str) -> None:
        self.task_ids.setdefault(framework_id, set()).add(task_id)

    def remove_task(self, framework_id: str, task_id: str) -> None:
        tasks = self.task_ids.get(framework_id)
        if tasks is not None:
            tasks.discard(task_id)
            if not tasks:
                del self.task_ids[framework_id]

    def agent_info_json(self) -> dict:
        info = dict(self.info)
        info["id"] = id_value(self.agent_id)
        info["resources"] = self.total.to_protobuf_json()
        return info

    def url_json(self) -> dict:
        """The `url` of an Offer: where the agent's HTTP API is."""
        address = {"hostname": self.hostname, "port": self.port}
        if self.info.get("ip"):
            address["ip"] = self.info["ip"]
        return {"scheme": "http", "address": address, "path": "/slave(1)"}

    def to_state_json(self) -> dict:
        """The agent as /master/state and /master/slaves show it."""
        unreserved = self.total.unreserved()
        reserved: dict = {}
        for role in sorted(self.total.roles() - {"*"}):
            reserved[role] = self.total.for_role(role).flatten()
        state = {
            "id": self.agent_id,
            "pid": self.pid,
            "hostname": self.hostname,
            "port": self.port,
            "registered_time": self.registered_time,
            "resources": self.total.flatten(),
            "used_resources": self.used.flatten(),
            "offered_resources": self.offered.flatten(),
            "reserved_resources": reserved,
            "unreserved_resources": unreserved.flatten(),
            "reserved_resources_full": {role: self.total.for_role(role).to_protobuf_json() for role in reserved},
            "unreserved_resources_full": unreserved.to_protobuf_json(),
            "used_resources_full": self.used.to_protobuf_json(),
            "offered_resources_full": self.offered.to_protobuf_json(),
            "attributes": flatten_attributes(self.info.get("attributes", [])),
            "active": self.active,
            "deactivated": False,
            "version": self.version,
            "capabilities": self.capabilities,
            "domain": self.info.get("domain", {}),
        }
        if self.reregistered_time is not None:
            state["reregistered_time"] = self.reregistered_time
        return state
