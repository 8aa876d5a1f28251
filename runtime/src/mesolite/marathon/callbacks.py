"""HTTP callback subscribers (/v2/eventSubscriptions, `--event_subscriber http_callback`): every event of the
bus is POSTed as JSON to each registered callback URL.

The URLs live in Marathon's ZooKeeper state, so that a new leader keeps posting to them. Delivery never
holds the scheduler: publishing only puts the event on each subscriber's queue (at most `QUEUE_LIMIT`
events); one worker per subscriber posts them in order, retrying a failed post under `DELIVERY_RETRY`.
A subscriber that is slow or gone fills its own queue only: further events for it are dropped, counted and
logged, and nobody else waits (Marathon likewise drops events for slow consumers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from mesolite.marathon.app_definition import ValidationError
from mesolite.marathon.events import EventBus
from mesolite.marathon.storage import MarathonStorage
from mesolite.retry import RetryFailed, RetryPolicy, retry

log = logging.getLogger(__name__)

EVENT_SUBSCRIBER_HTTP_CALLBACK = "http_callback"
NOT_RUNNING_MESSAGE = (
    "http event callback system is not running on this Marathon instance. "
    'Please re-start this instance with "--event_subscriber http_callback".'
)
QUEUE_LIMIT = 1000
DEFAULT_REQUEST_TIMEOUT = 10.0
# A few quick retries: an event that cannot be delivered within seconds would hold every later one.
DELIVERY_RETRY = RetryPolicy(initial=0.2, maximum=2.0, max_tries=3)
MAX_URL_LENGTH = 2048


class CallbackFailed(Exception):
    """The callback did not take the event (no answer, or an HTTP error status)."""


def validate_callback_url(url: str | None) -> str:
    """An absolute http(s) URL with a host, else a 422 naming `callbackUrl`."""
    if url is None or not url.strip():
        raise ValidationError([("/callbackUrl", "is required")])
    problem = None
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            problem = f"must be an http or https URL, got scheme {parts.scheme or '(none)'!r}"
        elif not parts.hostname:
            problem = "must name a host"
        else:
            parts.port  # noqa: B018 (raises ValueError on a port out of range)
    except ValueError as error:
        problem = f"is not a valid URL: {error}"
    if problem is None and len(url) > MAX_URL_LENGTH:
        problem = f"is longer than {MAX_URL_LENGTH} characters"
    if problem is not None:
        raise ValidationError([("/callbackUrl", problem)])
    return url


@dataclass
class CallbackSubscriber:
    """One callback URL: the events not posted yet and the worker that posts them."""

    url: str
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    dropped: int = 0
    delivered: int = 0
    failed: int = 0
    worker: asyncio.Task | None = None


class HttpCallbacks:
    """The registered callbacks of the leading instance; `start()` loads them and listens to the bus."""

    def __init__(
        self,
        storage: MarathonStorage,
        events: EventBus,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        static_endpoints: tuple[str, ...] = (),
    ) -> None:
        self.storage = storage
        self.events = events
        self.request_timeout = request_timeout
        self.static_endpoints = static_endpoints
        self.subscribers: dict[str, CallbackSubscriber] = {}
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    @property
    def callback_urls(self) -> list[str]:
        return list(self.subscribers)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        urls = await self.storage.event_subscribers()
        # --http_endpoints: added to the stored list at start, as Marathon does.
        missing = [url for url in self.static_endpoints if url not in urls]
        if missing:
            urls += missing
            await self.storage.save_event_subscribers(urls)
        for url in urls:
            self._add(url)
        self.events.add_listener(self._offer)
        if urls:
            log.info("posting events to %d callback URL(s)", len(urls))

    async def stop(self) -> None:
        self.events.remove_listener(self._offer)
        for subscriber in self.subscribers.values():
            if subscriber.worker is not None:
                subscriber.worker.cancel()
        for subscriber in self.subscribers.values():
            if subscriber.worker is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await subscriber.worker
        self.subscribers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def subscribe(self, url: str, client_ip: str) -> dict[str, Any]:
        """Register `url` (stored first); the `subscribe_event`, which is published too."""
        validate_callback_url(url)
        async with self._lock:
            if url not in self.subscribers:
                await self.storage.save_event_subscribers([*self.subscribers, url])
                self._add(url)
        return self.events.publish("subscribe_event", clientIp=client_ip, callbackUrl=url)

    async def unsubscribe(self, url: str, client_ip: str) -> dict[str, Any]:
        validate_callback_url(url)
        async with self._lock:
            if url in self.subscribers:
                await self.storage.save_event_subscribers([u for u in self.subscribers if u != url])
                subscriber = self.subscribers.pop(url)
                if subscriber.worker is not None:
                    subscriber.worker.cancel()
        return self.events.publish("unsubscribe_event", clientIp=client_ip, callbackUrl=url)

    def _add(self, url: str) -> None:
        subscriber = CallbackSubscriber(url)
        subscriber.worker = asyncio.create_task(self._deliver(subscriber), name=f"event-callback {url}")
        self.subscribers[url] = subscriber

    def _offer(self, event: dict[str, Any]) -> None:
        """Queue `event` for every subscriber (a bus listener: never waits)."""
        if not self.subscribers:
            return
        body = json.dumps(event).encode()
        for subscriber in self.subscribers.values():
            try:
                subscriber.queue.put_nowait(body)
            except asyncio.QueueFull:
                subscriber.dropped += 1
                # Log the first drop and then every hundredth: a dead subscriber must not flood the log.
                if subscriber.dropped == 1 or subscriber.dropped % 100 == 0:
                    log.warning(
                        "event callback %s is too slow (%d events queued): dropped %s (%d dropped so far)",
                        subscriber.url,
                        QUEUE_LIMIT,
                        event.get("eventType"),
                        subscriber.dropped,
                    )

    async def _deliver(self, subscriber: CallbackSubscriber) -> None:
        while True:
            body = await subscriber.queue.get()
            try:
                await retry(
                    lambda body=body: self._post(subscriber.url, body),
                    DELIVERY_RETRY,
                    retry_on=(CallbackFailed,),
                    what=f"posting an event to {subscriber.url}",
                )
                subscriber.delivered += 1
            except RetryFailed as error:
                subscriber.failed += 1
                log.warning("event callback %s: %s; the event is dropped", subscriber.url, error)

    async def _post(self, url: str, body: bytes) -> None:
        assert self._session is not None
        try:
            async with self._session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                if response.status >= 400:
                    raise CallbackFailed(f"answered HTTP {response.status}")
        except (TimeoutError, OSError, aiohttp.ClientError) as error:
            raise CallbackFailed(f"{error.__class__.__name__}: {error}") from error
