"""Helpers for the Marathon tests: storage on the shared real ZooKeeper, offers, and a recording master client.

`RecordingMesos` stands in for `SchedulerClient` in the logic tests of the scheduler core (it records the
calls the core makes); the end-to-end tests use the real master and agents instead.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from harness.zookeeper import ZooKeeperServer
from mesolite.marathon.marathon import Marathon, MarathonSettings
from mesolite.marathon.scheduler import MesosScheduler
from mesolite.marathon.storage import MarathonStorage
from mesolite.zookeeper.session import ZooKeeperSession
from mesolite.zookeeper.store import ZooKeeperStore

_offer_numbers = itertools.count()


@pytest.fixture
async def zk_session(zookeeper: ZooKeeperServer) -> AsyncIterator[ZooKeeperSession]:
    session = ZooKeeperSession(zookeeper.url("/marathon"), session_timeout=5)
    await session.start()
    yield session
    await session.stop()


@pytest.fixture
def storage(zk_session: ZooKeeperSession) -> MarathonStorage:
    return MarathonStorage(ZooKeeperStore(zk_session, zk_session.url.child("state")))


class RecordingMesos:
    """Records the scheduler's calls to the master (the logic tests feed events by hand)."""

    def __init__(self) -> None:
        self.framework_id = "framework-1"
        self.calls: list[tuple[str, Any]] = []

    def of(self, kind: str) -> list[Any]:
        return [arguments for name, arguments in self.calls if name == kind]

    def launched(self) -> list[dict]:
        return [
            task
            for offer_ids, operations, _filters in self.of("accept")
            for operation in operations
            for task in operation["launch"]["task_infos"]
        ]

    async def accept(self, offer_ids, operations, filters=None):
        self.calls.append(("accept", (list(offer_ids), operations, filters)))

    async def decline(self, offer_ids, filters=None):
        self.calls.append(("decline", (list(offer_ids), filters)))

    async def acknowledge(self, status):
        self.calls.append(("acknowledge", status))

    async def kill(self, task_id, agent_id=None, kill_policy=None):
        self.calls.append(("kill", task_id))

    async def reconcile(self, tasks=()):
        self.calls.append(("reconcile", list(tasks)))

    async def revive(self, roles=None):
        self.calls.append(("revive", None))

    async def suppress(self, roles=None):
        self.calls.append(("suppress", None))


@pytest.fixture
async def scheduler(storage: MarathonStorage) -> MesosScheduler:
    marathon = Marathon(storage, MarathonSettings())
    await marathon.load()
    mesos_scheduler = MesosScheduler(marathon)
    mesos_scheduler.attach(RecordingMesos())
    await mesos_scheduler.on_event({"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "framework-1"}}})
    return mesos_scheduler


def offer(hostname: str = "host-a", cpus: float = 4, mem: float = 4096, ports=((31000, 31100),), attributes=()):
    number = next(_offer_numbers)
    return {
        "id": {"value": f"offer-{number}"},
        "framework_id": {"value": "framework-1"},
        "agent_id": {"value": f"agent-{hostname}"},
        "hostname": hostname,
        "attributes": list(attributes),
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": "*"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": "*"},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": 10000}, "role": "*"},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": b, "end": e} for b, e in ports]}},
        ],
    }


def status(task_id: str, state: str, agent: str = "agent-host-a", **extra) -> dict:
    return {
        "type": "UPDATE",
        "update": {
            "status": {
                "task_id": {"value": task_id},
                "agent_id": {"value": agent},
                "state": state,
                "uuid": "dXVpZA==",
                **extra,
            }
        },
    }


# -- real processes -----------------------------------------------------------------------------------

import collections  # noqa: E402
import collections.abc  # noqa: E402

# marathon-python 0.13 still uses the alias removed in Python 3.10.
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from harness.processes import free_port  # noqa: E402


def start_marathon(launcher, master: str, zk: str, *extra: str, name: str = "marathon"):
    port = free_port()
    return launcher.start(
        name, "marathon", f"--master={master}", f"--zk={zk}", f"--http_port={port}", "--hostname=127.0.0.1",
        "--http_address=127.0.0.1", *extra, port=port, health_path="/v2/apps",
    )  # fmt: skip
