"""The one leader election (master and Marathon), against a real ZooKeeper, including dropped connections,
timed-out and expired sessions, under both suspension policies."""

# ruff: noqa: F811 - pytest fixtures imported from zookeeper_testing are redefined as parameters

import asyncio
import json

import pytest
from kazoo.exceptions import ConnectionLoss
from zookeeper_testing import (  # noqa: F401 - fixtures
    TEST_SESSION_TIMEOUT,
    expire_session,
    freeze,
    private_zookeeper,
    session,
    thaw,
    zk_url,
)

from harness.waiting import eventually
from mesolite.zookeeper.election import MARATHON_MEMBER_LABEL, LeaderElection, SuspensionPolicy
from mesolite.zookeeper.session import SessionState, ZooKeeperSession

pytestmark = pytest.mark.integration

KEEP_TERM = SuspensionPolicy.KEEP_TERM_UNTIL_EXPIRY
STEP_DOWN = SuspensionPolicy.STEP_DOWN_WHEN_SUSPENDED


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


def master_election(session: ZooKeeperSession, recorder: Recorder, port: int = 5050) -> LeaderElection:
    return LeaderElection(session, master_info(port), recorder.elected, recorder.lost, policy=KEEP_TERM)


def marathon_election(session: ZooKeeperSession, recorder: Recorder, address: str) -> LeaderElection:
    return LeaderElection(
        session,
        address.encode(),
        recorder.elected,
        recorder.lost,
        policy=STEP_DOWN,
        label=MARATHON_MEMBER_LABEL,
        path=session.url.child("leader"),
    )


def record_states(session: ZooKeeperSession) -> list[SessionState]:
    states: list[SessionState] = []
    session.add_state_listener(states.append)
    return states


async def test_znode_is_mesos_json_info_with_master_info(session):
    recorder = Recorder("a", set())
    election = master_election(session, recorder)
    await election.start()
    await eventually(lambda: election.is_leader, what="election")
    children = await session.run(session.client.get_children, session.url.path)
    assert len(children) == 1
    assert children[0].startswith("json.info_") and len(children[0]) == len("json.info_") + 10
    data, stat = await session.run(session.client.get, session.url.child(children[0]))
    assert json.loads(data) == master_info(5050)
    assert election.leader_data == data
    assert stat.ephemeralOwner == session.client.client_id[0]
    await election.stop()
    assert await session.run(session.client.get_children, session.url.path) == []
    assert recorder.events == ["elected", "lost: withdrew from the election"]


async def test_marathon_members_hold_their_address(session):
    recorder = Recorder("a", set())
    election = marathon_election(session, recorder, "marathon-a:8080")
    await election.start()
    await eventually(lambda: election.is_leader, what="election")
    children = await session.run(session.client.get_children, session.url.child("leader"))
    assert len(children) == 1 and children[0].startswith("member_")
    assert election.leader_data == b"marathon-a:8080"
    await election.stop()


async def test_lowest_sequence_leads_and_the_next_takes_over(zk_url):
    leaders: set[str] = set()
    sessions = [ZooKeeperSession(zk_url, session_timeout=TEST_SESSION_TIMEOUT) for _ in range(3)]
    recorders = [Recorder(name, leaders) for name in "abc"]
    elections = []
    try:
        for index, (started, recorder) in enumerate(zip(sessions, recorders, strict=True)):
            await started.start()
            election = master_election(started, recorder, 5050 + index)
            await election.start()
            elections.append(election)
        await eventually(lambda: leaders == {"a"}, what="the first candidate to lead")
        assert [c.is_leader for c in elections] == [True, False, False]
        assert json.loads(elections[2].leader_data) == master_info(5050)
        # Killing the leader's session (as SIGKILL of a master would, after its timeout) elects the next one.
        await sessions[0].stop()
        await eventually(lambda: leaders == {"b"}, what="the second candidate to lead")
        await elections[1].stop()
        await eventually(lambda: leaders == {"c"}, what="the third candidate to lead")
    finally:
        for started in sessions:
            await started.stop()


async def test_a_dropped_connection_keeps_the_master_term_until_the_session_expires(private_zookeeper):
    """Mesos semantics (defect 2): SUSPENDED is not the end of a term; reconnecting within the timeout resumes it."""
    recorder = Recorder("a", set())
    async with ZooKeeperSession(private_zookeeper.url(), session_timeout=TEST_SESSION_TIMEOUT * 2) as suspended:
        states = record_states(suspended)
        election = master_election(suspended, recorder)
        await election.start()
        await eventually(lambda: election.is_leader, what="election")
        node = election.node
        freeze(private_zookeeper)
        try:
            await eventually(lambda: SessionState.SUSPENDED in states, within=TEST_SESSION_TIMEOUT * 2,
                             what="the connection to drop")  # fmt: skip
            assert election.is_leader, "the term must outlive a dropped connection"
        finally:
            thaw(private_zookeeper)
        await eventually(lambda: suspended.connected, what="reconnection")
        assert recorder.events == ["elected"]
        assert election.is_leader and election.node == node
        await election.stop()


async def test_a_master_disconnected_for_a_whole_session_timeout_ends_its_term(private_zookeeper):
    """A quorum loss looks like this to the client: no server answers; after the session timeout it steps down."""
    recorder = Recorder("a", set())
    async with ZooKeeperSession(private_zookeeper.url(), session_timeout=TEST_SESSION_TIMEOUT) as suspended:
        states = record_states(suspended)
        election = master_election(suspended, recorder)
        await election.start()
        await eventually(lambda: election.is_leader, what="election")
        freeze(private_zookeeper)
        try:
            await eventually(lambda: not election.is_leader, within=TEST_SESSION_TIMEOUT * 3, what="the term to end")
            assert SessionState.TIMED_OUT in states
            assert recorder.events[-1] == "lost: disconnected from ZooKeeper for longer than the session timeout"
            assert election.leader_data is None
        finally:
            thaw(private_zookeeper)
        # Whether the session survived the freeze or not, the master leads again once ZooKeeper answers.
        await eventually(lambda: election.is_leader, within=TEST_SESSION_TIMEOUT * 5, what="a new term")
        await election.stop()


async def test_marathon_steps_down_when_suspended_and_comes_back_with_a_new_znode(private_zookeeper):
    """Curator's LeaderLatch semantics (defect 4): SUSPENDED ends the term at once, nobody is known to lead."""
    recorder = Recorder("a", set())
    async with ZooKeeperSession(private_zookeeper.url(), session_timeout=TEST_SESSION_TIMEOUT * 2) as suspended:
        election = marathon_election(suspended, recorder, "marathon-a:8080")
        await election.start()
        await eventually(lambda: election.is_leader, what="election")
        node = election.node
        freeze(private_zookeeper)
        try:
            await eventually(lambda: not recorder.leaders, within=TEST_SESSION_TIMEOUT * 2, what="stepping down")
            assert not election.is_leader
            assert election.leader_data is None
            assert recorder.events[-1] == "lost: ZooKeeper connection suspended"
        finally:
            thaw(private_zookeeper)
        await eventually(lambda: election.is_leader, what="leadership again after reconnecting")
        assert election.node != node, "back in line with a new znode, as LeaderLatch does"
        children = await suspended.run(suspended.client.get_children, election.path)
        assert children == [election.node]
        await election.stop()


async def test_a_znode_whose_deletion_failed_is_deleted_before_contending_again(session, monkeypatch):
    """The chaos suite's Marathon that never led again: it stepped down, the connection dropped again while it
    deleted its old znode, and its new znode queued behind the old one, which its own live session kept.
    The dropped connection is injected into the one delete (fault injection; the rest is a real ZooKeeper)."""
    recorder = Recorder("a", set())
    election = marathon_election(session, recorder, "marathon-a:8080")
    await election.start()
    await eventually(lambda: election.is_leader, what="election")
    old_node = election.node
    real_delete = session.client.delete
    failures = []

    def delete_failing_once(path, *args, **kwargs):
        if not failures:
            failures.append(path)
            raise ConnectionLoss()
        return real_delete(path, *args, **kwargs)

    monkeypatch.setattr(session.client, "delete", delete_failing_once)
    await election._on_session_state(SessionState.SUSPENDED)  # what the session reports when it drops
    await election._on_session_state(SessionState.CONNECTED)
    await eventually(lambda: election.is_leader, within=TEST_SESSION_TIMEOUT * 3, what="leadership again")
    assert failures == [f"{election.path}/{old_node}"]
    children = await session.run(session.client.get_children, election.path)
    assert children == [election.node] and election.node != old_node
    await election.stop()


async def test_expired_session_loses_leadership_and_contends_with_a_new_znode(session):
    recorder = Recorder("a", set())
    election = master_election(session, recorder)
    await election.start()
    await eventually(lambda: election.is_leader, what="election")
    old_node = election.node
    await asyncio.to_thread(expire_session, session)
    await eventually(lambda: election.is_leader and election.node != old_node, what="re-election with a new znode")
    assert recorder.events == ["elected", "lost: ZooKeeper session expired", "elected"]
    children = await session.run(session.client.get_children, session.url.path)
    assert children == [election.node]
    await election.stop()


async def test_deleted_znode_means_lost_then_contending_again(session):
    recorder = Recorder("a", set())
    election = master_election(session, recorder)
    await election.start()
    await eventually(lambda: election.is_leader, what="election")
    old_node = election.node
    await session.run(session.client.delete, session.url.child(old_node))
    await eventually(lambda: election.is_leader and election.node != old_node, what="re-election")
    assert recorder.events[1].startswith("lost: our znode")
    await election.stop()


async def test_abdicating_hands_leadership_to_the_next_in_line(zk_url):
    leaders: set[str] = set()
    sessions = [ZooKeeperSession(zk_url, session_timeout=TEST_SESSION_TIMEOUT) for _ in range(2)]
    try:
        elections = []
        for name, started in zip("ab", sessions, strict=True):
            await started.start()
            election = marathon_election(started, Recorder(name, leaders), f"marathon-{name}:8080")
            await election.start()
            elections.append(election)
        await eventually(lambda: leaders == {"a"}, what="the first instance to lead")
        await elections[0].abdicate()
        await eventually(lambda: leaders == {"b"}, what="the second instance to lead")
        await eventually(lambda: elections[0].leader_data == b"marathon-b:8080", what="the first to see the second")
    finally:
        for started in sessions:
            await started.stop()
