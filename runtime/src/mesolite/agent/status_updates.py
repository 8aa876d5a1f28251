"""Reliable status updates: every update is re-sent until its framework acknowledges it, in order per task.

Each task has one stream. Only the oldest unacknowledged update of a stream is in flight; the next
is sent once the master forwards the framework's acknowledgement (ACKNOWLEDGE with its uuid). As in
Mesos, every send carries `latest_state`, the newest state of the task, so that the master knows the
task's real state while a framework has not acknowledged an older update (after a scheduler failover). The
stream is checkpointed in the run's `updates.jsonl`: `{"update": StatusUpdate, "events_offset": n}`
for each update and `{"ack": uuid}` for each acknowledgement, so a restarted agent re-sends exactly
what was not acknowledged. Retries back off from `retry_interval` up to `MAX_RETRY_INTERVAL`; a new
connection to a (new) master re-sends every stream's head at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mesolite.agent.checkpoint import append_json_line, read_json_lines
from mesolite.protocol.v1 import is_terminal

log = logging.getLogger(__name__)

MAX_RETRY_INTERVAL = 600.0  # Mesos's STATUS_UPDATE_RETRY_INTERVAL_MAX: 10 minutes
CONCURRENT_SENDS = 16

StreamKey = tuple[str, str]  # (framework id, task id)


@dataclass
class UpdateStream:
    """The status updates of one task."""

    framework_id: str
    task_id: str
    path: Path | None  # updates.jsonl; None for updates that need no checkpoint (e.g. about unknown tasks)
    pending: deque[dict] = field(default_factory=deque)  # unacknowledged StatusUpdates, oldest first
    history: list[dict] = field(default_factory=list)  # every TaskStatus of the stream, for /state
    events_offset: int = 0  # how far into events.jsonl updates were made
    interval: float = 0.0
    next_attempt: float = 0.0
    in_flight: bool = False
    dropped: bool = False  # the framework is gone: keep the record, send nothing

    @property
    def key(self) -> StreamKey:
        return (self.framework_id, self.task_id)

    @property
    def head_uuid(self) -> str | None:
        return self.pending[0]["status"].get("uuid") if self.pending else None

    @property
    def latest_state(self) -> str | None:
        return self.history[-1]["state"] if self.history else None


def read_stream(framework_id: str, task_id: str, path: Path) -> UpdateStream:
    """A stream as checkpointed in `updates.jsonl`."""
    stream = UpdateStream(framework_id, task_id, path)
    for record, _end in read_json_lines(path):
        if "update" in record:
            stream.pending.append(record["update"])
            stream.history.append(record["update"]["status"])
            stream.events_offset = max(stream.events_offset, int(record.get("events_offset", 0)))
        elif "ack" in record:
            for index, update in enumerate(stream.pending):
                if update["status"].get("uuid") == record["ack"]:
                    del stream.pending[index]
                    break
        if record.get("dropped"):
            stream.dropped = True
    return stream


class StatusUpdateManager:
    """Holds every task's stream and sends their heads through `send` (True when the master took it)."""

    def __init__(
        self,
        send: Callable[[dict], Awaitable[bool]],
        retry_interval: float = 10.0,
        on_stream_done: Callable[[UpdateStream], None] | None = None,
    ):
        self._send = send
        self.retry_interval = retry_interval
        self._on_stream_done = on_stream_done
        self.streams: dict[StreamKey, UpdateStream] = {}
        self.connected = False
        self._wakeup = asyncio.Event()
        self._sending = asyncio.Semaphore(CONCURRENT_SENDS)
        self._tasks: set[asyncio.Task] = set()
        self.sent = 0
        self.acknowledged = 0

    def add_stream(self, stream: UpdateStream) -> UpdateStream:
        self.streams[stream.key] = stream
        if stream.pending:
            self._due_now(stream)
        return stream

    def stream(self, framework_id: str, task_id: str) -> UpdateStream | None:
        return self.streams.get((framework_id, task_id))

    def add(self, stream: UpdateStream, update: dict, events_offset: int | None = None) -> None:
        """Checkpoint a new update and queue it behind the stream's unacknowledged ones."""
        if events_offset is not None:
            stream.events_offset = events_offset
        if stream.path is not None:
            append_json_line(stream.path, {"update": update, "events_offset": stream.events_offset})
        stream.history.append(update["status"])
        if stream.dropped:
            self._record_ack(stream, update["status"].get("uuid"), dropped=True)
            self._finish_if_done(stream)
            return
        stream.pending.append(update)
        if len(stream.pending) == 1:
            self._due_now(stream)

    def acknowledge(self, framework_id: str, task_id: str, uuid: str) -> bool:
        stream = self.streams.get((framework_id, task_id))
        if stream is None or stream.head_uuid != uuid:
            log.info(
                "ignoring acknowledgement %s for task %s of framework %s: not the pending update",
                uuid,
                task_id,
                framework_id,
            )
            return False
        self._record_ack(stream, uuid)
        stream.pending.popleft()
        self.acknowledged += 1
        if stream.pending:
            self._due_now(stream)
        self._finish_if_done(stream)
        return True

    def drop_framework(self, framework_id: str) -> None:
        """The framework is gone: its unacknowledged updates will never be acknowledged."""
        for stream in [s for s in self.streams.values() if s.framework_id == framework_id]:
            stream.dropped = True
            while stream.pending:
                self._record_ack(stream, stream.pending.popleft()["status"].get("uuid"), dropped=True)
            self._finish_if_done(stream)

    def set_connected(self, connected: bool) -> None:
        """On (re)connection every stream's head goes out at once, with the back-off reset."""
        self.connected = connected
        if connected:
            for stream in self.streams.values():
                if stream.pending:
                    self._due_now(stream)

    def resume(self, framework_id: str) -> None:
        """The framework subscribed again (a new scheduler instance): re-send its streams' heads now, with the
        back-off reset, instead of at their next retry (Mesos resumes the updates on UpdateFrameworkMessage)."""
        for stream in self.streams.values():
            if stream.framework_id == framework_id and stream.pending and not stream.dropped:
                self._due_now(stream)

    def pending_count(self) -> int:
        return sum(len(stream.pending) for stream in self.streams.values())

    async def run(self) -> None:
        """Send due heads forever (cancel to stop)."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
                self._wakeup.clear()
                if not self.connected:
                    continue
                now = time.monotonic()
                for stream in list(self.streams.values()):
                    if stream.pending and not stream.in_flight and stream.next_attempt <= now:
                        stream.in_flight = True
                        task = asyncio.create_task(self._send_head(stream))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
        finally:
            for task in self._tasks:
                task.cancel()

    # internals

    def _due_now(self, stream: UpdateStream) -> None:
        stream.interval = self.retry_interval
        stream.next_attempt = time.monotonic()
        self._wakeup.set()

    async def _send_head(self, stream: UpdateStream) -> None:
        try:
            update = stream.pending[0]
            message = {**update, "latest_state": stream.latest_state or update["status"]["state"]}
            async with self._sending:
                accepted = await self._send(message)
            if accepted:
                self.sent += 1
            # Sent or not, the next attempt waits for the interval: the acknowledgement cancels it.
            if stream.pending and stream.pending[0] is update:
                stream.next_attempt = time.monotonic() + stream.interval
                stream.interval = min(stream.interval * 2, MAX_RETRY_INTERVAL)
                log.debug(
                    "task %s: %s sent (%s), next retry in %.0fs",
                    stream.task_id,
                    update["status"]["state"],
                    "accepted" if accepted else "not accepted",
                    stream.next_attempt - time.monotonic(),
                )
        except Exception:
            log.exception("sending a status update of task %s failed", stream.task_id)
            stream.next_attempt = time.monotonic() + stream.interval
        finally:
            stream.in_flight = False

    def _record_ack(self, stream: UpdateStream, uuid: str | None, dropped: bool = False) -> None:
        if stream.path is not None:
            append_json_line(stream.path, {"ack": uuid, **({"dropped": True} if dropped else {})})

    def _finish_if_done(self, stream: UpdateStream) -> None:
        if not stream.pending and stream.latest_state and is_terminal(stream.latest_state):
            self.streams.pop(stream.key, None)
            if self._on_stream_done is not None:
                self._on_stream_done(stream)
