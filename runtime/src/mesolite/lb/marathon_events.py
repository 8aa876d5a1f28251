"""Following Marathon: full syncs of `/v2/apps?embed=apps.tasks` and the `/v2/events` Server-Sent-Events stream.

The follower subscribes to the stream first and syncs right after (so that no change falls between the two), on
every reconnect, after every event that changes apps or tasks (debounced: a deployment's burst of events costs
one sync), and every `sync_interval` as a safety net. Status updates that take a task out of service
(TASK_KILLING, or a terminal state) are reported at once, before the sync that follows them: a task stops
taking traffic as soon as Marathon starts killing it. Marathon may be several URLs (the next one is tried when one
fails), and may ask for HTTP Basic credentials and speak https.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from mesolite.retry import RetryPolicy

log = logging.getLogger(__name__)

APPS_PATH = "/v2/apps?embed=apps.tasks"
EVENTS_PATH = "/v2/events"
# A status that means the task must leave its backends now (Marathon is killing it, or it is gone).
LEAVING_STATES = {
    "TASK_KILLING",
    "TASK_KILLED",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNREACHABLE",
    "TASK_UNKNOWN",
}
# Events after which the apps or their tasks may look different.
SYNC_EVENTS = {
    "status_update_event",
    "instance_changed_event",
    "health_status_changed_event",
    "api_post_event",
    "app_terminated_event",
    "deployment_success",
    "deployment_failed",
    "deployment_step_success",
    "group_change_success",
}
RECONNECT_POLICY = RetryPolicy(initial=0.2, maximum=10.0)
MAX_EVENT_BYTES = 8 * 1024 * 1024


class MarathonUnavailable(RuntimeError):
    """No Marathon URL answered."""


@dataclass(frozen=True)
class MarathonEndpoint:
    urls: tuple[str, ...]
    credentials: tuple[str, str] | None = None  # (user, password) for HTTP Basic
    ssl_context: ssl.SSLContext | None = None

    def headers(self) -> dict[str, str]:
        if self.credentials is None:
            return {}
        token = base64.b64encode(f"{self.credentials[0]}:{self.credentials[1]}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


async def fetch_apps(session: aiohttp.ClientSession, endpoint: MarathonEndpoint) -> list[dict[str, Any]]:
    """Every app with its tasks, from the first Marathon URL that answers."""
    failures = []
    for url in endpoint.urls:
        try:
            async with session.get(
                url.rstrip("/") + APPS_PATH,
                headers={**endpoint.headers(), "Accept": "application/json"},
                ssl=endpoint.ssl_context,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                if response.status != 200:
                    failures.append(f"{url}: HTTP {response.status}")
                    continue
                document = await response.json(content_type=None)
                apps = document.get("apps") if isinstance(document, dict) else None
                if not isinstance(apps, list):
                    failures.append(f"{url}: the answer has no 'apps' list")
                    continue
                return [app for app in apps if isinstance(app, dict)]
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            failures.append(f"{url}: {error or type(error).__name__}")
    raise MarathonUnavailable("; ".join(failures) or "no Marathon URL given")


async def event_stream(session: aiohttp.ClientSession, endpoint: MarathonEndpoint) -> AsyncIterator[dict[str, Any]]:
    """The events of the first Marathon URL that accepts a stream; ends when the stream ends."""
    failures = []
    for url in endpoint.urls:
        try:
            response = await session.get(
                url.rstrip("/") + EVENTS_PATH,
                headers={**endpoint.headers(), "Accept": "text/event-stream"},
                ssl=endpoint.ssl_context,
                timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10),
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            failures.append(f"{url}: {error or type(error).__name__}")
            continue
        if response.status != 200:
            failures.append(f"{url}: HTTP {response.status}")
            response.release()
            continue
        try:
            yield {"eventType": "event_stream_connected", "url": url}
            async for event in _sse_events(response):
                yield event
            return
        finally:
            response.release()
    raise MarathonUnavailable("; ".join(failures) or "no Marathon URL given")


async def _sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    data: list[str] = []
    size = 0
    while True:
        try:
            raw = await response.content.readuntil(b"\n")
        except ValueError:
            raise MarathonUnavailable("an event stream line was larger than the read buffer") from None
        if not raw:
            return
        line = raw.decode(errors="replace").rstrip("\r\n")
        if line == "":
            if data:
                with contextlib.suppress(ValueError):
                    event = json.loads("\n".join(data))
                    if isinstance(event, dict):
                        yield event
            data, size = [], 0
        elif line.startswith("data:"):
            size += len(line)
            if size > MAX_EVENT_BYTES:
                raise MarathonUnavailable("an event was larger than 8 MB")
            data.append(line[5:].lstrip(" "))


class MarathonFollower:
    """Keeps `on_apps` fed with Marathon's apps and `on_leaving` with tasks leaving service."""

    def __init__(
        self,
        endpoint: MarathonEndpoint,
        on_apps: Callable[[list[dict[str, Any]]], Awaitable[None]],
        on_leaving: Callable[[str, str], Awaitable[None]],
        sync_interval: float = 60.0,
        debounce: float = 0.05,
    ) -> None:
        self.endpoint = endpoint
        self.on_apps = on_apps
        self.on_leaving = on_leaving
        self.sync_interval = sync_interval
        self.debounce = debounce
        self.syncs = 0
        self._sync_wanted = asyncio.Event()
        self._sync_wanted.set()  # the first sync happens at once, whether or not the stream connects

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            syncing = asyncio.create_task(self._sync_loop(session), name="marathon-sync")
            try:
                await self._follow_events(session)
            finally:
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing

    def request_sync(self) -> None:
        self._sync_wanted.set()

    async def _follow_events(self, session: aiohttp.ClientSession) -> None:
        backoff = RECONNECT_POLICY.backoff()
        while True:
            try:
                async for event in event_stream(session, self.endpoint):
                    await self._handle(event)
                    if event.get("eventType") == "event_stream_connected":
                        backoff.reset()
                log.warning("Marathon's event stream ended; reconnecting")
            except (MarathonUnavailable, aiohttp.ClientError, TimeoutError) as error:
                log.warning("Marathon's event stream failed: %s", error)
            await backoff.wait()

    async def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("eventType")
        if kind == "event_stream_connected":
            log.info("following Marathon's events at %s", event.get("url"))
            self.request_sync()
        elif kind == "status_update_event" and event.get("taskStatus") in LEAVING_STATES:
            await self.on_leaving(str(event.get("taskId", "")), str(event.get("taskStatus")))
            self.request_sync()
        elif kind in SYNC_EVENTS:
            self.request_sync()

    async def _sync_loop(self, session: aiohttp.ClientSession) -> None:
        backoff = RECONNECT_POLICY.backoff()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_wanted.wait(), self.sync_interval)
            # Let a burst of events settle into one sync.
            await asyncio.sleep(self.debounce)
            self._sync_wanted.clear()
            try:
                apps = await fetch_apps(session, self.endpoint)
            except MarathonUnavailable as error:
                log.warning("cannot read Marathon's apps: %s", error)
                self._sync_wanted.set()
                await backoff.wait()
                continue
            backoff.reset()
            self.syncs += 1
            await self.on_apps(apps)
