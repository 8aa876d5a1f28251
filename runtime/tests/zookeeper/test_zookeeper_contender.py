"""Master election as Mesos does it, against a real ZooKeeper, including losing the session."""

# ruff: noqa: F811 - pytest fixtures imported from zookeeper_testing are redefined as parameters

import asyncio
import json

import pytest
from zookeeper_testing import (  # noqa: F401 - fixtures
    TEST_SESSION_TIMEOUT,
    eventually,
    expire_session,
    freeze,
    private_zookeeper,
    session,
    thaw,
    zk_url,
)

from mesolite.zookeeper.contender import Contender
from mesolite.zookeeper.session import ZooKeeperSession

pytestmark = pytest.mark.integration


class Recorder:
    """Records election callbacks; fails the test if two recorders lead at the same time."""

    leaders: set[str]

    def __init__(self, name: str, leaders: set[str]) -> None:
        self.name, self.leaders, self.events = name, leaders, []

    def elected(self) -> None:
        assert not self.leaders, f"{self.name} elected while {self.leaders} still lead"
        self.leaders.add(self.name)
        self.events.append("elected")

    def lost(self, reason: str) -> None:
        self.leaders.discard(self.name)
        self.events.append(f"lost: {reason}")


def master_info(port: int) -> dict:
    return {"id": f"master-{port}", "ip": 16777343, "port": port, "pid": f"master@127.0.0.1:{port}",
            "hostname": "localhost", "version": "1.11.0",
            "address": {"hostname": "localhost", "ip": "127.0.0.1", "port": port}}  # fmt: skip


async def test_znode_is_mesos_json_info_with_master_info(session):
    recorder = Recorder("a", set())
    contender = Contender(session, master_info(5050), recorder.elected, recorder.lost)
    await contender.start()
    await eventually(lambda: contender.is_leader, what="election")
    children = await session.run(session.client.get_children, session.url.path)
    assert len(children) == 1
    assert children[0].startswith("json.info_") and len(children[0]) == len("json.info_") + 10
    data, stat = await session.run(session.client.get, session.url.child(children[0]))
    assert json.loads(data) == master_info(5050)
    assert stat.ephemeralOwner == session.client.client_id[0]
    await contender.stop()
    assert await session.run(session.client.get_children, session.url.path) == []
    assert recorder.events == ["elected", "lost: withdrew from the election"]


async def test_lowest_sequence_leads_and_the_next_takes_over(zk_url):
    leaders: set[str] = set()
    sessions = [ZooKeeperSession(zk_url, session_timeout=TEST_SESSION_TIMEOUT) for _ in range(3)]
    recorders = [Recorder(name, leaders) for name in "abc"]
    contenders = []
    try:
        for index, (started, recorder) in enumerate(zip(sessions, recorders, strict=True)):
            await started.start()
            contender = Contender(started, master_info(5050 + index), recorder.elected, recorder.lost)
            await contender.start()
            contenders.append(contender)
        await eventually(lambda: leaders == {"a"}, what="the first contender to lead")
        assert [c.is_leader for c in contenders] == [True, False, False]
        # Killing the leader's session (as SIGKILL of a master would, after its timeout) elects the next one.
        await sessions[0].stop()
        await eventually(lambda: leaders == {"b"}, what="the second contender to lead")
        await contenders[1].stop()
        await eventually(lambda: leaders == {"c"}, what="the third contender to lead")
    finally:
        for started in sessions:
            await started.stop()


async def test_suspended_session_stops_leadership_at_once_and_resumes(private_zookeeper):
    leaders: set[str] = set()
    recorder = Recorder("a", leaders)
    async with ZooKeeperSession(private_zookeeper.url(), session_timeout=TEST_SESSION_TIMEOUT) as frozen_session:
        contender = Contender(frozen_session, master_info(5050), recorder.elected, recorder.lost)
        await contender.start()
        await eventually(lambda: contender.is_leader, what="election")
        node = contender.node
        freeze(private_zookeeper)
        try:
            # The client notices within the session timeout; the server could expire us only after it.
            await eventually(lambda: not leaders, within=TEST_SESSION_TIMEOUT * 2, what="leadership to end")
            assert not contender.is_leader
            assert recorder.events[-1] == "lost: ZooKeeper session SUSPENDED"
        finally:
            thaw(private_zookeeper)
        # The session survived (the server was frozen, not its clock): same znode, leading again.
        await eventually(lambda: contender.is_leader, what="leadership to resume after reconnecting")
        assert contender.node == node
        await contender.stop()


async def test_expired_session_loses_leadership_and_contends_with_a_new_znode(session):
    recorder = Recorder("a", set())
    contender = Contender(session, master_info(5050), recorder.elected, recorder.lost)
    await contender.start()
    await eventually(lambda: contender.is_leader, what="election")
    old_node = contender.node
    await asyncio.to_thread(expire_session, session)
    await eventually(lambda: contender.is_leader and contender.node != old_node, what="re-election with a new znode")
    # Expiry first shows as a dropped connection (SUSPENDED): leadership ends there already.
    assert recorder.events[0] == "elected" and recorder.events[1].startswith("lost: ZooKeeper session")
    assert recorder.events[2] == "elected"
    children = await session.run(session.client.get_children, session.url.path)
    assert children == [contender.node]
    await contender.stop()


async def test_deleted_znode_means_lost_then_contending_again(session):
    recorder = Recorder("a", set())
    contender = Contender(session, master_info(5050), recorder.elected, recorder.lost)
    await contender.start()
    await eventually(lambda: contender.is_leader, what="election")
    old_node = contender.node
    await session.run(session.client.delete, session.url.child(old_node))
    await eventually(lambda: contender.is_leader and contender.node != old_node, what="re-election")
    assert recorder.events[1].startswith("lost: our znode")
    await contender.stop()
