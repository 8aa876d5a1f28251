"""Persisted state in ZooKeeper: byte values by key, any size, never seen half-written, with compare-and-set.

Layout under `root`: one znode per key (its name is the key, percent-encoded so that `/` may appear in keys).
A value that fits in one znode is stored in it directly. A larger value is written as immutable chunk znodes
`<key>/<generation>-<index>` first; then one transaction swaps the key znode's small pointer to the new
generation (checking its version) and deletes the previous generation's chunks. A reader that loses a race
with that swap finds a chunk missing and reads again from the pointer, so it sees the old value or the new
one, never a mix. The key znode's ZooKeeper version is the value's version for compare-and-set.

With credentials in the zk:// URL, the root, the key znodes and their chunks are readable and writable only by
their owner (or by everyone who reads, with `Readers.EVERYONE`): acls.py decides. A refusal (NoAuth) is raised
as `ZooKeeperAccessDenied`, naming the path and the credentials' user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import urllib.parse
import uuid
from dataclasses import dataclass

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, RolledBackError

from mesolite.zookeeper.acls import Readers, ensure_node, refusals_named, znode_acl
from mesolite.zookeeper.session import ZooKeeperSession

# ZooKeeper refuses packets over jute.maxbuffer (1 MiB by default), path and headers included.
CHUNK_SIZE = 900 * 1024
INLINE = b"\x00"  # key znode = INLINE + value
CHUNKED = b"\x01"  # key znode = CHUNKED + JSON pointer {"generation", "chunks", "size", "sha256"}
MUST_NOT_EXIST = -1  # expected_version for "create only if absent"
_READ_ATTEMPTS = 20


class VersionConflict(Exception):
    """A compare-and-set found another version than expected (someone else wrote first)."""


class CorruptValue(Exception):
    """Stored data that does not decode (written by something else, or damaged)."""


@dataclass(frozen=True)
class Versioned:
    value: bytes
    version: int


class ZooKeeperStore:
    """get / put / delete / list of byte values under `root`; all calls are async (kazoo runs in threads).

    Persisted state is private by default (`readers`): the registry and Marathon's state are both."""

    def __init__(
        self, session: ZooKeeperSession, root: str, chunk_size: int = CHUNK_SIZE, readers: Readers = Readers.OWNER
    ) -> None:
        if not root.startswith("/"):
            raise ValueError(f"store root '{root}' must be an absolute ZooKeeper path")
        self.session = session
        self.root = root.rstrip("/") or "/"
        self.chunk_size = chunk_size
        self.readers = readers
        self._acl = znode_acl(session.url, readers)  # None without credentials: kazoo's default, open
        self._root_ready = False
        # key -> version of the inline value this store wrote last. While the key still has that version,
        # it holds that inline value and no chunks, so the next inline write is a single versioned set
        # (one round trip; the registry writes thousands of them). Any surprise falls back to the full path.
        self._own_inline_versions: dict[str, int] = {}

    # --- public API -----------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or None."""
        versioned = await self.get_versioned(key)
        return None if versioned is None else versioned.value

    async def get_versioned(self, key: str) -> Versioned | None:
        """The value and its version (pass it to `put(..., expected_version=)`), or None."""
        path = self._key_path(key)
        with refusals_named(self.session.url, path, "reading"):
            return await self.session.run(self._get_blocking, key)

    async def put(self, key: str, value: bytes, expected_version: int | None = None) -> int:
        """Store `value`; returns its new version.

        With `expected_version` (a version from `get_versioned`, or `MUST_NOT_EXIST`) the write only happens
        if the stored version is still that one, else `VersionConflict`. Without it the write always wins.
        """
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"value for '{key}' must be bytes, not {type(value).__name__}")
        await self._ensure_root()
        path = self._key_path(key)
        with refusals_named(self.session.url, path, "writing"):
            return await self.session.run(self._put_blocking, key, bytes(value), expected_version)

    async def delete(self, key: str, expected_version: int | None = None) -> bool:
        """Delete `key`; False if it did not exist. `expected_version` as for `put`."""
        path = self._key_path(key)
        with refusals_named(self.session.url, path, "deleting"):
            return await self.session.run(self._delete_blocking, key, expected_version)

    async def list(self, prefix: str = "") -> list[str]:
        """The keys (sorted) that start with `prefix`."""
        try:
            with refusals_named(self.session.url, self.root, "listing"):
                names = await self.session.run(self.session.client.get_children, self.root)
        except NoNodeError:
            return []
        keys = (_decode_key(name) for name in names)
        return sorted(key for key in keys if key.startswith(prefix))

    # --- blocking implementations (run in kazoo's world, off the event loop) ----------------------

    def _key_path(self, key: str) -> str:
        if not key:
            raise ValueError("store key must not be empty")
        return f"{self.root.rstrip('/')}/{_encode_key(key)}"

    def _get_blocking(self, key: str) -> Versioned | None:
        client = self.session.client
        path = self._key_path(key)
        for _attempt in range(_READ_ATTEMPTS):
            try:
                data, stat = client.get(path)
            except NoNodeError:
                return None
            if data[:1] == INLINE:
                return Versioned(data[1:], stat.version)
            pointer = _decode_pointer(path, data)
            if not pointer["generation"]:
                return None  # a first write in progress: no value yet
            try:
                generation = pointer["generation"]
                chunks = [client.get(f"{path}/{generation}-{index}")[0] for index in range(pointer["chunks"])]
            except NoNodeError:
                continue  # a writer replaced this generation while we read it: start over from the pointer
            value = b"".join(chunks)
            if len(value) != pointer["size"] or hashlib.sha256(value).hexdigest() != pointer["sha256"]:
                raise CorruptValue(f"{path}: chunks do not add up to the recorded size and checksum")
            return Versioned(value, stat.version)
        raise CorruptValue(f"{path}: value kept changing while being read ({_READ_ATTEMPTS} attempts)")

    def _put_blocking(self, key: str, value: bytes, expected_version: int | None) -> int:
        while True:
            try:
                return self._put_once(key, value, expected_version)
            except VersionConflict:
                if expected_version is not None:
                    raise
                # An unconditional write lost a race with another writer: write again over theirs.

    def _put_once(self, key: str, value: bytes, expected_version: int | None) -> int:
        client = self.session.client
        path = self._key_path(key)
        own_version = self._own_inline_versions.pop(key, None)
        if own_version is not None and len(value) < self.chunk_size and expected_version in (None, own_version):
            with contextlib.suppress(VersionConflict):
                return self._set_inline(key, path, INLINE + value, own_version)
            # Someone else wrote since: the full path below resolves it, or reports the conflict precisely.
        # Read the current version *before* writing chunks: chunks created after this read can then
        # never be removed by a concurrent writer's clean-up (see `_swap`).
        stat = client.exists(path)
        current_version = None if stat is None else stat.version
        if expected_version is not None and expected_version != (
            MUST_NOT_EXIST if current_version is None else current_version
        ):
            found = "no value" if current_version is None else f"version {current_version}"
            raise VersionConflict(f"'{key}': expected version {expected_version}, found {found}")

        if len(value) < self.chunk_size:
            new_data, new_chunks = INLINE + value, []
        else:
            generation = uuid.uuid4().hex
            new_chunks = [
                (f"{path}/{generation}-{index}", value[start : start + self.chunk_size])
                for index, start in enumerate(range(0, len(value), self.chunk_size))
            ]
            pointer = {
                "generation": generation,
                "chunks": len(new_chunks),
                "size": len(value),
                "sha256": hashlib.sha256(value).hexdigest(),
            }
            new_data = CHUNKED + json.dumps(pointer).encode()

        if current_version is None:
            return self._create(key, path, new_data, new_chunks)
        if not new_chunks and stat.numChildren == 0:
            # An inline value over an inline value (the common case, e.g. every registry write): no chunks to
            # clean up, so one versioned set does it, a round trip instead of two.
            return self._set_inline(key, path, new_data, current_version)
        try:
            stale_chunks = [f"{path}/{name}" for name in client.get_children(path)]
        except NoNodeError as error:
            raise VersionConflict(f"'{key}': deleted by another writer during this write") from error
        for chunk_path, chunk in new_chunks:
            client.create(chunk_path, chunk, acl=self._acl)
        return self._swap(key, path, new_data, current_version, stale_chunks, [p for p, _ in new_chunks])

    def _create(self, key: str, path: str, data: bytes, chunks: list[tuple[str, bytes]]) -> int:
        client = self.session.client
        if not chunks:
            try:
                client.create(path, data, acl=self._acl)
            except NodeExistsError as error:
                raise VersionConflict(f"'{key}' was created by another writer at the same time") from error
            self._own_inline_versions[key] = 0
            return 0
        # The key znode must exist before its chunk children: create it empty-chunked (a reader sees no
        # value yet), add the chunks, then set the pointer only if nobody else wrote meanwhile.
        placeholder = CHUNKED + json.dumps({"generation": "", "chunks": 0, "size": 0, "sha256": ""}).encode()
        try:
            client.create(path, placeholder, acl=self._acl)
        except NodeExistsError as error:
            raise VersionConflict(f"'{key}' was created by another writer at the same time") from error
        for chunk_path, chunk in chunks:
            client.create(chunk_path, chunk, acl=self._acl)
        return self._swap(key, path, data, 0, [], [p for p, _ in chunks])

    def _set_inline(self, key: str, path: str, data: bytes, version: int) -> int:
        try:
            new_version = self.session.client.set(path, data, version=version).version
        except (BadVersionError, NoNodeError) as error:
            raise VersionConflict(f"'{key}': another writer changed it during this write") from error
        self._own_inline_versions[key] = new_version
        return new_version

    def _swap(
        self, key: str, path: str, data: bytes, version: int, stale_chunks: list[str], new_chunks: list[str]
    ) -> int:
        transaction = self.session.client.transaction()
        transaction.set_data(path, data, version=version)
        for chunk_path in stale_chunks:
            transaction.delete(chunk_path)
        results = transaction.commit()
        if not any(isinstance(result, Exception) for result in results):
            return version + 1
        # Nothing was applied: remove our own chunks so that no garbage stays behind.
        for chunk_path in new_chunks:
            with contextlib.suppress(NoNodeError):
                self.session.client.delete(chunk_path)
        failure = _first_real_failure(results)
        if failure is None or isinstance(failure, BadVersionError | NoNodeError):
            raise VersionConflict(f"'{key}': another writer changed it during this write")
        raise failure

    def _delete_blocking(self, key: str, expected_version: int | None) -> bool:
        client = self.session.client
        path = self._key_path(key)
        self._own_inline_versions.pop(key, None)
        while True:
            try:
                _data, stat = client.get(path)
                children = client.get_children(path)
            except NoNodeError:
                if expected_version not in (None, MUST_NOT_EXIST):
                    raise VersionConflict(f"'{key}': expected version {expected_version}, found no value") from None
                return False
            if expected_version is not None and expected_version != stat.version:
                raise VersionConflict(f"'{key}': expected version {expected_version}, found version {stat.version}")
            transaction = client.transaction()
            for child in children:
                transaction.delete(f"{path}/{child}")
            transaction.delete(path, version=stat.version)
            results = transaction.commit()
            if not any(isinstance(result, Exception) for result in results):
                return True
            if expected_version is not None:
                raise VersionConflict(f"'{key}': another writer changed it during the delete")
            # A concurrent write changed the chunks or the version: try again with what is there now.

    async def _ensure_root(self) -> None:
        if not self._root_ready:
            await self.session.run(ensure_node, self.session.client, self.session.url, self.root, self.readers)
            self._root_ready = True


def _first_real_failure(results: list) -> Exception | None:
    """In a failed multi, ZooKeeper marks the untouched operations RolledBack; the cause is the other one."""
    return next(
        (r for r in results if isinstance(r, Exception) and not isinstance(r, RolledBackError)),
        None,
    )


def _decode_pointer(path: str, data: bytes) -> dict:
    if data[:1] != CHUNKED:
        raise CorruptValue(f"{path}: not a value written by ZooKeeperStore")
    try:
        pointer = json.loads(data[1:])
        return {name: pointer[name] for name in ("generation", "chunks", "size", "sha256")}
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptValue(f"{path}: unreadable chunk pointer: {error}") from error


def _encode_key(key: str) -> str:
    # ZooKeeper node names cannot contain `/`, and `.`/`..` are reserved.
    encoded = urllib.parse.quote(key, safe="")
    return encoded.replace(".", "%2E") if encoded in {".", ".."} else encoded


def _decode_key(name: str) -> str:
    return urllib.parse.unquote(name)
