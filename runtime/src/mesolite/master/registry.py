"""The registry: what a newly elected master needs to know, persisted in ZooKeeper.

Layout under the election path (next to the `json.info_` members, which detectors tell apart):

```
<zk path>/registry/agents/<agent id>          {"agent_info", "state": admitted|unreachable|removed,
                                                "unreachable_time"?, "tasks": [{task_id, framework_id,
                                                executor_id, state, name}]}
<zk path>/registry/frameworks/<framework id>  {"framework_info", "removed": bool, "role"}
<zk path>/registry/maintenance/state           {"schedule": {"windows"}, "machines": [{"id", "mode"}],
                                                "draining_agents": {<agent id>: DrainInfo}} (maintenance.py)
```

Writes are coalesced: the master marks an agent or framework dirty, and a flush writes the newest
snapshot of each dirty record (many status updates on one agent make one write). Admission and
removal flush at once; task changes within `flush_interval`.

With credentials in the `--zk` URL, both stores (and every record in them) are readable and writable only by
those credentials, unlike the world-readable leader znodes beside them (see zookeeper/acls.py). Records of
other credentials are refused with a `ZooKeeperAccessDenied` naming the path: `load` raises it (the term then
cannot start), a flush logs it and keeps the records dirty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from mesolite.zookeeper.acls import ZooKeeperAccessDenied
from mesolite.zookeeper.session import ZooKeeperSession
from mesolite.zookeeper.store import ZooKeeperStore

log = logging.getLogger(__name__)

# Writes in flight at once: enough to admit thousands of agents quickly, few enough to keep
# ZooKeeper and the thread pool responsive.
MAX_CONCURRENT_WRITES = 16

MAINTENANCE_KEY = "state"

Snapshot = Callable[[str], dict | None]  # id -> record to store, or None to delete it


class Registry:
    def __init__(
        self,
        session: ZooKeeperSession,
        path: str,
        agent_snapshot: Snapshot,
        framework_snapshot: Snapshot,
        flush_interval: float = 0.5,
        is_leading: Callable[[], bool] = lambda: True,
    ):
        self._is_leading = is_leading
        root = path.rstrip("/") + "/registry"
        self.agents = ZooKeeperStore(session, f"{root}/agents")
        self.frameworks = ZooKeeperStore(session, f"{root}/frameworks")
        self.maintenance = ZooKeeperStore(session, f"{root}/maintenance")
        # The maintenance record's snapshot (set by the master that owns this registry), and whether it is dirty.
        self.maintenance_snapshot: Callable[[], dict] | None = None
        self._maintenance_dirty = False
        self._agent_snapshot = agent_snapshot
        self._framework_snapshot = framework_snapshot
        self._dirty_agents: set[str] = set()
        self._dirty_frameworks: set[str] = set()
        self._flush_interval = flush_interval
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self._semaphore = asyncio.Semaphore(MAX_CONCURRENT_WRITES)

    async def load(self) -> tuple[dict[str, dict], dict[str, dict]]:
        """All stored agents and frameworks, by id."""
        return await self._load_all(self.agents), await self._load_all(self.frameworks)

    async def load_maintenance(self) -> dict | None:
        """The maintenance record (schedule, machine modes, draining agents), None when there is none."""
        return await self._read(self.maintenance, MAINTENANCE_KEY)

    async def _load_all(self, store: ZooKeeperStore) -> dict[str, dict]:
        keys = await store.list()
        values = await asyncio.gather(*(self._read(store, key) for key in keys))
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    async def _read(self, store: ZooKeeperStore, key: str) -> dict | None:
        async with self._semaphore:
            data = await store.get(key)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            log.error("registry entry %s/%s is not JSON; ignoring it", store.root, key)
            return None

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop(), name="registry-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def agent_changed(self, agent_id: str, urgent: bool = False) -> None:
        self._dirty_agents.add(agent_id)
        self._idle.clear()
        if urgent:
            self._wake.set()

    def framework_changed(self, framework_id: str) -> None:
        self._dirty_frameworks.add(framework_id)
        self._idle.clear()
        self._wake.set()

    def maintenance_changed(self) -> None:
        self._maintenance_dirty = True
        self._idle.clear()
        self._wake.set()

    async def flushed(self) -> None:
        """Wait until everything marked so far is written (tests and clean shutdown)."""
        self._wake.set()
        await self._idle.wait()

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except ZooKeeperAccessDenied as error:  # someone changed the ACLs under us: an operator must act
                log.error("registry flush failed, will retry: %s", error)
                await asyncio.sleep(self._flush_interval)
            except Exception as error:  # ZooKeeper trouble: keep the records dirty and try again
                log.warning("registry flush failed, will retry: %s", error)
                await asyncio.sleep(self._flush_interval)

    async def flush(self) -> None:
        if not self._is_leading():
            return  # a master that may not act must not write (the records stay dirty until it stops)
        agents, self._dirty_agents = self._dirty_agents, set()
        frameworks, self._dirty_frameworks = self._dirty_frameworks, set()
        maintenance, self._maintenance_dirty = self._maintenance_dirty, False
        writes = [self._write(self.agents, key, self._agent_snapshot(key)) for key in agents]
        writes += [self._write(self.frameworks, key, self._framework_snapshot(key)) for key in frameworks]
        if maintenance and self.maintenance_snapshot is not None:
            writes.append(self._write(self.maintenance, MAINTENANCE_KEY, self.maintenance_snapshot()))
        results = await asyncio.gather(*writes, return_exceptions=True)
        failed = [result for result in results if isinstance(result, Exception)]
        if failed:
            self._dirty_agents |= agents
            self._dirty_frameworks |= frameworks
            self._maintenance_dirty |= maintenance
            raise failed[0]
        if not self._dirty_agents and not self._dirty_frameworks and not self._maintenance_dirty:
            self._idle.set()

    async def _write(self, store: ZooKeeperStore, key: str, record: dict | None) -> None:
        async with self._semaphore:
            if record is None:
                await store.delete(key)
            else:
                await store.put(key, json.dumps(record, separators=(",", ":")).encode())
