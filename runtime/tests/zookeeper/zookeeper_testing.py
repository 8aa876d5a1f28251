"""Helpers for the ZooKeeper tests: sessions on the shared server, and a private server tests may freeze."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator

import pytest
from kazoo.client import KazooClient

from harness.processes import stop_process
from harness.zookeeper import ZooKeeperServer, start_zookeeper
from mesolite.zookeeper.session import ZooKeeperSession

# Short sessions make suspension and expiry quick; the test server allows 1-30 s.
TEST_SESSION_TIMEOUT = 2.0


@pytest.fixture
def zk_url(zookeeper: ZooKeeperServer) -> str:
    """A zk:// URL with a fresh chroot on the shared ZooKeeper."""
    return zookeeper.url()


@pytest.fixture
async def session(zk_url: str) -> AsyncIterator[ZooKeeperSession]:
    started = ZooKeeperSession(zk_url, session_timeout=TEST_SESSION_TIMEOUT)
    await started.start()
    yield started
    # Remove this test's chroot: the server is shared by the whole run and holds its tree in memory.
    test_root = "/" + started.url.path.strip("/").split("/")[0]
    with contextlib.suppress(Exception):
        await started.run(started.client.delete, test_root, recursive=True)
    await started.stop()


@pytest.fixture
def private_zookeeper(tmp_path) -> ZooKeeperServer:
    """A ZooKeeper of this test's own, for tests that freeze or kill it."""
    server = start_zookeeper(tmp_path / "private-zookeeper")
    yield server
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGCONT)
    stop_process(server.process)


def freeze(server: ZooKeeperServer) -> None:
    """Stop the server process (SIGSTOP): clients time out as on a network partition; sessions do not expire."""
    os.killpg(server.process.pid, signal.SIGSTOP)


def thaw(server: ZooKeeperServer) -> None:
    os.killpg(server.process.pid, signal.SIGCONT)


def expire_session(session: ZooKeeperSession) -> None:
    """Make the server expire `session` for real: a second client attaches to it and closes it."""
    session_id, password = session.client.client_id
    intruder = KazooClient(hosts=session.url.hosts, client_id=(session_id, password))
    intruder.start(10)
    intruder.stop()
    intruder.close()
