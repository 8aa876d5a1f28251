"""Outstanding offers: who holds them, on which agent, and the v1 JSON `Offer` the framework sees."""

from __future__ import annotations

import functools
import itertools
import json
import time
from dataclasses import dataclass, field

from mesolite.master.agents import RegisteredAgent
from mesolite.protocol.v1 import encode_json, id_value, now
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


class OfferEncoder:
    """The v1 JSON of offers as bytes, joined from parts encoded once (issue 16).

    Encoding each Offer's JSON was most of an allocation cycle's cost (the first cycle at 50,000 agents makes
    50,000 offers), while almost all of it repeats: what describes the agent (hostname, url, attributes,
    domain) is encoded once per agent, and resources once per distinct (resources, role). The bytes decode to
    exactly `Offer.to_protobuf_json`'s dict. An agent's part is encoded again when its AgentInfo is replaced
    (re-registration replaces the dict, which the cache compares by identity and keeps alive)."""

    # Offer.to_protobuf_json's fields that differ between offers of one agent; the rest is the agent's part.
    PER_OFFER_FIELDS = ("id", "framework_id", "resources", "allocation_info", "unavailability")

    def __init__(self) -> None:
        self._agent_parts: dict[str, tuple[dict, bytes]] = {}

    def encode(self, offer: Offer, agent: RegisteredAgent, unavailability: dict | None = None) -> bytes:
        cached = self._agent_parts.get(agent.agent_id)
        if cached is None or cached[0] is not agent.info:
            fields = offer.to_protobuf_json(agent, [])
            for name in self.PER_OFFER_FIELDS:
                fields.pop(name, None)
            cached = self._agent_parts[agent.agent_id] = (agent.info, encode_json(fields)[1:-1])
        parts = [
            b'{"id":',
            _id_json(offer.offer_id),
            b',"framework_id":',
            _framework_id_json(offer.framework_id),
            b",",
            cached[1],
            b',"resources":',
            _resources_json_bytes(offer.resources, offer.role),
            b',"allocation_info":',
            _allocation_info_json(offer.role),
        ]
        if unavailability is not None:
            parts += [b',"unavailability":', encode_json(unavailability)]
        parts.append(b"}")
        return b"".join(parts)

    def forget(self, agent_id: str) -> None:
        self._agent_parts.pop(agent_id, None)


def offers_event(encoded_offers: list[bytes]) -> bytes:
    """The OFFERS event carrying offers encoded by `OfferEncoder`."""
    return b'{"type":"OFFERS","offers":{"offers":[' + b",".join(encoded_offers) + b"]}}"


def _id_json(value: str) -> bytes:
    # json.dumps of a lone string with default options takes the C encoder's fast path (encode_json's
    # separators make it build an encoder per call); the separators change nothing in a string.
    return b'{"value":' + json.dumps(value).encode() + b"}"


@functools.lru_cache(maxsize=1024)
def _framework_id_json(framework_id: str) -> bytes:
    return _id_json(framework_id)


@functools.lru_cache(maxsize=4096)
def _resources_json_bytes(resources: Resources, role: str) -> bytes:
    return encode_json(_offered_resources_json(resources, role))


@functools.lru_cache(maxsize=256)
def _allocation_info_json(role: str) -> bytes:
    return encode_json({"role": role})


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
