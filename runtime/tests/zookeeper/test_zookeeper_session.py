"""ZooKeeperSession against a real ZooKeeper: connecting, blocking calls off the loop, states on the loop."""

# ruff: noqa: F811 - pytest fixtures imported from zookeeper_testing are redefined as parameters

import asyncio
import time

import pytest
from zookeeper_testing import TEST_SESSION_TIMEOUT, expire_session, session, zk_url  # noqa: F401 - fixtures

from harness.processes import free_port
from harness.waiting import eventually
from mesolite.zookeeper.session import SessionState, ZooKeeperSession

pytestmark = pytest.mark.integration


async def test_run_executes_kazoo_calls(session):
    await session.run(session.client.ensure_path, session.url.child("a"))
    assert await session.run(session.client.get_children, session.url.path) == ["a"]
    assert session.connected


async def test_start_times_out_naming_the_servers():
    unused = f"zk://127.0.0.1:{free_port()}/mesos"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"127\.0\.0\.1:\d+ within 1s"):
        await ZooKeeperSession(unused).start(timeout=1)
    assert time.monotonic() - started < 5


async def test_states_arrive_on_the_event_loop_in_order(session):
    seen: list[tuple[SessionState, bool]] = []
    loop = asyncio.get_running_loop()

    def listener(state):
        # asyncio.get_running_loop() raises outside the loop's thread: this proves where we run.
        seen.append((state, asyncio.get_running_loop() is loop))

    session.add_state_listener(listener)
    await asyncio.to_thread(expire_session, session)
    await eventually(lambda: (SessionState.CONNECTED, True) in seen, what="a new session after expiry")
    assert [state for state, _ in seen] == [SessionState.SUSPENDED, SessionState.LOST, SessionState.CONNECTED]
    assert all(on_loop for _, on_loop in seen)
    assert session.connected


async def test_digest_credentials_protect_what_we_create(zookeeper):
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError

    url = zookeeper.url().replace("zk://", "zk://mesos:s3cret@")
    async with ZooKeeperSession(url, session_timeout=TEST_SESSION_TIMEOUT) as authenticated:
        node = authenticated.url.child("protected")
        await authenticated.run(authenticated.client.ensure_path, authenticated.url.path)
        await authenticated.run(authenticated.client.create, node, b"value")
        anonymous = KazooClient(hosts=zookeeper.hosts)
        anonymous.start(10)
        try:
            assert anonymous.get(node)[0] == b"value"  # everyone may read (detectors run without credentials)
            with pytest.raises(NoAuthError):
                anonymous.set(node, b"changed")
        finally:
            anonymous.stop()
            anonymous.close()
