"""Outstanding offers: who holds them, on which agent, and the v1 JSON `Offer` the framework sees."""

from __future__ import annotations

import functools
import itertools
import time
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
    # For --offer_timeout: a monotonic clock, so that a step of the wall clock expires nothing early or late.
    made_at: float = field(default_factory=time.monotonic)

    def to_protobuf_json(
        self, agent: RegisteredAgent, executor_ids: list[str], unavailability: dict | None = None
    ) -> dict:
        """The v1 Offer; `unavailability` when the agent's machine is scheduled for maintenance."""
        offer = {
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
        if unavailability is not None:
            offer["unavailability"] = unavailability
        return offer

    def to_state_json(self) -> dict:
        return {
            "id": self.offer_id,
            "framework_id": self.framework_id,
            "slave_id": self.agent_id,
            "agent_id": self.agent_id,
            "resources": self.resources.flatten(),
            "allocation_info": {"role": self.role},
        }


def expired_offers(offers: dict[str, Offer], timeout: float, now_monotonic: float) -> list[Offer]:
    """The offers of `offers` made more than `timeout` seconds before `now_monotonic`, oldest first.

    `offers` holds them in the order they were made (a dict keeps insertion order, and an offer is added once,
    when made), so the scan stops at the first one still young: each check costs the number of offers expiring,
    not the number outstanding (tens of thousands at 50,000 agents, checked every allocation interval)."""
    deadline = now_monotonic - timeout
    return list(itertools.takewhile(lambda offer: offer.made_at <= deadline, offers.values()))


@functools.lru_cache(maxsize=4096)
def _offered_resources_json(resources: Resources, role: str) -> list[dict]:
    """The `resources` of an Offer, shared between equal offers: a cluster of alike agents makes alike offers
    (10,000 of them in the first cycle at 10,000 agents), and building the JSON was most of that cycle's cost."""
    return resources.to_protobuf_json(allocation_role=role)
