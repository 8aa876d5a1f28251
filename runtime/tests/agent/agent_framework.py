"""A small framework for the agent's end-to-end tests: a SchedulerClient on its own loop in a thread.

It launches queued tasks on the first offers that fit, acknowledges every update, and records them.
"""

from __future__ import annotations

import asyncio
import threading
import time

from mesolite.resources import Resources, parse_resources
from mesolite.scheduler.client import SchedulerCallError, SchedulerClient


class ThreadedFramework:
    def __init__(self, master: str, name: str = "agent-tests"):
        self.updates: list[dict] = []
        self._queued: list[dict] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self.client = SchedulerClient(
            master, {"name": name, "user": "root", "failover_timeout": 3600.0}, self._on_event, reconnect_delay=0.2
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.client.run())

    def launch(self, task_id: str, command: str, resources: str = "cpus:0.1;mem:32") -> None:
        task = {
            "name": task_id,
            "task_id": {"value": task_id},
            "resources": parse_resources(resources).to_protobuf_json(),
            "command": {"value": command},
        }
        with self._lock:
            self._queued.append(task)
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.client.revive()))

    def kill(self, task_id: str, grace_seconds: float = 3.0, timeout: float = 30.0) -> None:
        """KILL, retried while the framework is (re)subscribing, e.g. after a master failover."""
        policy = {"grace_period": {"nanoseconds": int(grace_seconds * 1e9)}}
        deadline = time.monotonic() + timeout
        while True:
            try:
                call = self.client.kill(task_id, kill_policy=policy)
                asyncio.run_coroutine_threadsafe(call, self._loop).result(10)
                return
            except SchedulerCallError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def states(self, task_id: str) -> list[str]:
        with self._lock:
            return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.client.stop(), self._loop).result(10)
        self._thread.join(10)

    async def _on_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "OFFERS":
            for offer in event["offers"].get("offers", []):
                await self._use(offer)
        elif kind == "UPDATE":
            status = event["update"]["status"]
            with self._lock:
                self.updates.append(status)
            await self.client.acknowledge(status)

    async def _use(self, offer: dict) -> None:
        available = Resources.from_protobuf_json(offer["resources"])
        chosen = []
        with self._lock:
            for task in list(self._queued):
                wanted = Resources.from_protobuf_json(task["resources"])
                if available.contains(wanted):
                    available = available - wanted
                    chosen.append({**task, "agent_id": offer["agent_id"]})
                    self._queued.remove(task)
        if chosen:
            await self.client.launch(offer["id"]["value"], chosen)
        else:
            await self.client.decline([offer["id"]["value"]], {"refuse_seconds": 1.0})
