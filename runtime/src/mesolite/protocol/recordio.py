"""RecordIO, the framing of Mesos's event streams: each record is `<length in bytes>\n<record>`."""

from __future__ import annotations

from collections.abc import AsyncIterator

# A record larger than this is a broken or hostile stream, not a real event.
MAX_RECORD_BYTES = 256 * 1024 * 1024


class RecordIOError(ValueError):
    """The byte stream is not valid RecordIO."""


def encode(record: bytes) -> bytes:
    return str(len(record)).encode() + b"\n" + record


class RecordIOReader:
    """Incremental decoder: `feed(chunk)` returns the records that chunk completed."""

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES):
        self._buffer = bytearray()
        self._expected: int | None = None
        self._max = max_record_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        records = []
        while True:
            if self._expected is None:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    if len(self._buffer) > 20:
                        raise RecordIOError(f"no record length in {bytes(self._buffer[:20])!r}...")
                    break
                header = bytes(self._buffer[:newline]).strip()
                if not header.isdigit():
                    raise RecordIOError(f"record length {header!r} is not a number")
                self._expected = int(header)
                if self._expected > self._max:
                    raise RecordIOError(f"record of {self._expected} bytes exceeds the {self._max} byte limit")
                del self._buffer[: newline + 1]
            if len(self._buffer) < self._expected:
                break
            records.append(bytes(self._buffer[: self._expected]))
            del self._buffer[: self._expected]
            self._expected = None
        return records

    @property
    def pending(self) -> bool:
        """True when a partial record is buffered (the stream ended mid-record if it closes now)."""
        return bool(self._buffer) or self._expected is not None


async def read_records(stream) -> AsyncIterator[bytes]:
    """Records from an aiohttp `StreamReader` (a response's `.content`) until the stream ends."""
    reader = RecordIOReader()
    while True:
        chunk = await stream.readany()
        if not chunk:
            if reader.pending:
                raise RecordIOError("the stream ended in the middle of a record")
            return
        for record in reader.feed(chunk):
            yield record
