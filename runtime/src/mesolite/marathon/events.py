"""The event bus behind /v2/events: every event gets `eventType` and `timestamp`; subscribers get a queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from mesolite.marathon.timestamps import now_timestamp

log = logging.getLogger(__name__)
SUBSCRIBER_BACKLOG = 1000
END_OF_STREAM: dict[str, Any] = {}  # put in subscribers' queues to end their streams


class EventBus:
    def __init__(self, history: int = 200) -> None:
        self._subscribers: set[asyncio.Queue] = set()
        self.recent: deque[dict[str, Any]] = deque(maxlen=history)  # for tests and /metrics

    def publish(self, event_type: str, **payload: Any) -> dict[str, Any]:
        event = {"eventType": event_type, "timestamp": now_timestamp(), **payload}
        self.recent.append(event)
        for queue in list(self._subscribers):
            if queue.full():
                # A subscriber that does not read loses its oldest events rather than stalling everyone.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)
        return event

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        return queue

    def close_all(self) -> None:
        """End every stream (this instance stopped leading: clients reconnect and are sent to the new leader)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueEmpty):
                while queue.full():
                    queue.get_nowait()
            queue.put_nowait(END_OF_STREAM)

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
