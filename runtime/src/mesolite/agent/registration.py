"""The agent's link to the leading master: detection, the subscribe stream, calls, and re-registration.

The agent follows the leader through ZooKeeper (or talks to a fixed `host:port`), POSTs
`/internal/agent/subscribe` (REGISTER, or REREGISTER with its id and tasks) and reads the RecordIO
event stream that answers. When the stream ends, the leader changes, or the master falls silent for
longer than its ping timeout, the agent subscribes again (with back-off), always with the same id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from mesolite.protocol.recordio import read_records
from mesolite.zookeeper.detector import MasterDetector, master_address
from mesolite.zookeeper.url import FILE_SCHEME, ZOOKEEPER_SCHEME, read_url_file

log = logging.getLogger(__name__)

SUBSCRIBE_PATH = "/internal/agent/subscribe"
CALL_PATH = "/internal/agent/call"
MAX_REDIRECTS = 3
MAX_BACKOFF_SECONDS = 15.0
# Before REGISTERED tells the real interval: how long a silent stream is trusted.
DEFAULT_SILENCE_TIMEOUT = 75.0
# A silent stream is dropped after this many missed pings (the master's default max_agent_ping_timeouts).
MISSED_PINGS_BEFORE_RECONNECT = 5


class RegistrationRefused(Exception):
    """The master refused this agent (403): it was removed, or its resources changed."""


class NoLeader(Exception):
    """The master we reached does not lead and knows no leader (503)."""


@dataclass
class LinkEvents:
    """What the link tells the agent."""

    subscribe_body: Callable[[], dict]  # REGISTER / REREGISTER, built fresh for every attempt
    on_registered: Callable[[dict, str], Awaitable[None]]  # (registered body, master address)
    on_event: Callable[[dict], Awaitable[None]]
    on_disconnected: Callable[[], Awaitable[None]]
    on_refused: Callable[[str], Awaitable[None]]


def resolve_master_flag(master: str) -> str:
    """`--master` as given, with a file:// indirection read (it holds a zk:// URL or host:port)."""
    value = master.strip()
    if value.startswith(FILE_SCHEME):
        value = read_url_file(value)
    if not value.startswith(ZOOKEEPER_SCHEME) and (":" not in value or "/" in value):
        raise ValueError(f"--master '{master}': expected zk://host:port[,host:port]/path, file://<path> or host:port")
    return value


async def leader_addresses(master: str) -> AsyncIterator[str | None]:
    """`host:port` of the leading master, now and after every change (None while there is none)."""
    if not master.startswith(ZOOKEEPER_SCHEME):
        yield master
        await asyncio.Event().wait()  # a fixed master never changes
        return
    detector = MasterDetector(master)
    while True:
        try:
            await detector.start()
            break
        except Exception as error:
            log.warning("cannot reach ZooKeeper at %s yet: %s", detector.url, error)
            await asyncio.sleep(2)
    try:
        async for leader in detector.changes():
            yield None if leader is None else master_address(leader)
    finally:
        await detector.stop()


class MasterLink:
    def __init__(self, master: str, session: aiohttp.ClientSession, events: LinkEvents, backoff_factor: float = 1.0):
        self.master = master
        self.session = session
        self.events = events
        self.backoff_factor = backoff_factor
        self.leader: str | None = None  # as detected
        self.address: str | None = None  # the master our stream is connected to
        self.registered = False
        self.silence_timeout = DEFAULT_SILENCE_TIMEOUT
        self.ping_interval = DEFAULT_SILENCE_TIMEOUT / MISSED_PINGS_BEFORE_RECONNECT
        self._last_accepted_call: float | None = None  # loop time of the last call the master accepted
        self._leader_changed = asyncio.Event()
        self._leader_known = asyncio.Event()

    async def run(self) -> None:
        follower = asyncio.create_task(self._follow_leader())
        failures = 0
        try:
            while True:
                await self._leader_known.wait()
                self._leader_changed.clear()
                leader = self.leader
                if leader is None:
                    await self._leader_changed.wait()
                    continue
                try:
                    await self._subscribe(leader)
                    failures = 0
                except RegistrationRefused as refusal:
                    log.warning("master %s refused this agent: %s", leader, refusal)
                    await self.events.on_refused(str(refusal))
                except (aiohttp.ClientError, OSError, TimeoutError, NoLeader, ValueError) as error:
                    log.info("no subscription with master %s: %s", leader, error or type(error).__name__)
                finally:
                    if self.registered:
                        self.registered = False
                        await self.events.on_disconnected()
                    self.address = None
                if self._leader_changed.is_set():
                    continue  # a new leader: go at once
                failures += 1
                delay = random.uniform(0, min(self.backoff_factor * 2 ** min(failures, 6), MAX_BACKOFF_SECONDS))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._leader_changed.wait(), timeout=delay)
        finally:
            follower.cancel()

    async def call(self, body: dict, agent_id: str) -> bool:
        """POST a call to the connected master; True when it was accepted (2xx)."""
        address = self.address
        if address is None or not self.registered:
            return False
        loop = asyncio.get_running_loop()
        if body.get("type") == "PONG" and self._heard_within(loop.time(), self.ping_interval):
            return True  # the master heard from us within the ping interval: any call counts as a PONG
        try:
            async with self.session.post(
                f"http://{address}{CALL_PATH}",
                data=json.dumps(body, separators=(",", ":")),
                headers={"Content-Type": "application/json", "Mesos-Agent-Id": agent_id},
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                if response.status // 100 == 2:
                    if address == self.address:
                        self._last_accepted_call = loop.time()
                    return True
                text = await response.text()
                log.warning("master %s answered %s to %s: %s", address, response.status, body.get("type"), text[:300])
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.info("call %s to master %s failed: %s", body.get("type"), address, error or type(error).__name__)
        return False

    def _heard_within(self, now: float, seconds: float) -> bool:
        return self._last_accepted_call is not None and now - self._last_accepted_call < seconds

    async def _follow_leader(self) -> None:
        async for address in leader_addresses(self.master):
            if address != self.leader:
                log.info("leading master: %s", address or "none")
            self.leader = address
            self._leader_known.set()
            self._leader_changed.set()

    async def _subscribe(self, address: str) -> None:
        body = self.events.subscribe_body()
        for _redirect in range(MAX_REDIRECTS + 1):
            async with self.session.post(
                f"http://{address}{SUBSCRIBE_PATH}",
                data=json.dumps(body, separators=(",", ":")),
                headers={"Content-Type": "application/json", "Accept": "application/recordio"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10),
            ) as response:
                if response.status == 307:
                    location = response.headers.get("Location", "")
                    address = location.removeprefix("http:").removeprefix("//").split("/", 1)[0]
                    log.info("master redirected the subscription to %s", address)
                    continue
                if response.status == 503:
                    raise NoLeader(await response.text())
                if response.status == 403:
                    raise RegistrationRefused(await response.text() or "403 Forbidden")
                if response.status != 200:
                    raise ValueError(f"subscribe answered {response.status}: {(await response.text())[:300]}")
                await self._read_stream(response, address)
                return
        raise ValueError(f"more than {MAX_REDIRECTS} redirects")

    async def _read_stream(self, response: aiohttp.ClientResponse, address: str) -> None:
        records = read_records(response.content).__aiter__()
        reader = asyncio.ensure_future(self._next(records))
        leader_change = asyncio.ensure_future(self._leader_changed.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {reader, leader_change}, timeout=self.silence_timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if leader_change in done:
                    log.info("leader changed: leaving master %s", address)
                    return
                if reader not in done:
                    log.warning("no event from master %s for %.0fs: reconnecting", address, self.silence_timeout)
                    return
                record = reader.result()
                if record is None:
                    log.info("master %s closed the event stream", address)
                    return
                reader = asyncio.ensure_future(self._next(records))
                await self._handle(json.loads(record), address)
        finally:
            reader.cancel()
            leader_change.cancel()

    @staticmethod
    async def _next(records: AsyncIterator[bytes]) -> bytes | None:
        with contextlib.suppress(StopAsyncIteration):
            return await records.__anext__()
        return None

    async def _handle(self, event: dict, address: str) -> None:
        if event.get("type") == "REGISTERED":
            registered = event.get("registered") or {}
            ping_interval = float(registered.get("ping_interval_seconds") or 0)
            if ping_interval > 0:
                self.ping_interval = ping_interval
                self.silence_timeout = ping_interval * MISSED_PINGS_BEFORE_RECONNECT
            self._last_accepted_call = None
            self.address = address
            self.registered = True
            await self.events.on_registered(registered, address)
            return
        if not self.registered:
            raise ValueError(f"expected REGISTERED as the first event, got {event.get('type')}")
        await self.events.on_event(event)
