"""A framework as the master knows it: its FrameworkInfo, its event stream, its tasks and offers."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from mesolite.master.streams import EventStream
from mesolite.master.tasks import Task
from mesolite.protocol.v1 import now
from mesolite.resources import DEFAULT_ROLE

# Completed tasks and frameworks kept for /state, as Mesos's --max_completed_* flags do.
MAX_COMPLETED_TASKS = 1000


def framework_roles(info: dict) -> tuple[str, ...]:
    """The roles a FrameworkInfo subscribes to: `roles` with MULTI_ROLE, else `role` (default `*`)."""
    capabilities = {item.get("type") for item in info.get("capabilities", []) if isinstance(item, dict)}
    if "MULTI_ROLE" in capabilities:
        return tuple(info.get("roles") or ()) or (DEFAULT_ROLE,)
    return (info.get("role") or DEFAULT_ROLE,)


def is_partition_aware(info: dict) -> bool:
    return any(item.get("type") == "PARTITION_AWARE" for item in info.get("capabilities", []) if isinstance(item, dict))


@dataclass
class Framework:
    framework_id: str
    info: dict
    stream: EventStream | None = None
    stream_id: str | None = None
    active: bool = True
    # Recovered from the registry or a re-registering agent, not (yet) subscribed to this master.
    recovered: bool = False
    registered_time: float = field(default_factory=now)
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    unreachable_tasks: dict[str, Task] = field(default_factory=dict)
    completed_tasks: deque[Task] = field(default_factory=lambda: deque(maxlen=MAX_COMPLETED_TASKS))
    offer_ids: set[str] = field(default_factory=set)
    failover_timer: asyncio.TimerHandle | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        return framework_roles(self.info)

    @property
    def partition_aware(self) -> bool:
        return is_partition_aware(self.info)

    @property
    def connected(self) -> bool:
        return self.stream is not None and not self.stream.closed

    @property
    def failover_timeout(self) -> float:
        value = self.info.get("failover_timeout", 0.0)
        return float(value) if isinstance(value, int | float) else 0.0

    def send(self, event: dict) -> bool:
        """Queue an event on the framework's stream; False when it is not connected."""
        if not self.connected:
            return False
        assert self.stream is not None
        self.stream.send(event)
        return True

    def send_encoded(self, record: bytes) -> bool:
        """Queue an event already JSON-encoded; False when the framework is not connected."""
        if not self.connected:
            return False
        assert self.stream is not None
        self.stream.send_encoded(record)
        return True

    def cancel_failover_timer(self) -> None:
        if self.failover_timer is not None:
            self.failover_timer.cancel()
            self.failover_timer = None
