"""Identifiers in Mesos's shapes: master ids, framework ids, agent ids, offer ids, container ids.

A master picks a fresh UUID when it starts; every id it hands out is `<master id>-<kind><counter>`,
so ids stay unique across failovers without any coordination (a new leader has a new master id).
"""

from __future__ import annotations

import itertools
import uuid


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_master_id() -> str:
    return new_uuid()


def new_container_id() -> str:
    return new_uuid()


class IdGenerator:
    """Hands out the ids of one master run, in Mesos's formats.

    framework `<master>-0000`, agent `<master>-S0`, offer `<master>-O0`.
    """

    def __init__(self, master_id: str):
        self.master_id = master_id
        self._frameworks = itertools.count()
        self._agents = itertools.count()
        self._offers = itertools.count()

    def framework_id(self) -> str:
        return f"{self.master_id}-{next(self._frameworks):04d}"

    def agent_id(self) -> str:
        return f"{self.master_id}-S{next(self._agents)}"

    def offer_id(self) -> str:
        return f"{self.master_id}-O{next(self._offers)}"
