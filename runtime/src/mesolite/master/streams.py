"""Outgoing RecordIO event streams (to a framework or an agent) over one chunked HTTP response.

Domain code calls `send(event)` without awaiting; a writer task drains the queue into the response,
so a slow reader never blocks the master. The stream ends when the peer goes away, when a write
fails, when the master closes it, or when the peer falls too far behind: what waits to be written is
bounded (`max_queued_bytes`), and a peer that does not read is disconnected rather than allowed to grow
the master's memory without bound (it re-subscribes, as with Mesos, and is told the current state then).
`wait_closed()` is what the request handler awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiohttp import web

from mesolite.protocol import recordio
from mesolite.protocol.v1 import encode_json

log = logging.getLogger(__name__)

_CLOSE = object()
# What may wait for a slow reader, per stream. A healthy framework reads as fast as events come; the largest
# bursts (the first offers of a big cluster, a RECONCILE of every task) are a few MiB.
MAX_QUEUED_BYTES = 32 * 1024 * 1024
# Queued records joined into one write.
MAX_BATCH_RECORDS = 512


class EventStream:
    def __init__(
        self,
        response: web.StreamResponse,
        name: str,
        on_closed: Callable[[EventStream], None] | None = None,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ):
        self.response = response
        self.name = name
        self.max_queued_bytes = max_queued_bytes
        self.overflowed = False
        self._queue: asyncio.Queue = asyncio.Queue()
        self._queued_bytes = 0
        self._closed = asyncio.Event()
        self._on_closed = on_closed
        self._writer: asyncio.Task | None = None
        self._transport: asyncio.BaseTransport | None = None

    def start(self, transport: asyncio.BaseTransport | None = None) -> None:
        """Begin writing (after the response is prepared); events sent before are kept in order. `transport`
        is the connection, dropped at once when the peer falls too far behind."""
        self._transport = transport
        if self._writer is None and not self.closed:
            self._writer = asyncio.create_task(self._write_loop(), name=f"stream-{self.name}")

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def queued_bytes(self) -> int:
        """Bytes sent and not yet handed to the connection."""
        return self._queued_bytes

    def set_close_callback(self, callback: Callable[[EventStream], None]) -> None:
        self._on_closed = callback

    def send(self, event: dict) -> None:
        if not self.closed:
            self._enqueue(recordio.encode(encode_json(event)))

    def send_encoded(self, record: bytes) -> None:
        """Send an event already JSON-encoded (the same bytes may go to many streams)."""
        if not self.closed:
            self._enqueue(recordio.encode(record))

    def close(self) -> None:
        """End the stream after what is queued has been written."""
        if not self.closed:
            self._queue.put_nowait(_CLOSE)

    def abort(self) -> None:
        """End the stream now, dropping what is queued (and the connection, if it is still there)."""
        if self._writer is not None:
            self._writer.cancel()
        self._drop_queue()
        if self._transport is not None and not self._transport.is_closing():
            # Not close(): that would wait to flush what a peer that does not read never takes.
            self._transport.abort()
        self._finish()

    async def wait_closed(self) -> None:
        try:
            await self._closed.wait()
        finally:
            # The handler was cancelled (the peer disconnected): the stream is over either way.
            if not self.closed:
                self.abort()

    def _enqueue(self, record: bytes) -> None:
        self._queued_bytes += len(record)
        if self._queued_bytes > self.max_queued_bytes:
            log.warning(
                "stream %s: the peer has not read %d bytes of events (limit %d): disconnecting it",
                self.name,
                self._queued_bytes,
                self.max_queued_bytes,
            )
            self.overflowed = True
            self.abort()
            return
        self._queue.put_nowait(record)

    def _taken(self, item: object) -> object:
        """`item`, just taken off the queue: its bytes no longer wait."""
        if item is not _CLOSE:
            self._queued_bytes -= len(item)  # type: ignore[arg-type]
        return item

    def _drop_queue(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queued_bytes = 0

    async def _write_loop(self) -> None:
        try:
            while True:
                item = self._taken(await self._queue.get())
                if item is _CLOSE:
                    with contextlib.suppress(Exception):
                        await self.response.write_eof()
                    return
                # Batch whatever else is queued into one write.
                chunks = [item]
                while not self._queue.empty() and len(chunks) < MAX_BATCH_RECORDS:
                    following = self._taken(self._queue.get_nowait())
                    if following is _CLOSE:
                        self._queue.put_nowait(_CLOSE)
                        break
                    chunks.append(following)
                await self.response.write(b"".join(chunks))  # type: ignore[arg-type]
        except (ConnectionError, RuntimeError, asyncio.CancelledError) as error:
            if not isinstance(error, asyncio.CancelledError):
                log.info("stream %s ended: %s", self.name, error)
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._on_closed is not None:
            callback, self._on_closed = self._on_closed, None
            try:
                callback(self)
            except Exception:
                log.exception("closing stream %s", self.name)
