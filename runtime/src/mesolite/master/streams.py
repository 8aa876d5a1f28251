"""Outgoing RecordIO event streams (to a framework or an agent) over one chunked HTTP response.

Domain code calls `send(event)` without awaiting; a writer task drains the queue into the response,
so a slow reader never blocks the master. The stream ends when the peer goes away, when a write
fails, or when the master closes it; `wait_closed()` is what the request handler awaits.
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


class EventStream:
    def __init__(self, response: web.StreamResponse, name: str, on_closed: Callable[[EventStream], None] | None = None):
        self.response = response
        self.name = name
        self._queue: asyncio.Queue = asyncio.Queue()
        self._closed = asyncio.Event()
        self._on_closed = on_closed
        self._writer: asyncio.Task | None = None

    def start(self) -> None:
        """Begin writing (after the response is prepared); events sent before are kept in order."""
        if self._writer is None and not self.closed:
            self._writer = asyncio.create_task(self._write_loop(), name=f"stream-{self.name}")

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def set_close_callback(self, callback: Callable[[EventStream], None]) -> None:
        self._on_closed = callback

    def send(self, event: dict) -> None:
        if not self.closed:
            self._queue.put_nowait(recordio.encode(encode_json(event)))

    def send_encoded(self, record: bytes) -> None:
        """Send an event already JSON-encoded (the same bytes may go to many streams)."""
        if not self.closed:
            self._queue.put_nowait(recordio.encode(record))

    def close(self) -> None:
        """End the stream after what is queued has been written."""
        if not self.closed:
            self._queue.put_nowait(_CLOSE)

    def abort(self) -> None:
        """End the stream now, dropping what is queued."""
        if self._writer is not None:
            self._writer.cancel()
        self._finish()

    async def wait_closed(self) -> None:
        try:
            await self._closed.wait()
        finally:
            # The handler was cancelled (the peer disconnected): the stream is over either way.
            if not self.closed:
                self.abort()

    async def _write_loop(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    with contextlib.suppress(Exception):
                        await self.response.write_eof()
                    return
                # Batch whatever else is queued into one write.
                chunks = [item]
                while not self._queue.empty() and len(chunks) < 512:
                    following = self._queue.get_nowait()
                    if following is _CLOSE:
                        self._queue.put_nowait(_CLOSE)
                        break
                    chunks.append(following)
                await self.response.write(b"".join(chunks))
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
