"""Digest credentials in the zk:// URL and the ACLs of the znodes mesolite creates, against a real ZooKeeper.

The master's leader znodes are world-readable (detectors run without credentials) and owned by their creator;
the registry, Marathon's state and Marathon's leader znodes belong to their owner alone. Without credentials
everything stays open, as before; a path created open (before credentials) keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Permissions
from marathon_testing import start_marathon
from master_helpers import Scheduler, elected, start_contending_master
from zookeeper_testing import TEST_SESSION_TIMEOUT

from harness.http import http
from harness.processes import free_port
from harness.waiting import eventually, wait_for
from harness.zookeeper import ZooKeeperServer
from mesolite.marathon.storage import MarathonStorage, StorageUnavailable
from mesolite.master.registry import Registry
from mesolite.zookeeper.detector import detect_leading_master
from mesolite.zookeeper.election import MARATHON_MEMBER_LABEL, LeaderElection, SuspensionPolicy
from mesolite.zookeeper.session import ZooKeeperSession
from mesolite.zookeeper.store import ZooKeeperStore

pytestmark = pytest.mark.integration

OWNER = "mesos:s3cret"
INTRUDER = "mallory:guess"
MASTER_INFO = {"id": "master-1", "ip": 16777343, "port": 5050, "pid": "master@127.0.0.1:5050",
               "hostname": "localhost", "version": "1.11.0",
               "address": {"hostname": "localhost", "ip": "127.0.0.1", "port": 5050}}  # fmt: skip


def with_credentials(url: str, credentials: str) -> str:
    return url.replace("zk://", f"zk://{credentials}@", 1)


@contextlib.contextmanager
def kazoo_client(server: ZooKeeperServer, digest: str | None = None) -> Iterator[KazooClient]:
    """A plain kazoo client, anonymous or authenticated with `digest` (`user:password`)."""
    client = KazooClient(hosts=server.hosts, auth_data=[("digest", digest)] if digest else None)
    client.start(10)
    try:
        yield client
    finally:
        client.stop()
        client.close()


@contextlib.asynccontextmanager
async def zookeeper_session(url: str) -> AsyncIterator[ZooKeeperSession]:
    """A started session; the test's chroot is deleted afterwards (as far as its credentials allow)."""
    session = ZooKeeperSession(url, session_timeout=TEST_SESSION_TIMEOUT)
    await session.start()
    try:
        yield session
    finally:
        test_root = "/" + session.url.path.strip("/").split("/")[0]
        with contextlib.suppress(Exception):
            await session.run(session.client.delete, test_root, recursive=True)
        await session.stop()


@pytest.fixture
async def owner(zookeeper) -> AsyncIterator[ZooKeeperSession]:
    """A session that authenticates as OWNER, on a fresh chroot."""
    async with zookeeper_session(with_credentials(zookeeper.url(), OWNER)) as session:
        yield session


def permissions_by_identity(client: KazooClient, path: str) -> dict[str, int]:
    """The node's ACL as {"scheme:id": permissions}, digest ids shortened to their user name."""
    acls, _stat = client.get_acls(path)
    return {f"{acl.id.scheme}:{acl.id.id.split(':')[0]}": acl.perms for acl in acls}


async def elect(session: ZooKeeperSession, **options) -> LeaderElection:
    terms: list[str] = []
    election = LeaderElection(
        session,
        options.pop("data", MASTER_INFO),
        lambda: terms.append("elected"),
        terms.append,
        policy=options.pop("policy", SuspensionPolicy.KEEP_TERM_UNTIL_EXPIRY),
        **options,
    )
    await election.start()
    await eventually(lambda: election.is_leader, what="the election to elect its only candidate")
    return election


def assert_private(server: ZooKeeperServer, path: str, children: bool = True) -> None:
    """Neither an anonymous client nor another digest user may read `path` (nor list it)."""
    for digest in (None, INTRUDER):
        with kazoo_client(server, digest) as other:
            with pytest.raises(NoAuthError):
                other.get(path)
            if children:
                with pytest.raises(NoAuthError):
                    other.get_children(path)


# --- what each kind of znode gets -------------------------------------------------------------------------


async def test_master_leader_znodes_are_world_readable_and_only_their_creator_changes_them(zookeeper, owner):
    election = await elect(owner)
    try:
        member = election.node_path
        with kazoo_client(zookeeper) as anonymous:
            assert anonymous.get_children(election.path) == [election.node]
            assert json.loads(anonymous.get(member)[0])["id"] == "master-1"
            for change in (
                lambda: anonymous.set(member, b"{}"),
                lambda: anonymous.delete(member),
                lambda: anonymous.create(f"{election.path}/json.info_", b"{}", sequence=True),
                lambda: anonymous.delete(election.path, recursive=True),
            ):
                with pytest.raises(NoAuthError):
                    change()
            for path in (election.path, member):
                assert permissions_by_identity(anonymous, path) == {
                    "world:anyone": Permissions.READ,
                    "digest:mesos": Permissions.ALL,
                }
    finally:
        await election.stop()


async def test_the_registry_is_readable_only_by_its_owner(zookeeper, owner):
    registry = Registry(owner, owner.url.path, agent_snapshot=lambda _id: None, framework_snapshot=lambda _id: None)
    await registry.agents.put("agent-1", json.dumps({"state": "admitted"}).encode())
    await registry.frameworks.put("framework-1", json.dumps({"removed": False}).encode())
    # A value larger than a znode is split into chunks: they hold the data too.
    chunked = ZooKeeperStore(owner, registry.agents.root, chunk_size=16)
    await chunked.put("agent-2", json.dumps({"state": "admitted", "tasks": ["t"] * 10}).encode())

    for store, key in ((registry.agents, "agent-1"), (registry.frameworks, "framework-1")):
        assert_private(zookeeper, store.root)
        assert_private(zookeeper, store._key_path(key))
    with kazoo_client(zookeeper, OWNER) as same_owner:
        (chunk,) = same_owner.get_children(chunked._key_path("agent-2"))[:1]
    assert_private(zookeeper, f"{chunked._key_path('agent-2')}/{chunk}", children=False)

    agents, frameworks = await registry.load()
    assert agents["agent-1"] == {"state": "admitted"} and agents["agent-2"]["tasks"] == ["t"] * 10
    assert frameworks == {"framework-1": {"removed": False}}


async def test_marathon_state_is_readable_only_by_its_owner(zookeeper, owner):
    storage = MarathonStorage(ZooKeeperStore(owner, owner.url.child("state")))
    await storage.save_framework_id("framework-1")
    await storage.save_app({"id": "/secret-app", "version": "2026-01-01T00:00:00.000Z", "cmd": "env"})

    assert_private(zookeeper, storage.store.root)
    for key in await storage.store.list():
        assert_private(zookeeper, storage.store._key_path(key))
    loaded = await storage.load()
    assert loaded.framework_id == "framework-1" and loaded.apps["/secret-app"]["cmd"] == "env"


async def test_marathon_leader_znodes_are_readable_only_by_marathon_instances(zookeeper, owner):
    leader_path = owner.url.child("leader")
    election = await elect(
        owner,
        data=b"marathon-1:8080",
        label=MARATHON_MEMBER_LABEL,
        path=leader_path,
        policy=SuspensionPolicy.STEP_DOWN_WHEN_SUSPENDED,
    )
    try:
        assert_private(zookeeper, leader_path)
        assert_private(zookeeper, election.node_path, children=False)
        # Another instance with the same credentials reads who leads (to proxy requests to it).
        async with zookeeper_session(with_credentials(f"zk://{zookeeper.hosts}{owner.url.path}", OWNER)) as standby:
            candidate = LeaderElection(
                standby,
                b"marathon-2:8080",
                lambda: None,
                lambda _reason: None,
                policy=SuspensionPolicy.STEP_DOWN_WHEN_SUSPENDED,
                label=MARATHON_MEMBER_LABEL,
                path=leader_path,
            )
            await candidate.start()
            try:
                await eventually(
                    lambda: candidate.leader_data == b"marathon-1:8080", what="the standby to see the leader"
                )
                assert not candidate.is_leader
            finally:
                await candidate.stop()
    finally:
        await election.stop()


async def test_without_credentials_everything_is_created_open_as_before(zookeeper):
    async with zookeeper_session(zookeeper.url()) as anonymous_session:
        election = await elect(anonymous_session)
        store = ZooKeeperStore(anonymous_session, anonymous_session.url.child("registry"))
        await store.put("key", b"value")
        try:
            with kazoo_client(zookeeper) as client:
                for path in (election.path, election.node_path, store.root, store._key_path("key")):
                    assert client.get_acls(path)[0] == OPEN_ACL_UNSAFE, path
        finally:
            await election.stop()


# --- an open cluster that gets credentials ----------------------------------------------------------------


async def test_paths_created_open_keep_working_and_new_znodes_get_acls(zookeeper, caplog):
    url = zookeeper.url()
    async with zookeeper_session(url) as before:  # the cluster as it ran without credentials
        old_registry = ZooKeeperStore(before, before.url.child("registry/agents"))
        await old_registry.put("old-agent", b'{"state": "admitted"}')
        await before.run(before.client.ensure_path, before.url.path)

        caplog.set_level(logging.WARNING, logger="mesolite.zookeeper")
        async with zookeeper_session(with_credentials(url, OWNER)) as after:
            election = await elect(after)
            try:
                registry = ZooKeeperStore(after, old_registry.root)
                assert await registry.get("old-agent") == b'{"state": "admitted"}'
                await registry.put("old-agent", b'{"state": "removed"}')
                await registry.put("new-agent", b'{"state": "admitted"}')

                assert_private(zookeeper, registry._key_path("new-agent"))
                with kazoo_client(zookeeper) as anonymous:
                    assert anonymous.get_acls(election.path)[0] == OPEN_ACL_UNSAFE  # not re-ACL'd
                    assert permissions_by_identity(anonymous, election.node_path) == {
                        "world:anyone": Permissions.READ,
                        "digest:mesos": Permissions.ALL,
                    }
                    assert anonymous.get(registry._key_path("old-agent"))[0].endswith(b'{"state": "removed"}')
            finally:
                await election.stop()
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    for path in (election.path, old_registry.root):
        assert any(path in message and "open ACL" in message for message in warnings), warnings


async def test_a_private_path_left_world_readable_is_reported(owner, caplog):
    """An earlier mesolite gave every znode a world-readable ACL, the registry's too: say how to close it."""
    root = owner.url.child("registry/agents")
    await owner.run(owner.client.create, root, b"", acl=CREATOR_ALL_ACL + READ_ACL_UNSAFE, makepath=True)
    caplog.set_level(logging.WARNING, logger="mesolite.zookeeper")
    await ZooKeeperStore(owner, root).put("agent-1", b"{}")
    assert any(f"setAcl -R {root} auth::cdrwa" in record.getMessage() for record in caplog.records), caplog.text


# --- wrong credentials ------------------------------------------------------------------------------------


async def test_wrong_credentials_are_refused_with_an_error_naming_the_path(zookeeper, owner):
    registry = Registry(owner, owner.url.path, agent_snapshot=lambda _id: None, framework_snapshot=lambda _id: None)
    await registry.agents.put("agent-1", b"{}")
    storage = MarathonStorage(ZooKeeperStore(owner, owner.url.child("state")))
    await storage.save_framework_id("framework-1")

    intruder_url = with_credentials(f"zk://{zookeeper.hosts}{owner.url.path}", INTRUDER)
    async with zookeeper_session(intruder_url) as intruder:
        intruders_registry = Registry(
            intruder, intruder.url.path, agent_snapshot=lambda _id: None, framework_snapshot=lambda _id: None
        )
        with pytest.raises(NoAuthError, match=rf"refused.*'mallory'.*{registry.agents.root}"):
            await intruders_registry.load()
        with pytest.raises(NoAuthError, match=rf"refused.*'mallory'.*{registry.agents.root}/agent-1"):
            await intruders_registry.agents.put("agent-1", b"{}")
        intruders_storage = MarathonStorage(ZooKeeperStore(intruder, intruder.url.child("state")))
        with pytest.raises(StorageUnavailable, match=rf"refused.*'mallory'.*{storage.store.root}"):
            await intruders_storage.save_framework_id("framework-2")


async def test_an_election_with_wrong_credentials_logs_why_and_keeps_trying(zookeeper, owner, caplog):
    leader = await elect(owner)
    caplog.set_level(logging.ERROR, logger="mesolite.zookeeper")
    intruder_url = with_credentials(f"zk://{zookeeper.hosts}{owner.url.path}", INTRUDER)
    try:
        async with zookeeper_session(intruder_url) as intruder:
            candidate = LeaderElection(
                intruder,
                MASTER_INFO,
                lambda: None,
                lambda _reason: None,
                policy=SuspensionPolicy.KEEP_TERM_UNTIL_EXPIRY,
            )
            await candidate.start()  # no exception: the election keeps trying, slowly
            try:
                await eventually(
                    lambda: any(
                        "refused" in record.getMessage() and leader.path in record.getMessage()
                        for record in caplog.records
                    ),
                    what="an error naming the path and the refused credentials",
                )
                assert candidate.node is None and not candidate.is_leader
                assert candidate.leader_data is None  # nothing was read with the refused credentials
            finally:
                await candidate.stop()
    finally:
        await leader.stop()


async def test_a_term_that_cannot_start_steps_aside_for_another_candidate(zookeeper, owner):
    """A leader whose recovery fails (its registry refuses its credentials) must not hold the lowest znode."""
    attempts: list[str] = []

    def refuse() -> None:
        attempts.append("refused")
        raise NoAuthError("ZooKeeper refused the credentials of 'mallory' for /registry")

    failing = LeaderElection(
        owner, MASTER_INFO, refuse, lambda _reason: None, policy=SuspensionPolicy.KEEP_TERM_UNTIL_EXPIRY
    )
    await failing.start()  # the failed term does not escape from the election
    try:
        await eventually(lambda: attempts, what="the first term to start and fail")
        async with zookeeper_session(f"zk://{OWNER}@{zookeeper.hosts}{owner.url.path}") as other:
            healthy = await elect(other)
            assert healthy.is_leader and not failing.is_leader
            await healthy.stop()
    finally:
        await failing.stop()


async def test_a_detector_refused_by_a_protected_path_says_so(zookeeper, owner):
    """Someone protected the masters' path against the convention: a detector names the refusal, not just 'none'."""
    await owner.run(owner.client.create, owner.url.path, b"", acl=CREATOR_ALL_ACL, makepath=True)
    await owner.run(owner.client.create, owner.url.child("json.info_"), json.dumps(MASTER_INFO).encode(), sequence=True)
    with pytest.raises(TimeoutError, match=rf"no leading master found .* ZooKeeper refused .*{owner.url.path}"):
        await detect_leading_master(f"zk://{zookeeper.hosts}{owner.url.path}", timeout=2)
    leader = await detect_leading_master(with_credentials(f"zk://{zookeeper.hosts}{owner.url.path}", OWNER), 10)
    assert leader["id"] == "master-1"


# --- real processes ---------------------------------------------------------------------------------------


def resolve(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mesolite.cli.resolve", "--timeout=10secs", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_master_with_credentials_is_found_without_them_and_keeps_its_registry_private(launcher, zookeeper):
    url = zookeeper.url()
    master = start_contending_master(launcher, with_credentials(url, OWNER))
    await asyncio.to_thread(wait_for, lambda: elected(master), 30, what="the master with credentials to be elected")

    for detector_url in (url, with_credentials(url, OWNER), with_credentials(url, INTRUDER)):
        result = await asyncio.to_thread(resolve, detector_url)
        assert (result.returncode, result.stdout) == (0, f"127.0.0.1:{master.port}\n"), result.stderr

    # A framework's subscription is written to the registry: only the master's credentials read it.
    async with aiohttp.ClientSession() as http:
        scheduler = Scheduler(http, master.url())
        await scheduler.subscribe()
        try:
            record = f"{url.split('/', 3)[3]}/registry/frameworks/{scheduler.framework_id}"
            with kazoo_client(zookeeper, OWNER) as same_owner:
                await eventually(lambda: same_owner.exists(f"/{record}"), what="the framework's registry record")
            assert_private(zookeeper, f"/{record}", children=False)
        finally:
            await scheduler.close()
    assert "s3cret" not in master.log()


def test_a_master_with_wrong_credentials_stays_up_and_says_why(launcher, zookeeper):
    url = zookeeper.url()
    owner = start_contending_master(launcher, with_credentials(url, OWNER))
    wait_for(lambda: elected(owner), 30, what="the master with the right credentials to be elected")

    intruder = start_contending_master(launcher, with_credentials(url, INTRUDER))
    path = url.split("/", 3)[3]
    wait_for(
        lambda: "refused" in intruder.log() and f"/{path}" in intruder.log(),
        30,
        what="the master with wrong credentials to log why it cannot contend",
    )
    time.sleep(1)
    assert intruder.process.poll() is None, intruder.log()
    assert not elected(intruder)
    assert "Traceback" not in intruder.log()
    assert "guess" not in intruder.log()


def test_marathon_with_credentials_keeps_its_state_and_leader_private(launcher, zookeeper):
    root = f"/{zookeeper.url('').split('/', 3)[3]}"
    mesos, marathon_zk = f"zk://{zookeeper.hosts}{root}/mesos", f"zk://{zookeeper.hosts}{root}/marathon"
    master = start_contending_master(launcher, with_credentials(mesos, OWNER))
    wait_for(lambda: elected(master), 30, what="the master to be elected")
    marathon = start_marathon(launcher, with_credentials(mesos, OWNER), with_credentials(marathon_zk, OWNER))
    wait_for(lambda: http("GET", marathon.url("/v2/leader"))[0] == 200, 30, what="Marathon to lead")
    status, _headers, body = http("POST", marathon.url("/v2/apps"), {"id": "/private", "cmd": "sleep 1000"})
    assert status == 201, body

    with kazoo_client(zookeeper, OWNER) as same_owner:
        state_keys = same_owner.get_children(f"{root}/marathon/state")
        (member,) = same_owner.get_children(f"{root}/marathon/leader")
    assert any("private" in key for key in state_keys), state_keys
    for path in (f"{root}/marathon/state", f"{root}/marathon/leader"):
        assert_private(zookeeper, path)
    for key in state_keys:
        assert_private(zookeeper, f"{root}/marathon/state/{key}", children=False)
    assert_private(zookeeper, f"{root}/marathon/leader/{member}", children=False)

    # Another instance with wrong credentials cannot take part, stays up and says why.
    port = free_port()
    intruder = launcher.start(
        "intruder", "marathon", f"--master={mesos}", f"--zk={with_credentials(marathon_zk, INTRUDER)}",
        f"--http_port={port}", "--hostname=127.0.0.1", "--http_address=127.0.0.1", port=port, health_path="/ping",
    )  # fmt: skip
    wait_for(
        lambda: "refused" in intruder.log() and f"{root}/marathon/leader" in intruder.log(),
        30,
        what="the Marathon with wrong credentials to log why it cannot contend",
    )
    assert intruder.process.poll() is None and "Traceback" not in intruder.log()
    assert "s3cret" not in marathon.log() and "guess" not in intruder.log()
