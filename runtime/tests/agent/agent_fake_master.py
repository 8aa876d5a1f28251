"""A test-only fake master speaking the master<->agent protocol of docs/architecture.md.

It exists for what the real master cannot be made to do on cue: hold back acknowledgements (to see
updates re-sent), refuse a re-registration, send events at chosen moments. End-to-end behaviour is
tested against the real master (tests/agent/test_agent_with_master.py); this fake only lets the
agent's side of the protocol be pinned down precisely.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from harness.processes import free_port
from harness.waiting import wait_for
from mesolite.protocol.recordio import encode


@dataclass
class FakeMaster:
    port: int
    auto_acknowledge: bool = True
    refuse_reregistration: str | None = None  # a 403 message for REREGISTER, when set
    busy_retry_after: int | None = None  # when set, every subscription gets 503 with this Retry-After
    subscription_times: list[float] = field(default_factory=list)  # time.monotonic() of each subscription
    ping_interval: float = 15.0
    subscriptions: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    agent_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._queues: list[asyncio.Queue] = []
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    # test side

    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def send(self, event: dict | bytes) -> None:
        """Put an event on every open subscription stream (bytes: a record sent as they are, JSON or not)."""

        def put() -> None:
            for queue in self._queues:
                queue.put_nowait(event)

        self._loop.call_soon_threadsafe(put)

    def connected(self) -> int:
        return len(self._queues)

    def updates(self, task_id: str | None = None) -> list[dict]:
        with self._lock:
            found = [call["status_update"] for call in self.calls if call.get("type") == "STATUS_UPDATE"]
        return [u for u in found if task_id is None or u["status"]["task_id"]["value"] == task_id]

    def states(self, task_id: str) -> list[str]:
        return [update["status"]["state"] for update in self.updates(task_id)]

    def wait_for_state(self, task_id: str, state: str, timeout: float = 20) -> dict:
        """The first update of `task_id` in `state` (waiting up to `timeout` seconds for it)."""

        def reached() -> dict | None:
            return next((u for u in self.updates(task_id) if u["status"]["state"] == state), None)

        return wait_for(reached, timeout, what=f"{task_id[:40]} to be {state} (so far {self.states(task_id)})")

    def acknowledge(self, update: dict) -> None:
        self.send(
            {
                "type": "ACKNOWLEDGE",
                "acknowledge": {
                    "framework_id": update["framework_id"],
                    "task_id": update["status"]["task_id"],
                    "uuid": update["status"]["uuid"],
                },
            }
        )

    def run_task(self, task_id: str, command: dict, resources: str = "cpus:0.1;mem:32", **task_fields) -> None:
        from mesolite.resources import parse_resources

        framework = {"id": {"value": "fake-framework-0000"}, "name": "fake", "user": "root"}
        task = {
            "name": task_id,
            "task_id": {"value": task_id},
            "agent_id": {"value": self.agent_ids[-1]},
            "resources": parse_resources(resources).to_protobuf_json(),
            "command": command,
            **task_fields,
        }
        self.send({"type": "RUN_TASK", "run_task": {"framework": framework, "task": task}})

    def kill_task(self, task_id: str, grace_seconds: float | None = None) -> None:
        body = {"framework_id": {"value": "fake-framework-0000"}, "task_id": {"value": task_id}}
        if grace_seconds is not None:
            body["kill_policy"] = {"grace_period": {"nanoseconds": int(grace_seconds * 1e9)}}
        self.send({"type": "KILL_TASK", "kill_task": body})

    def stop(self) -> None:
        async def stop() -> None:
            for queue in self._queues:
                queue.put_nowait(None)
            await asyncio.sleep(0.1)
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # server side

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/internal/agent/subscribe", self._subscribe)
        app.router.add_post("/internal/agent/call", self._call)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.subscriptions.append(body)
        self.subscription_times.append(time.monotonic())
        if self.busy_retry_after is not None:
            return web.Response(
                status=503, text="at the file descriptor limit", headers={"Retry-After": str(self.busy_retry_after)}
            )
        if body["type"] == "REREGISTER" and self.refuse_reregistration:
            return web.Response(status=403, text=self.refuse_reregistration)
        agent_id = (body["agent_info"].get("id") or {}).get("value") or f"fake-{uuid.uuid4().hex[:8]}-S0"
        self.agent_ids.append(agent_id)
        response = web.StreamResponse(
            headers={"Content-Type": "application/recordio", "Record-Io-Content-Type": "application/json"}
        )
        await response.prepare(request)
        registered = {
            "type": "REGISTERED",
            "registered": {
                "agent_id": {"value": agent_id},
                "master_info": {"id": "fake", "hostname": "127.0.0.1", "port": self.port},
                "ping_interval_seconds": self.ping_interval,
            },
        }
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.append(queue)
        try:
            await response.write(encode(json.dumps(registered).encode()))
            while (event := await queue.get()) is not None:
                record = event if isinstance(event, bytes) else json.dumps(event).encode()
                await response.write(encode(record))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._queues.remove(queue)
        return response

    async def _call(self, request: web.Request) -> web.Response:
        body = await request.json()
        body["_received"] = time.time()
        body["_agent_id"] = request.headers.get("Mesos-Agent-Id")
        with self._lock:
            self.calls.append(body)
        if (
            body.get("type") == "STATUS_UPDATE"
            and self.auto_acknowledge
            and body["status_update"]["status"].get("uuid")
        ):
            self.acknowledge(body["status_update"])
        return web.Response(status=202)


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    fake = FakeMaster(free_port())
    yield fake
    fake.stop()
