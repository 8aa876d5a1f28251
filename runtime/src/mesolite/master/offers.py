"""Outstanding offers: who holds them, on which agent, and the v1 JSON `Offer` the framework sees."""

from __future__ import annotations

from dataclasses import dataclass, field

from mesolite.master.agents import Agent
from mesolite.protocol.v1 import id_value, now
from mesolite.resources import Resources


@dataclass
class Offer:
    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    created: float = field(default_factory=now)

    def to_protobuf_json(self, agent: Agent, executor_ids: list[str]) -> dict:
        return {
            "id": id_value(self.offer_id),
            "framework_id": id_value(self.framework_id),
            "agent_id": id_value(self.agent_id),
            "hostname": agent.hostname,
            "url": agent.url_json(),
            "resources": self.resources.to_protobuf_json(allocation_role=self.role),
            "attributes": agent.info.get("attributes", []),
            "executor_ids": [id_value(executor_id) for executor_id in executor_ids],
            "allocation_info": {"role": self.role},
            **({"domain": agent.info["domain"]} if "domain" in agent.info else {}),
        }

    def to_state_json(self) -> dict:
        return {
            "id": self.offer_id,
            "framework_id": self.framework_id,
            "slave_id": self.agent_id,
            "agent_id": self.agent_id,
            "resources": self.resources.flatten(),
            "allocation_info": {"role": self.role},
        }
