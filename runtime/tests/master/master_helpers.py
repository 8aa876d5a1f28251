"""Test helpers: masters started as processes, a v1 scheduler subscription read event by event, and a FAKE agent.

The fake agent is test-only: it speaks the master<->agent protocol of docs/architecture.md over real
HTTP but runs no processes; tests drive it explicitly (send this status, answer that ping). It lets the
master's side of the protocol be tested precisely (every event it sends, every call it accepts)
without the timing of real executors. End-to-end tests with the real agent live with the agent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass

import aiohttp

from harness.processes import MesoliteProcess, ProcessLauncher, free_port
from mesolite.protocol.recordio import read_records


def start_master(launcher: ProcessLauncher, *flags: str) -> MesoliteProcess:
    """A master on 127.0.0.1 and a free port; without --zk among `flags` it leads at once (standalone)."""
    port = free_port()
    return launcher.start(
        "master", "master", f"--port={port}", "--ip=127.0.0.1", "--hostname=127.0.0.1", *flags, port=port
    )


def start_contending_master(launcher: ProcessLauncher, zk_url: str, *flags: str) -> MesoliteProcess:
    """A master that contends for leadership under `zk_url`, with a short session timeout so that failover is quick."""
    return start_master(
        launcher, f"--zk={zk_url}", "--zk_session_timeout=2secs", "--registry_flush_interval=100ms", *flags
    )


def elected(master: MesoliteProcess, timeout: float = 2.0) -> bool:
    """Whether the master says it is the elected leader (False while it does not answer within `timeout`)."""
    try:
        with urllib.request.urlopen(master.url("/metrics/snapshot"), timeout=timeout) as response:
            return json.load(response)["master/elected"] == 1.0
    except OSError:
        return False


async def get_json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        return json.loads(await response.text())


class EventReader:
    """Reads a RecordIO event stream into a queue; `next(type)` waits for the next event of a type."""

    def __init__(self, response: aiohttp.ClientResponse, on_event=None):
        self.response = response
        self.on_event = on_event
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self.seen: list[dict] = []
        self.ended = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for record in read_records(self.response.content):
                event = json.loads(record)
                self.seen.append(event)
                if self.on_event is not None:
                    self.on_event(event)
                await self.events.put(event)
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        finally:
            self.ended.set()

    async def next(self, *types: str, within: float = 10.0, skip: tuple[str, ...] = ("HEARTBEAT", "PING")) -> dict:
        """The next event (of one of `types`, if given), skipping heartbeats; fails on timeout."""
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {types or 'event'} within {within}s; seen: {[e['type'] for e in self.seen]}")
            try:
                event = await asyncio.wait_for(self.events.get(), remaining)
            except TimeoutError:
                continue
            if event["type"] in skip and event["type"] not in types:
                continue
            if not types or event["type"] in types:
                return event
            raise AssertionError(f"expected {types}, got {event['type']}: {event}")

    async def nothing(self, seconds: float, *types: str) -> None:
        """Assert that no event (of `types`, if given; heartbeats and pings aside) arrives for `seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    event = await self.events.get()
                    if event["type"] in ("HEARTBEAT", "PING"):
                        continue
                    if not types or event["type"] in types:
                        raise AssertionError(f"unexpected event {event}")

    async def close(self) -> None:
        self._task.cancel()
        self.response.close()
        with contextlib.suppress(BaseException):
            await self._task


@dataclass
class CallResult:
    status: int
    text: str


class Scheduler:
    """A framework subscribed over the v1 scheduler API (raw HTTP, so tests see every byte)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str):
        self.session = session
        self.base_url = base_url
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self.reader: EventReader | None = None
        self.subscribed: dict | None = None

    async def subscribe(self, framework_info: dict | None = None, framework_id: str | None = None) -> dict:
        info = {"user": "root", "name": "test-framework", **(framework_info or {})}
        call: dict = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if framework_id:
            call["framework_id"] = {"value": framework_id}
            info["id"] = {"value": framework_id}
        response = await self.session.post(
            f"{self.base_url}/api/v1/scheduler",
            json=call,
            headers={"Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        assert response.status == 200, await response.text()
        self.stream_id = response.headers["Mesos-Stream-Id"]
        self.reader = EventReader(response)
        event = await self.reader.next("SUBSCRIBED")
        self.subscribed = event["subscribed"]
        self.framework_id = self.subscribed["framework_id"]["value"]
        return event

    async def call(self, call: dict, stream_id: str | None = "default") -> CallResult:
        body = {"framework_id": {"value": self.framework_id}, **call}
        headers = {"Content-Type": "application/json"}
        stream = self.stream_id if stream_id == "default" else stream_id
        if stream is not None:
            headers["Mesos-Stream-Id"] = stream
        async with self.session.post(f"{self.base_url}/api/v1/scheduler", data=json.dumps(body), headers=headers) as r:
            return CallResult(r.status, await r.text())

    async def next(self, *types: str, within: float = 10.0) -> dict:
        assert self.reader is not None
        return await self.reader.next(*types, within=within)

    async def offers(self, within: float = 10.0) -> list[dict]:
        return (await self.next("OFFERS", within=within))["offers"]["offers"]

    async def launch(self, offer: dict, *tasks: dict, refuse_seconds: float | None = None) -> CallResult:
        accept: dict = {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}],
        }
        if refuse_seconds is not None:
            accept["filters"] = {"refuse_seconds": refuse_seconds}
        return await self.call({"type": "ACCEPT", "accept": accept})

    async def close(self) -> None:
        if self.reader is not None:
            await self.reader.close()


def command_task(offer: dict, task_id: str, cpus: float = 0.1, mem: float = 32, command: str = "true") -> dict:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
        ],
        "command": {"value": command},
    }


class FakeAgent:
    """TEST-ONLY fake agent: registers over the real protocol, runs nothing; the test sends its statuses."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        hostname: str = "127.0.0.1",
        port: int = 5051,
        resources: list[dict] | None = None,
        attributes: list[dict] | None = None,
    ):
        self.session = session
        self.base_url = base_url
        self.hostname = hostname
        self.port = port
        self.resources = resources or [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 4096}},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": 10000}},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}},
        ]
        self.attributes = attributes or []
        self.agent_id: str | None = None
        self.reader: EventReader | None = None
        self.registered: dict | None = None
        self.answer_pings = True
        self._pongs: set[asyncio.Task] = set()

    def _on_event(self, event: dict) -> None:
        if event["type"] == "PING" and self.answer_pings:
            pong = asyncio.create_task(self.call({"type": "PONG"}))
            self._pongs.add(pong)
            pong.add_done_callback(self._pongs.discard)

    def agent_info(self) -> dict:
        info = {
            "hostname": self.hostname,
            "port": self.port,
            "resources": self.resources,
            "attributes": self.attributes,
        }
        if self.agent_id:
            info["id"] = {"value": self.agent_id}
        return info

    async def subscribe(
        self, tasks: list[dict] | None = None, frameworks: list[dict] | None = None, expect_status: int = 200
    ) -> aiohttp.ClientResponse:
        body = {
            "type": "REREGISTER" if self.agent_id else "REGISTER",
            "agent_info": self.agent_info(),
            "boot_id": "test-boot",
            "version": "1.11.0",
            "tasks": tasks or [],
            "frameworks": frameworks or [],
        }
        response = await self.session.post(
            f"{self.base_url}/internal/agent/subscribe",
            json=body,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        if response.status != expect_status:
            raise AssertionError(f"subscribe answered {response.status}: {await response.text()}")
        if response.status != 200:
            return response
        self.reader = EventReader(response, self._on_event)
        event = await self.reader.next("REGISTERED")
        self.registered = event["registered"]
        self.agent_id = self.registered["agent_id"]["value"]
        return response

    async def call(self, body: dict) -> int:
        async with self.session.post(
            f"{self.base_url}/internal/agent/call",
            data=json.dumps(body),
            headers={"Content-Type": "application/json", "Mesos-Agent-Id": self.agent_id or ""},
        ) as response:
            await response.read()
            return response.status

    async def send_status(self, framework_id: str, task_id: str, state: str, **extra) -> str:
        """Send a status update the way the real agent does (with a fresh uuid); returns the uuid."""
        status_uuid = base64.b64encode(uuid.uuid4().bytes).decode()
        status = {
            "task_id": {"value": task_id},
            "agent_id": {"value": self.agent_id},
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "timestamp": time.time(),
            "uuid": status_uuid,
            **extra,
        }
        code = await self.call(
            {"type": "STATUS_UPDATE", "status_update": {"framework_id": {"value": framework_id}, "status": status}}
        )
        assert code == 202, code
        return status_uuid

    async def next(self, *types: str, within: float = 10.0) -> dict:
        assert self.reader is not None
        return await self.reader.next(*types, within=within)

    async def disconnect(self) -> None:
        if self.reader is not None:
            await self.reader.close()
            self.reader = None


async def launch_on_agent(
    scheduler: Scheduler, agent: FakeAgent, task_id: str, refuse_seconds: float | None = None
) -> dict:
    """Launch a command task on the framework's one offer and wait until the agent is told to run it.

    Returns the offer, whose resources the task took.
    """
    (offer,) = await scheduler.offers()
    await scheduler.launch(offer, command_task(offer, task_id), refuse_seconds=refuse_seconds)
    await agent.next("RUN_TASK")
    return offer
