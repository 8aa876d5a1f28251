"""What the load balancer tests run against: a stand-in Marathon, real HTTP backends, and the LB with real HAProxy.

The stand-in Marathon is *not* mesolite's Marathon: a real `mesolite marathon` needs ZooKeeper, a master and
agents running the tasks, and could not be told to put a task into TASK_KILLING at a chosen moment. The LB only
reads two endpoints, so the stand-in serves exactly those — `/v2/apps?embed=apps.tasks` and the `/v2/events`
Server-Sent-Events stream — with app, task and event JSON shaped like Marathon's (field names and values as
Marathon 1.x answers them), and lets a test change apps and tasks and publish the events Marathon would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from harness.processes import free_port
from mesolite.lb.service import FLAGS, LoadBalancerService

VERSION = "2026-12-05T18:00:00.000Z"
_task_numbers = itertools.count(1)


def marathon_task(app_id: str, host_port: int, service_port: int, state: str = "TASK_RUNNING") -> dict[str, Any]:
    """A task as Marathon's /v2/apps?embed=apps.tasks lists it."""
    return {
        "appId": app_id,
        "id": f"{app_id.strip('/').replace('/', '_')}.{next(_task_numbers):08d}-0000-11ee-8000-000000000000",
        "host": "127.0.0.1",
        "ports": [host_port],
        "servicePorts": [service_port],
        "slaveId": "b6b5fa4e-5e15-4b4e-9b4d-4c1e9a1c0001-S0",
        "stagedAt": VERSION,
        "startedAt": VERSION,
        "state": state,
        "version": VERSION,
        "ipAddresses": [{"ipAddress": "127.0.0.1", "protocol": "IPv4"}],
        "localVolumes": [],
    }


def marathon_app(
    app_id: str, service_port: int, labels: dict[str, str] | None = None, health_checks: list | None = None
) -> dict[str, Any]:
    """An app as Marathon's /v2/apps lists it (the fields the LB reads, and the usual neighbours)."""
    return {
        "id": app_id,
        "cmd": "python3 -m http.server $PORT0",
        "instances": 0,
        "cpus": 0.1,
        "mem": 32.0,
        "labels": dict(labels or {}),
        "healthChecks": list(health_checks or []),
        "portDefinitions": [{"port": service_port, "protocol": "tcp", "name": "http", "labels": {}}],
        "ports": [service_port],
        "requirePorts": False,
        "version": VERSION,
        "tasksStaged": 0,
        "tasksRunning": 0,
        "tasksHealthy": 0,
        "tasksUnhealthy": 0,
        "tasks": [],
    }


class StandInMarathon:
    """Serves /v2/apps and /v2/events from apps a test controls (see the module docstring for why)."""

    def __init__(self, credentials: tuple[str, str] | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.credentials = credentials
        self.ssl_context = ssl_context
        self.app_requests = 0
        self._streams: set[asyncio.Queue[bytes | None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/v2/apps", self._apps)
        app.router.add_get("/v2/events", self._events)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start()

    async def stop(self) -> None:
        self.end_streams()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _authenticate(self, request: web.Request, handler):
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if request.headers.get("Authorization") != expected:
                raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="Mesosphere"'})
        return await handler(request)

    async def _apps(self, request: web.Request) -> web.Response:
        self.app_requests += 1
        embed = "apps.tasks" in request.query.getall("embed", [])
        apps = []
        for app in self.apps.values():
            wire = {key: value for key, value in app.items() if key != "tasks" or embed}
            wire["tasksRunning"] = sum(task["state"] == "TASK_RUNNING" for task in app["tasks"])
            apps.append(wire)
        return web.json_response({"apps": apps})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._streams.add(queue)
        try:
            await response.write(self._frame("event_stream_attached", remoteAddress=request.remote or ""))
            while (frame := await queue.get()) is not None:
                await response.write(frame)
        finally:
            self._streams.discard(queue)
        return response

    # what a test does

    @staticmethod
    def _frame(event_type: str, **payload: Any) -> bytes:
        event = {"eventType": event_type, "timestamp": VERSION, **payload}
        return f"event: {event_type}\ndata: {json.dumps(event)}\n\n".encode()

    def publish(self, event_type: str, **payload: Any) -> None:
        frame = self._frame(event_type, **payload)
        for queue in self._streams:
            queue.put_nowait(frame)

    def end_streams(self) -> None:
        for queue in list(self._streams):
            queue.put_nowait(None)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def put_app(self, app: dict[str, Any]) -> None:
        self.apps[app["id"]] = app
        self.publish("api_post_event", clientIp="127.0.0.1", uri=f"/v2/apps{app['id']}", appDefinition=app)

    def _status(self, task: dict[str, Any], state: str) -> None:
        self.publish(
            "status_update_event",
            slaveId=task["slaveId"],
            taskId=task["id"],
            taskStatus=state,
            message="",
            appId=task["appId"],
            host=task["host"],
            ports=task["ports"],
            ipAddresses=task["ipAddresses"],
            version=task["version"],
        )

    def run_task(self, app_id: str, host_port: int, healthy: bool | None = None) -> dict[str, Any]:
        app = self.apps[app_id]
        task = marathon_task(app_id, host_port, app["ports"][0])
        if healthy is not None:
            task["healthCheckResults"] = [_health_result(task["id"], healthy)]
        app["tasks"].append(task)
        app["instances"] = len(app["tasks"])
        self._status(task, "TASK_RUNNING")
        return task

    def set_healthy(self, task: dict[str, Any], healthy: bool) -> None:
        task["healthCheckResults"] = [_health_result(task["id"], healthy)]
        self.publish(
            "health_status_changed_event",
            appId=task["appId"],
            taskId=task["id"],
            instanceId=task["id"],
            version=task["version"],
            alive=healthy,
        )

    def start_killing(self, task: dict[str, Any]) -> None:
        """Marathon's kill: the task turns TASK_KILLING (it still runs its grace period)."""
        task["state"] = "TASK_KILLING"
        self._status(task, "TASK_KILLING")

    def remove_task(self, task: dict[str, Any]) -> None:
        """The task ended: TASK_KILLED, and Marathon no longer lists it."""
        app = self.apps[task["appId"]]
        app["tasks"] = [other for other in app["tasks"] if other["id"] != task["id"]]
        app["instances"] = len(app["tasks"])
        self._status(task, "TASK_KILLED")


def _health_result(task_id: str, alive: bool) -> dict[str, Any]:
    return {
        "alive": alive,
        "consecutiveFailures": 0 if alive else 1,
        "firstSuccess": VERSION if alive else None,
        "lastFailure": None if alive else VERSION,
        "lastSuccess": VERSION if alive else None,
        "lastFailureCause": None if alive else "connection refused",
        "taskId": task_id,
        "instanceId": task_id,
    }


@dataclass
class Backend:
    """A real HTTP server standing for one task: answers its name; `failing` makes it answer 503."""

    name: str
    port: int = field(default_factory=free_port)
    hits: int = 0
    failing: bool = False
    hosts: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _answer(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.hosts.append(request.host)
        if self.failing:
            return web.Response(status=503, text=f"{self.name} is shutting down")
        return web.Response(text=self.name)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def lb_arguments(marathon: StandInMarathon, run_directory: Path, reload_interval: str = "0.5secs") -> list[str]:
    """`mesolite lb`'s flags for a test: loopback only, free ports, files under `run_directory`."""
    return [
        f"--marathon={marathon.url}",
        f"--haproxy_config={run_directory / 'haproxy.cfg'}",
        f"--run_directory={run_directory}",
        "--bind_address=127.0.0.1",
        f"--http_port={free_port()}",
        f"--https_port={free_port()}",
        f"--stats_port={free_port()}",
        f"--reload_interval={reload_interval}",
    ]


@contextlib.asynccontextmanager
async def running_lb(marathon: StandInMarathon, *extra: str) -> AsyncIterator[LoadBalancerService]:
    """`mesolite lb` (in this process, so that tests can read its counters) driving a real HAProxy."""
    run_directory = Path(tempfile.mkdtemp(prefix="lb-", dir="/tmp"))  # short: unix socket paths are limited
    arguments = [*lb_arguments(marathon, run_directory), "--drain_timeout=1secs", "--server_slots=8", *extra]
    service = LoadBalancerService(FLAGS.parse(arguments, environ={}))
    stopped = asyncio.Event()
    task = asyncio.create_task(service.run(stopped))
    try:
        yield service
    finally:
        stopped.set()
        await asyncio.wait_for(task, 30)
        shutil.rmtree(run_directory, ignore_errors=True)


async def get(session: aiohttp.ClientSession, url: str, host: str | None = None) -> tuple[int, str]:
    headers = {"Host": host} if host else {}
    async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as response:
        return response.status, await response.text()


requires_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs HAProxy (Debian package haproxy)")


def fresh_connections() -> aiohttp.ClientSession:
    """A client that opens a connection per request: in tcp mode HAProxy balances connections, not requests."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def answers(session: aiohttp.ClientSession, url: str, count: int, host: str | None = None) -> list[str]:
    """The bodies of `count` requests (the backends answer their names); failures answer 'status <n>'."""
    bodies = []
    for _ in range(count):
        try:
            status, text = await get(session, url, host)
            bodies.append(text if status == 200 else f"status {status}")
        except aiohttp.ClientError as error:
            bodies.append(f"error {error}")
    return bodies


async def until_served(
    session: aiohttp.ClientSession, url: str, names: set[str], within: float = 20.0, host: str | None = None
) -> None:
    """Wait until requests to `url` are answered by exactly the backends `names`."""
    deadline = time.monotonic() + within
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = set(await answers(session, url, 4 * max(1, len(names)), host))
        if seen == names:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{url} answered by {sorted(seen)}, expected {sorted(names)}")
