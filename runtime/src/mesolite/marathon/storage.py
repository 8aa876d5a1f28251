"""Marathon's state in ZooKeeper under the `--zk` path: apps and their versions, groups, deployments, tasks
and the framework id, as JSON values of a `ZooKeeperStore` (which splits values over 1 MB into chunks)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mesolite.zookeeper.store import ZooKeeperStore

FRAMEWORK_ID = "framework-id"
APPS = "apps/"
APP_VERSIONS = "app-versions/"
GROUPS = "groups/"
DEPLOYMENTS = "deployments/"
TASKS = "tasks/"
DEFAULT_MAX_VERSIONS = 50


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
        await self.store.put(FRAMEWORK_ID, framework_id.encode())

    async def save_app(self, app: dict) -> None:
        """The app as current, and as one more version (keeping the newest `max_versions`)."""
        await self.store.put(f"{APP_VERSIONS}{app['id']}/{app['version']}", _encode(app))
        await self.store.put(f"{APPS}{app['id']}", _encode(app))
        versions = await self.app_versions(app["id"])
        for old in versions[self.max_versions :]:
            await self.store.delete(f"{APP_VERSIONS}{app['id']}/{old}")

    async def delete_app(self, app_id: str) -> None:
        await self.store.delete(f"{APPS}{app_id}")
        for version in await self.app_versions(app_id):
            await self.store.delete(f"{APP_VERSIONS}{app_id}/{version}")

    async def app_versions(self, app_id: str) -> list[str]:
        """Newest first."""
        prefix = f"{APP_VERSIONS}{app_id}/"
        return sorted(
            (key[len(prefix) :] for key in await self.store.list(prefix) if "/" not in key[len(prefix) :]), reverse=True
        )

    async def app_version(self, app_id: str, version: str) -> dict | None:
        value = await self.store.get(f"{APP_VERSIONS}{app_id}/{version}")
        return json.loads(value) if value is not None else None

    async def save_group(self, group: dict) -> None:
        await self.store.put(f"{GROUPS}{group['id']}", _encode(group))

    async def delete_group(self, group_id: str) -> None:
        await self.store.delete(f"{GROUPS}{group_id}")

    async def save_deployment(self, deployment: dict) -> None:
        await self.store.put(f"{DEPLOYMENTS}{deployment['id']}", _encode(deployment))

    async def delete_deployment(self, deployment_id: str) -> None:
        await self.store.delete(f"{DEPLOYMENTS}{deployment_id}")

    async def save_task(self, task: dict) -> None:
        await self.store.put(f"{TASKS}{task['id']}", _encode(task))

    async def delete_task(self, task_id: str) -> None:
        await self.store.delete(f"{TASKS}{task_id}")
