"""Outstanding offers: who holds them, on which agent, and the v1 JSON `Offer` the framework sees."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from mesolite.master.agents import RegisteredAgent
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

    def to_protobuf_json(self, agent: RegisteredAgent, executor_ids: list[str]) -> dict:
        return {
            "id": id_value(self.offer_id),
            "framework_id": id_value(self.framework_id),
            "agent_id": id_value(self.agent_id),
            "hostname": agent.hostname,
            "url": agent.url_json(),
            "resources": _offered_resources_json(self.resources, self.role),
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


@functools.lru_cache(maxsize=4096)
def _offered_resources_json(resources: Resources, role: str) -> list[dict]:
    """The `resources` of an Offer, shared between equal offers: a cluster of alike agents makes alike offers
    (10,000 of them in the first cycle at 10,000 agents), and building the JSON was most of that cycle's cost."""
    return resources.to_protobuf_json(allocation_role=role)
