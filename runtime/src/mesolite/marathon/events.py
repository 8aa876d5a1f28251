"""The event bus behind /v2/events: every event gets `eventType` and `timestamp`; subscribers get a queue.

Each event is encoded once, as the Server-Sent-Events frame every subscriber is sent. A subscriber whose
unread frames pass `SUBSCRIBER_BACKLOG` events or `SUBSCRIBER_BACKLOG_BYTES` is disconnected (its stream
ends; clients reconnect), as Marathon does with `--event_stream_max_outstanding_messages`: a client that
never reads must not hold the scheduler's memory (one event can carry two app definitions of 1 MB).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from mesolite.marathon.timestamps import now_timestamp

log = logging.getLogger(__name__)
SUBSCRIBER_BACKLOG = 1000
SUBSCRIBER_BACKLOG_BYTES = 16 * 1024 * 1024


class Subscription:
    """One /v2/events stream: the frames it has not sent yet, and whether the bus ended it."""

    def __init__(self, event_types: Collection[str] = ()) -> None:
        self.event_types = frozenset(event_types)
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending_bytes = 0
        self.ended = False

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types

    def offer(self, frame: bytes) -> bool:
        """Queue `frame`; False (and the stream ended) when the subscriber is too far behind."""
        if self.ended:
            return False
        if self._frames.qsize() >= SUBSCRIBER_BACKLOG or self._pending_bytes + len(frame) > SUBSCRIBER_BACKLOG_BYTES:
            self.end()
            return False
        self._pending_bytes += len(frame)
        self._frames.put_nowait(frame)
        return True

    def end(self) -> None:
        """Drop what is unsent and end the stream at its next read."""
        self.ended = True
        while not self._frames.empty():
            self._frames.get_nowait()
        self._pending_bytes = 0
        self._frames.put_nowait(None)

    async def next_frame(self) -> bytes | None:
        """The next frame to send; None once the stream has ended."""
        frame = await self._frames.get()
        if frame is not None:
            self._pending_bytes -= len(frame)
        return frame


def sse_frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['eventType']}\ndata: {json.dumps(event)}\n\n".encode()


class EventBus:
    def __init__(self, history: int = 200) -> None:
        self._subscribers: set[Subscription] = set()
        # Called with every event (the HTTP callbacks of /v2/eventSubscriptions); each must return at once.
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self.recent: deque[dict[str, Any]] = deque(maxlen=history)  # for tests and /metrics

    def publish(self, event_type: str, **payload: Any) -> dict[str, Any]:
        event = {"eventType": event_type, "timestamp": now_timestamp(), **payload}
        self.recent.append(event)
        wanting = [s for s in self._subscribers if s.wants(event_type)]
        if wanting:
            frame = sse_frame(event)
            for subscription in wanting:
                if not subscription.offer(frame):
                    self._subscribers.discard(subscription)
                    log.warning("an event stream subscriber fell too far behind; its stream was ended")
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed on %s", event_type)
        return event

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener` with every event published from now on (it must not block: queue and return)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def subscribe(self, event_types: Collection[str] = ()) -> Subscription:
        """A new stream of the events of `event_types` (every event when empty)."""
        subscription = Subscription(event_types)
        self._subscribers.add(subscription)
        return subscription

    def close_all(self) -> None:
        """End every stream (this instance stopped leading: clients reconnect and are sent to the new leader)."""
        for subscription in list(self._subscribers):
            subscription.end()
        self._subscribers.clear()

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
