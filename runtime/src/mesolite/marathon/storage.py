"""Marathon's state in ZooKeeper under the `--zk` path: apps and their versions, groups, deployments, tasks
and the framework id, as JSON values of a `ZooKeeperStore` (which splits values over 1 MB into chunks).

Every write fails fast or has a known outcome, so that a client is never told "failed" about a change that
is stored later. No write starts without a ZooKeeper connection (kazoo would queue it and send it whenever
the connection comes back, long after the client gave up). A write whose connection drops under it
(ConnectionLoss: ZooKeeper may or may not have applied it) is settled: once the session is back (within
the session timeout), `sync` and read the value again; it is then known to be stored or known not to be.
Only when ZooKeeper does not come back in that time is the outcome reported as unknown.

With credentials in the `--zk` URL, the state is readable only by them (see zookeeper/acls.py). A refusal
(the state belongs to other credentials) is reported as unavailable, naming the path: nothing was stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, OperationTimeoutError, SessionExpiredError

from mesolite.zookeeper.acls import ZooKeeperAccessDenied
from mesolite.zookeeper.store import ZooKeeperStore

log = logging.getLogger(__name__)

FRAMEWORK_ID = "framework-id"
APPS = "apps/"
APP_VERSIONS = "app-versions/"
GROUPS = "groups/"
DEPLOYMENTS = "deployments/"
TASKS = "tasks/"
EVENT_SUBSCRIBERS = "event-subscribers"  # the callback URLs of /v2/eventSubscriptions, one JSON list
DEFAULT_MAX_VERSIONS = 50

# What kazoo raises when the connection (or the session) went away under a request.
CONNECTION_ERRORS = (ConnectionLoss, SessionExpiredError, OperationTimeoutError, ConnectionClosedError)


class StorageUnavailable(Exception):
    """ZooKeeper cannot take the change now (HTTP 503). The message says whether it was stored: it was not,
    except when `outcome_known` is false (ZooKeeper did not come back in time to tell)."""

    def __init__(self, message: str, outcome_known: bool = True) -> None:
        super().__init__(message)
        self.outcome_known = outcome_known


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class StoredState:
    framework_id: str | None = None
    apps: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, dict] = field(default_factory=dict)
    deployments: dict[str, dict] = field(default_factory=dict)
    tasks: dict[str, dict] = field(default_factory=dict)


class MarathonStorage:
    """Typed reads and writes of Marathon's state; every value is one store key (see the module doc)."""

    def __init__(self, store: ZooKeeperStore, max_versions: int = DEFAULT_MAX_VERSIONS) -> None:
        self.store = store
        self.max_versions = max_versions
        # The stored versions of each app, listed once and then kept in step with this instance's writes: the
        # store lists every key of the state (apps, versions, tasks) to list one app's versions, which made
        # each app saved cost every key stored (creating 2,000 apps took a minute). Dropped after a failed
        # write (its outcome may be unknown) and listed again when next needed.
        self._versions: dict[str, set[str]] | None = None

    async def load(self) -> StoredState:
        state = StoredState()
        raw_id = await self.store.get(FRAMEWORK_ID)
        state.framework_id = raw_id.decode() if raw_id else None
        for prefix, target in (
            (APPS, state.apps),
            (GROUPS, state.groups),
            (DEPLOYMENTS, state.deployments),
            (TASKS, state.tasks),
        ):
            for key in await self.store.list(prefix):
                value = await self.store.get(key)
                if value is not None:
                    target[key[len(prefix) :]] = json.loads(value)
        return state

    async def save_framework_id(self, framework_id: str) -> None:
        await self._put(FRAMEWORK_ID, framework_id.encode())

    async def save_app(self, app: dict) -> None:
        """The app as current, and as one more version (keeping the newest `max_versions`)."""
        versions = await self._version_index()
        try:
            await self._put(f"{APP_VERSIONS}{app['id']}/{app['version']}", _encode(app))
            versions.setdefault(app["id"], set()).add(app["version"])
            await self._put(f"{APPS}{app['id']}", _encode(app))
            for old in sorted(versions[app["id"]], reverse=True)[self.max_versions :]:
                await self._delete(f"{APP_VERSIONS}{app['id']}/{old}")
                versions[app["id"]].discard(old)
        except BaseException:
            self._versions = None
            raise

    async def delete_app(self, app_id: str) -> None:
        versions = await self._version_index()
        try:
            await self._delete(f"{APPS}{app_id}")
            for version in sorted(versions.get(app_id, ()), reverse=True):
                await self._delete(f"{APP_VERSIONS}{app_id}/{version}")
                versions[app_id].discard(version)
            versions.pop(app_id, None)
        except BaseException:
            self._versions = None
            raise

    async def app_versions(self, app_id: str) -> list[str]:
        """Newest first."""
        return sorted((await self._version_index()).get(app_id, ()), reverse=True)

    async def _version_index(self) -> dict[str, set[str]]:
        """App id -> its stored versions (see `__init__`)."""
        if self._versions is None:
            keys = await self._read(lambda: self.store.list(APP_VERSIONS))
            index: dict[str, set[str]] = {}
            for key in keys:
                # `app-versions/<app id>/<version>`: app ids contain slashes, versions never do.
                app_id, _, version = key[len(APP_VERSIONS) :].rpartition("/")
                index.setdefault(app_id, set()).add(version)
            self._versions = index
        return self._versions

    async def app_version(self, app_id: str, version: str) -> dict | None:
        value = await self._read(lambda: self.store.get(f"{APP_VERSIONS}{app_id}/{version}"))
        return json.loads(value) if value is not None else None

    async def save_group(self, group: dict) -> None:
        await self._put(f"{GROUPS}{group['id']}", _encode(group))

    async def delete_group(self, group_id: str) -> None:
        await self._delete(f"{GROUPS}{group_id}")

    async def save_deployment(self, deployment: dict) -> None:
        await self._put(f"{DEPLOYMENTS}{deployment['id']}", _encode(deployment))

    async def delete_deployment(self, deployment_id: str) -> None:
        await self._delete(f"{DEPLOYMENTS}{deployment_id}")

    async def save_task(self, task: dict) -> None:
        await self._put(f"{TASKS}{task['id']}", _encode(task))

    async def delete_task(self, task_id: str) -> None:
        await self._delete(f"{TASKS}{task_id}")

    async def event_subscribers(self) -> list[str]:
        value = await self._read(lambda: self.store.get(EVENT_SUBSCRIBERS))
        return list(json.loads(value)) if value is not None else []

    async def save_event_subscribers(self, callback_urls: list[str]) -> None:
        await self._put(EVENT_SUBSCRIBERS, _encode(callback_urls))

    # --- writes that fail fast or settle (see the module's documentation) -------------------------

    async def _put(self, key: str, value: bytes) -> None:
        await self._write(key, lambda: self.store.put(key, value), lambda stored: stored == value)

    async def _delete(self, key: str) -> None:
        await self._write(key, lambda: self.store.delete(key), lambda stored: stored is None)

    async def _read(self, read: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await read()
        except CONNECTION_ERRORS as error:
            raise StorageUnavailable(f"ZooKeeper is not reachable: {error.__class__.__name__}") from error
        except ZooKeeperAccessDenied as error:
            log.error("%s", error)
            raise StorageUnavailable(str(error)) from error

    async def _write(
        self, key: str, write: Callable[[], Awaitable[Any]], in_place: Callable[[bytes | None], bool]
    ) -> None:
        session = self.store.session
        if not session.connected:
            raise StorageUnavailable(f"no ZooKeeper connection: '{key}' was not stored; try again shortly")
        try:
            await write()
        except ZooKeeperAccessDenied as error:
            # Refused, so not applied: the outcome is known.
            log.error("%s", error)
            raise StorageUnavailable(f"{error}; '{key}' was not stored") from error
        except CONNECTION_ERRORS as error:
            log.warning("ZooKeeper connection lost while storing '%s' (%s): settling the outcome", key, error)
            if not await self._settled(key, in_place):
                raise StorageUnavailable(
                    f"the ZooKeeper connection was lost while storing '{key}' and the change was not stored"
                ) from error

    async def _settled(self, key: str, in_place: Callable[[bytes | None], bool]) -> bool:
        """Whether an interrupted write of `key` is in place, once ZooKeeper answers again (see the module doc)."""
        session = self.store.session
        deadline = time.monotonic() + session.effective_timeout
        while time.monotonic() < deadline:
            if session.connected:
                try:
                    # Requests of a session are applied in order: once a sync issued after the interrupted
                    # write has gone through the ZooKeeper leader, that write was applied or never will be.
                    await session.run(session.client.sync, self.store.root)
                    return in_place(await self.store.get(key))
                except CONNECTION_ERRORS:
                    pass  # dropped again: wait for the next connection
            await asyncio.sleep(0.1)
        raise StorageUnavailable(
            f"the ZooKeeper connection was lost while storing '{key}' and ZooKeeper did not come back within "
            f"{session.effective_timeout:g}s: the change may or may not be stored; read it back before retrying",
            outcome_known=False,
        )
