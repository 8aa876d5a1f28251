"""Simulated agents and a load-generating framework for benchmarking the master over its real HTTP APIs.

Many agents live in one process (`AgentFleet`), and `FleetProcesses` spreads a fleet over several worker
processes so that the simulator's own event loop is not what limits the master. Each agent registers with the
master through the agent protocol of docs/architecture.md (`POST /internal/agent/subscribe`, a RecordIO event
stream, `POST /internal/agent/call`), answers PING with PONG as a real agent does (no PONG when it made a call
within the last ping interval: the protocol counts any call as a sign of life) and "runs" every task instantly:
RUN_TASK is answered with TASK_RUNNING (and, with `finish_tasks`, TASK_FINISHED), batched per agent with the
`STATUS_UPDATES` call. The framework subscribes
through the v1 scheduler API (mesolite.scheduler.client) and launches tasks on every offer until it has
launched its quota, acknowledging every update as a real framework must.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import multiprocessing
import resource
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import aiohttp
from mesolite.protocol.recordio import read_records
from mesolite.resources import Resources, parse_resources
from mesolite.scheduler.client import SchedulerCallError, SchedulerClient

log = logging.getLogger("bench.simulator")

AGENT_RESOURCES = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]"
UPDATE_BATCH_SECONDS = 0.02  # how long an agent collects status updates before sending them in one call


def status_update(framework_id: str, task_id: str, agent_id: str, state: str) -> dict:
    now = time.time()
    return {
        "framework_id": {"value": framework_id},
        "status": {
            "task_id": {"value": task_id},
            "agent_id": {"value": agent_id},
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "timestamp": now,
            "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
        },
        "timestamp": now,
    }


@dataclass
class SimulatedAgent:
    index: int
    fleet: AgentFleet
    agent_id: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> state
    pending_updates: list[dict] = field(default_factory=list)
    flush_scheduled: bool = False
    holds_gate: bool = False
    ping_interval: float = 15.0  # from REGISTERED
    last_call_at: float | None = None  # when the master last accepted a call of ours (monotonic)

    @property
    def hostname(self) -> str:
        return f"sim-agent-{self.index}"

    async def run(self) -> None:
        """Register and serve the event stream; register again (same id) if the stream breaks."""
        while not self.fleet.stopping:
            # Bound the registrations in flight, as a real fleet's staggered start would.
            await self.fleet.registration_gate.acquire()
            self.holds_gate = True
            try:
                await self._serve_once()
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                log.debug("%s: stream failed: %s", self.hostname, error)
                self.fleet.stream_failures += 1
            finally:
                self._release_gate()
            if not self.fleet.stopping:
                await asyncio.sleep(1.0)

    async def _serve_once(self) -> None:
        body = {
            "type": "REREGISTER" if self.agent_id else "REGISTER",
            "agent_info": {
                "hostname": self.hostname,
                "port": 5051,
                "resources": self.fleet.resources_json,
                "attributes": [],
                **({"id": {"value": self.agent_id}} if self.agent_id else {}),
            },
            "boot_id": self.fleet.boot_id,
            "version": "1.11.0",
            "tasks": [],
            "frameworks": [],
        }
        address = self.fleet.master
        for _redirect in range(3):
            async with self.fleet.streams_http.post(
                f"http://{address}/internal/agent/subscribe",
                json=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, connect=60, sock_connect=60),
            ) as response:
                if response.status == 307:
                    address = response.headers["Location"].lstrip("/").split("/", 1)[0]
                    continue
                if response.status != 200:
                    raise ValueError(f"subscribe answered {response.status}: {(await response.text())[:200]}")
                async for record in read_records(response.content):
                    await self._handle(json.loads(record))
                return

    async def _handle(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "REGISTERED":
            first = self.agent_id is None
            self.agent_id = event["registered"]["agent_id"]["value"]
            self.ping_interval = float(event["registered"].get("ping_interval_seconds") or self.ping_interval)
            self.last_call_at = None
            self._release_gate()
            if first:
                self.fleet.registered(self)
        elif kind == "RUN_TASK":
            framework_id = event["run_task"]["framework"]["id"]["value"]
            task_id = event["run_task"]["task"]["task_id"]["value"]
            self.fleet.tasks_received += 1
            self.tasks[task_id] = "TASK_RUNNING"
            self._queue(status_update(framework_id, task_id, self.agent_id or "", "TASK_RUNNING"))
            if self.fleet.finish_tasks:
                self.tasks[task_id] = "TASK_FINISHED"
                self._queue(status_update(framework_id, task_id, self.agent_id or "", "TASK_FINISHED"))
        elif kind == "KILL_TASK":
            task_id = event["kill_task"]["task_id"]["value"]
            framework_id = event["kill_task"]["framework_id"]["value"]
            if self.tasks.get(task_id) == "TASK_RUNNING":
                self.tasks[task_id] = "TASK_KILLED"
                self._queue(status_update(framework_id, task_id, self.agent_id or "", "TASK_KILLED"))
        elif kind == "PING":
            # docs/architecture.md: an agent whose call the master accepted within the last ping interval
            # may skip the PONG (the master counts every call as a sign of life), as the real agent does.
            if self.last_call_at is not None and time.monotonic() - self.last_call_at < self.ping_interval:
                self.fleet.pongs_skipped += 1
            else:
                self.fleet.pongs_sent += 1
                self.fleet.spawn(self._call({"type": "PONG"}))
        elif kind == "SHUTDOWN":
            self.agent_id = None  # the master removed us: register as a new agent
        # ACKNOWLEDGE, SHUTDOWN_FRAMEWORK, RECONCILE: nothing to do for an agent whose tasks end instantly.

    def _release_gate(self) -> None:
        if self.holds_gate:
            self.holds_gate = False
            self.fleet.registration_gate.release()

    def _queue(self, update: dict) -> None:
        self.pending_updates.append(update)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_later(UPDATE_BATCH_SECONDS, self._flush)

    def _flush(self) -> None:
        updates, self.pending_updates, self.flush_scheduled = self.pending_updates, [], False
        if updates:
            self.fleet.spawn(self._call({"type": "STATUS_UPDATES", "status_updates": updates}))

    async def _call(self, call: dict) -> None:
        try:
            async with self.fleet.http.post(
                self.fleet.call_url,
                data=json.dumps(call, separators=(",", ":")).encode(),
                headers={"Content-Type": "application/json", "Mesos-Agent-Id": self.agent_id or ""},
            ) as response:
                if response.status // 100 != 2:
                    self.fleet.call_failures += 1
                    log.warning("%s: %s answered %s", self.hostname, call["type"], response.status)
                else:
                    self.last_call_at = time.monotonic()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self.fleet.call_failures += 1
            log.debug("%s: %s failed: %s", self.hostname, call["type"], error)


class AgentFleet:
    """`count` simulated agents in this process, numbered from `first_index`."""

    def __init__(
        self,
        master: str,
        count: int,
        resources: str = AGENT_RESOURCES,
        finish_tasks: bool = False,
        first_index: int = 0,
    ):
        self.master = master
        self.call_url = f"http://{master}/internal/agent/call"
        self.count = count
        self.finish_tasks = finish_tasks
        self.resources_json = parse_resources(resources).to_protobuf_json()
        self.boot_id = uuid.uuid4().hex
        self.agents = [SimulatedAgent(index, self) for index in range(first_index, first_index + count)]
        self.pongs_sent = 0
        self.pongs_skipped = 0
        self.stopping = False
        self.registered_count = 0
        self.all_registered = asyncio.Event()
        self.first_registration_at: float | None = None
        self.last_registration_at: float | None = None
        self.tasks_received = 0
        self.stream_failures = 0
        self.call_failures = 0
        self._tasks: set[asyncio.Task] = set()
        self.http: aiohttp.ClientSession
        self.streams_http: aiohttp.ClientSession
        self.registration_gate: asyncio.Semaphore

    def registered(self, agent: SimulatedAgent) -> None:
        now = time.monotonic()
        self.first_registration_at = self.first_registration_at or now
        self.last_registration_at = now
        self.registered_count += 1
        if self.registered_count == self.count:
            self.all_registered.set()

    def spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, registration_concurrency: int = 200) -> None:
        """Start every agent; at most `registration_concurrency` first registrations are in flight at a time."""
        # One connection per agent for the event streams; calls share a bounded pool, as they would share
        # the master's capacity (and each side has a file descriptor limit: 20,000 on the reference machine).
        self.streams_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        self.registration_gate = asyncio.Semaphore(registration_concurrency)
        for agent in self.agents:
            self.spawn(agent.run())

    async def stop(self) -> None:
        self.stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.close()
        await self.streams_http.close()

    def statistics(self) -> dict:
        return {
            "agents_registered": self.registered_count,
            "first_registration_at": self.first_registration_at,
            "last_registration_at": self.last_registration_at,
            "tasks_received": self.tasks_received,
            "stream_failures": self.stream_failures,
            "call_failures": self.call_failures,
            "pongs_sent": self.pongs_sent,
            "pongs_skipped": self.pongs_skipped,
        }


def raise_file_limit() -> int:
    """Every simulated agent holds a connection: raise the soft limit on open files to the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _fleet_worker(master: str, first_index: int, count: int, resources: str, concurrency: int, pipe: Connection):
    """A worker process: run its share of the agents until the parent says stop; report on the pipe."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s simulator %(levelname)s %(message)s")
    raise_file_limit()

    async def main() -> None:
        fleet = AgentFleet(master, count, resources, first_index=first_index)
        await fleet.start(concurrency)
        stop_requested = asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        registered = asyncio.ensure_future(fleet.all_registered.wait())
        await asyncio.wait([stop_requested, registered], return_when=asyncio.FIRST_COMPLETED)
        if registered.done():
            pipe.send(("registered", fleet.statistics()))
        await stop_requested
        registered.cancel()
        await fleet.stop()
        pipe.send(("stopped", fleet.statistics()))

    asyncio.run(main())


class FleetProcesses:
    """N simulated agents spread over `processes` worker processes (each an `AgentFleet`)."""

    def __init__(self, master: str, count: int, processes: int, resources: str = AGENT_RESOURCES):
        self.master = master
        self.count = count
        self.resources = resources
        self.processes = max(1, min(processes, count))
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []

    def start(self, registration_concurrency: int = 200) -> None:
        """Start the workers; together they keep at most `registration_concurrency` registrations in flight."""
        context = multiprocessing.get_context("spawn")
        share, extra = divmod(self.count, self.processes)
        first = 0
        for number in range(self.processes):
            count = share + (1 if number < extra else 0)
            parent_end, child_end = context.Pipe()
            concurrency = max(1, registration_concurrency // self.processes)
            worker = context.Process(
                target=_fleet_worker,
                args=(self.master, first, count, self.resources, concurrency, child_end),
                name=f"simulated-agents-{number}",
                daemon=True,
            )
            worker.start()
            child_end.close()
            self._workers.append((worker, parent_end))
            first += count

    async def registered(self) -> dict:
        """Wait until every agent has registered; the fleet's statistics (times are time.monotonic())."""
        reports = await asyncio.gather(*(self._receive(pipe, worker) for worker, pipe in self._workers))
        return _merge([report for _kind, report in reports])

    async def stop(self) -> dict:
        """Stop every worker; the fleet's final statistics."""
        reports = []
        for _worker, pipe in self._workers:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for worker, pipe in self._workers:
            with contextlib.suppress(EOFError, OSError, TimeoutError):
                kind, report = await asyncio.wait_for(self._receive(pipe, worker), 60)
                while kind != "stopped":
                    kind, report = await asyncio.wait_for(self._receive(pipe, worker), 60)
                reports.append(report)
            await asyncio.to_thread(worker.join, 10)
            if worker.is_alive():
                worker.kill()
        self._workers = []
        return _merge(reports)

    @staticmethod
    async def _receive(pipe: Connection, worker) -> tuple[str, dict]:
        while not await asyncio.to_thread(pipe.poll, 0.5):
            if not worker.is_alive():
                raise EOFError(f"simulator worker {worker.name} exited with {worker.exitcode}")
        return pipe.recv()


def _merge(reports: list[dict]) -> dict:
    merged: dict = {}
    for report in reports:
        for name, value in report.items():
            if name == "first_registration_at":
                merged[name] = min(filter(None, (merged.get(name), value)), default=None)
            elif name == "last_registration_at":
                merged[name] = max(filter(None, (merged.get(name), value)), default=None)
            else:
                merged[name] = merged.get(name, 0) + value
    return merged


class LoadFramework:
    """A framework that launches `task_count` small tasks as fast as offers allow and times them."""

    def __init__(
        self, master: str, task_count: int, tasks_per_offer: int = 1, task_resources: str = "cpus:0.1;mem:32"
    ) -> None:
        self.task_count = task_count
        self.tasks_per_offer = tasks_per_offer
        self.task_resources = parse_resources(task_resources)
        self.client = SchedulerClient(master, {"user": "root", "name": "bench-framework"}, self.on_event)
        self.offers_received = 0
        self.offer_events = 0
        self.subscribed_at: float | None = None
        self.offers_wanted = 0  # set by the benchmark: when this many offers arrived, offers_complete_at is set
        self.offers_complete_at: float | None = None
        self.first_offer_at: float | None = None
        self.last_offer_at: float | None = None
        self.launched = 0
        self.running = 0
        self.first_launch_at: float | None = None
        self.all_running_at: float | None = None
        self.done = asyncio.Event()
        self._background: set[asyncio.Task] = set()
        self._calls_in_flight = asyncio.Semaphore(64)  # like a real framework's bounded connection pool
        self.call_failures = 0

    async def on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "SUBSCRIBED":
            self.subscribed_at = time.monotonic()
        elif kind == "OFFERS":
            await self.on_offers(event["offers"].get("offers", []))
        elif kind == "UPDATE":
            status = event["update"]["status"]
            if status["state"] == "TASK_RUNNING":
                self.running += 1
                if self.running >= self.task_count and self.all_running_at is None:
                    self.all_running_at = time.monotonic()
                    self.done.set()
            self._spawn(self._acknowledge(status))

    async def on_offers(self, offers: list[dict]) -> None:
        now = time.monotonic()
        self.first_offer_at = self.first_offer_at or now
        self.last_offer_at = now
        self.offers_received += len(offers)
        if self.offers_received >= self.offers_wanted and self.offers_complete_at is None:
            self.offers_complete_at = now
        self.offer_events += 1
        declined = []
        for offer in offers:
            remaining = min(self.task_count - self.launched, self.tasks_per_offer)
            if remaining <= 0:
                declined.append(offer["id"]["value"])
                continue
            available = Resources.from_protobuf_json(offer["resources"])
            tasks = []
            role = (offer.get("allocation_info") or {}).get("role", "*")
            while len(tasks) < remaining and available.contains(self.task_resources):
                available = available - self.task_resources
                task_id = f"bench-{self.launched + len(tasks)}"
                tasks.append(
                    {
                        "name": task_id,
                        "task_id": {"value": task_id},
                        "agent_id": offer["agent_id"],
                        "resources": self.task_resources.to_protobuf_json(allocation_role=role),
                        "command": {"value": "true", "shell": True},
                    }
                )
            if not tasks:
                declined.append(offer["id"]["value"])
                continue
            self.first_launch_at = self.first_launch_at or time.monotonic()
            self.launched += len(tasks)
            self._spawn(self.client.launch(offer["id"]["value"], tasks))
        if declined:
            self._spawn(self.client.decline(declined, {"refuse_seconds": 3600.0}))

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.client.stop()

    async def _acknowledge(self, status: dict) -> None:
        await self.client.acknowledge(status)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(self._bounded(coroutine))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _bounded(self, coroutine) -> None:
        try:
            async with self._calls_in_flight:
                await coroutine
        except SchedulerCallError as error:
            self.call_failures += 1
            log.warning("framework call failed: %s", error)
        finally:
            coroutine.close()  # a call cancelled before it started (at stop) is dropped quietly
