"""ZooKeeperStore against a real ZooKeeper: values of any size, never torn, compare-and-set."""

# ruff: noqa: F811 - pytest fixtures imported from zookeeper_testing are redefined as parameters

import asyncio
import os

import pytest
from zookeeper_testing import session, zk_url  # noqa: F401 - fixtures

from mesolite.zookeeper.store import CHUNK_SIZE, MUST_NOT_EXIST, VersionConflict, ZooKeeperStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(session):
    return ZooKeeperStore(session, session.url.child("registry"))


async def test_small_values_round_trip(store):
    assert await store.get("agents") is None
    assert await store.put("agents", b"one") == 0
    assert await store.put("agents", b"two") == 1
    assert await store.get("agents") == b"two"
    assert await store.put("empty", b"") == 0
    assert await store.get("empty") == b""


async def test_large_values_are_chunked_and_round_trip(store, session):
    big = os.urandom(3 * 1024 * 1024 + 17)  # over three times ZooKeeper's 1 MB node limit
    await store.put("state", big)
    assert await store.get("state") == big
    chunks = await session.run(session.client.get_children, store._key_path("state"))
    assert len(chunks) == 4
    # Overwriting with a small value removes the old chunks.
    await store.put("state", b"small")
    assert await store.get("state") == b"small"
    assert await session.run(session.client.get_children, store._key_path("state")) == []
    # And a large value again, then another large one: only the newest generation's chunks remain.
    await store.put("state", big)
    await store.put("state", big[::-1])
    assert await store.get("state") == big[::-1]
    assert len(await session.run(session.client.get_children, store._key_path("state"))) == 4


async def test_value_of_exactly_one_chunk(store):
    value = b"x" * CHUNK_SIZE
    await store.put("edge", value)
    assert await store.get("edge") == value


async def test_keys_may_contain_slashes_and_list_by_prefix(store):
    for key in ("apps//prod/web", "apps//prod/db", "deployments/1", ".."):
        await store.put(key, key.encode())
    assert await store.list() == ["..", "apps//prod/db", "apps//prod/web", "deployments/1"]
    assert await store.list("apps/") == ["apps//prod/db", "apps//prod/web"]
    assert await store.get("apps//prod/web") == b"apps//prod/web"


async def test_delete(store):
    await store.put("small", b"v")
    await store.put("large", os.urandom(2 * CHUNK_SIZE))
    assert await store.delete("small") is True
    assert await store.delete("large") is True
    assert await store.delete("large") is False
    assert await store.get("large") is None
    assert await store.list() == []


async def test_compare_and_set(store):
    assert await store.put("agent/1", b"a", expected_version=MUST_NOT_EXIST) == 0
    with pytest.raises(VersionConflict, match="expected version -1, found version 0"):
        await store.put("agent/1", b"b", expected_version=MUST_NOT_EXIST)
    current = await store.get_versioned("agent/1")
    assert current.value == b"a" and current.version == 0
    assert await store.put("agent/1", b"b", expected_version=current.version) == 1
    with pytest.raises(VersionConflict, match="expected version 0, found version 1"):
        await store.put("agent/1", b"stale writer", expected_version=0)
    with pytest.raises(VersionConflict):
        await store.delete("agent/1", expected_version=0)
    assert await store.get("agent/1") == b"b"  # nothing already stored was lost
    assert await store.delete("agent/1", expected_version=1)


class RequestCounter:
    """Counts the requests a kazoo client sends (wrapping its real methods; the calls still reach ZooKeeper)."""

    def __init__(self, client, names=("exists", "get", "get_children", "set", "create", "transaction")):
        self.count = 0
        for name in names:
            setattr(client, name, self._counted(getattr(client, name)))

    def _counted(self, method):
        def counted(*args, **kwargs):
            self.count += 1
            return method(*args, **kwargs)

        return counted


async def test_rewriting_its_own_small_value_is_one_request(store, session):
    await store.put("agent", b"registered")
    counter = RequestCounter(session.client)
    assert await store.put("agent", b"updated") == 1
    assert await store.put("agent", b"updated again", expected_version=1) == 2
    assert counter.count == 2
    assert await store.get("agent") == b"updated again"


async def test_a_write_by_another_store_in_between_is_not_overwritten_blindly(store, session):
    other = ZooKeeperStore(session, store.root)
    await store.put("agent", b"mine")
    await other.put("agent", b"theirs")
    with pytest.raises(VersionConflict, match="expected version 0, found version 1"):
        await store.put("agent", b"stale", expected_version=0)
    assert await store.get("agent") == b"theirs"
    # Unconditional writes still win, and a large value written in between leaves no chunks behind.
    await other.put("agent", os.urandom(2 * CHUNK_SIZE))
    assert await store.put("agent", b"mine again") == 3
    assert await store.get("agent") == b"mine again"
    assert await session.run(session.client.get_children, store._key_path("agent")) == []


async def test_concurrent_compare_and_set_writers_exactly_one_wins(store):
    await store.put("counter", b"0")
    start = await store.get_versioned("counter")
    results = await asyncio.gather(
        *(store.put("counter", str(i).encode(), expected_version=start.version) for i in range(8)),
        return_exceptions=True,
    )
    assert sum(1 for result in results if isinstance(result, VersionConflict)) == 7
    assert sum(1 for result in results if result == start.version + 1) == 1


async def test_readers_never_see_a_torn_value_while_large_values_are_rewritten(store):
    values = [bytes([n]) * (2 * CHUNK_SIZE + 1000) for n in range(4)]
    await store.put("big", values[0])
    stop = asyncio.Event()

    async def writer():
        for round_number in range(12):
            await store.put("big", values[round_number % len(values)])
        stop.set()

    async def reader() -> int:
        reads = 0
        while not stop.is_set():
            value = await store.get("big")
            assert value in values, "a reader saw a value that was never written whole"
            reads += 1
        return reads

    _, *reads = await asyncio.gather(writer(), reader(), reader())
    assert sum(reads) > 0


async def test_unconditional_concurrent_large_writes_leave_one_whole_value(store, session):
    values = [bytes([n]) * (CHUNK_SIZE + 5) for n in range(5)]
    await asyncio.gather(*(store.put("race", value) for value in values))
    assert await store.get("race") in values
    # No garbage: only the winning generation's two chunks remain.
    assert len(await session.run(session.client.get_children, store._key_path("race"))) == 2


async def test_non_bytes_value_is_refused_with_the_key_named(store):
    with pytest.raises(TypeError, match="value for 'k' must be bytes, not str"):
        await store.put("k", "text")


def test_relative_root_is_refused(session):
    with pytest.raises(ValueError, match="must be an absolute"):
        ZooKeeperStore(session, "registry")
