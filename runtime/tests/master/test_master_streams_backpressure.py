"""A subscriber that never reads must not grow the master's memory without bound: its stream is closed.

One test with a real master and a raw socket that subscribes and then never reads while RECONCILEs of many
tasks are sent; unit tests of `EventStream`'s bound with a response that never drains.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp
import pytest
from master_helpers import FakeAgent, get_json, start_master

from mesolite.master.streams import EventStream

# Unknown task ids per RECONCILE: each is answered with its own TASK_LOST update (~300 bytes of stream).
TASKS_PER_RECONCILE = 20_000
RECONCILES = 40  # ~250 MB of events in all: far beyond the bound of one stream


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def subscribe_without_reading(port: int, framework_id: str) -> tuple[socket.socket, str]:
    """SUBSCRIBE over a raw socket with a small receive buffer; read the response head only. The stream id."""
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    connection.connect(("127.0.0.1", port))
    body = json.dumps(
        {
            "type": "SUBSCRIBE",
            "framework_id": {"value": framework_id},
            "subscribe": {
                "framework_info": {
                    "user": "root",
                    "name": "never-reads",
                    "id": {"value": framework_id},
                    "failover_timeout": 3600,  # kept while disconnected: it may come back
                }
            },
        }
    ).encode()
    head = (
        f"POST /api/v1/scheduler HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/recordio\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection.sendall(head + body)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(1)  # byte by byte: nothing of the stream itself is read
        assert chunk, "the master closed the connection before answering"
        received += chunk
    status_line, *header_lines = received.decode().split("\r\n")
    assert " 200 " in status_line, received
    headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
    return connection, headers["Mesos-Stream-Id"]


@pytest.mark.integration
async def test_a_subscriber_that_never_reads_is_disconnected_and_memory_stays_bounded(launcher):
    master = start_master(launcher, "--framework_heartbeat_interval=1secs")
    async with aiohttp.ClientSession() as http:
        agent = FakeAgent(http, master.url())
        await agent.subscribe()
        connection, stream_id = await asyncio.to_thread(subscribe_without_reading, master.port, "never-reads-0000")
        baseline = rss_bytes(master.process.pid)
        tasks = [{"task_id": {"value": f"unknown-task-{index:06d}"}} for index in range(TASKS_PER_RECONCILE)]
        call = json.dumps(
            {"type": "RECONCILE", "framework_id": {"value": "never-reads-0000"}, "reconcile": {"tasks": tasks}}
        )
        headers = {"Content-Type": "application/json", "Mesos-Stream-Id": stream_id}
        statuses = []
        peak = baseline
        for _ in range(RECONCILES):
            async with http.post(master.url("/api/v1/scheduler"), data=call, headers=headers) as response:
                statuses.append(response.status)
            peak = max(peak, rss_bytes(master.process.pid))
            if response.status != 202:
                break
        # The stream was closed: later calls are refused (the framework must subscribe again)...
        assert statuses[0] == 202 and statuses[-1] == 403, statuses
        state = await get_json(http, master.url("/master/frameworks"))
        assert [framework["connected"] for framework in state["frameworks"]] == [False]
        # ...and the master's memory grew by the bounded queue and its transient copies, not by every event.
        print(f"master RSS: {baseline / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB at most; calls: {statuses}")
        assert peak - baseline < 150 * 1024 * 1024, (baseline, peak, statuses)
        # The master is fine: it still answers, and the agent is still connected.
        slaves = await get_json(http, master.url("/master/slaves"))
        assert [slave["active"] for slave in slaves["slaves"]] == [True]
        connection.close()
        await agent.disconnect()


class NeverDrained:
    """A response whose writes never complete (a peer that never reads), recording what reached it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(data)
        await asyncio.Event().wait()

    async def write_eof(self) -> None:
        pass


class RecordingTransport:
    def __init__(self) -> None:
        self.aborted = False

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


async def test_an_event_stream_is_bounded_by_bytes_and_aborts_its_connection():
    closed: list[EventStream] = []
    transport = RecordingTransport()
    stream = EventStream(NeverDrained(), "test", on_closed=closed.append, max_queued_bytes=10_000)  # type: ignore[arg-type]
    stream.start(transport)  # type: ignore[arg-type]
    event = {"type": "UPDATE", "update": {"status": {"message": "x" * 900}}}
    stream.send(event)
    await asyncio.sleep(0)  # the writer takes the first record and blocks on it
    sent = 1
    while not stream.closed:
        stream.send(event)
        sent += 1
        assert sent < 100, "the stream never overflowed"
    assert stream.overflowed and transport.aborted and closed == [stream]
    assert stream.queued_bytes == 0  # what waited was dropped
    stream.send(event)  # sending to a closed stream is a no-op
    assert stream.queued_bytes == 0


async def test_a_stream_that_keeps_up_is_not_disconnected():
    class Draining(NeverDrained):
        async def write(self, data: bytes) -> None:
            self.writes.append(data)

    response = Draining()
    stream = EventStream(response, "test", max_queued_bytes=10_000)  # type: ignore[arg-type]
    stream.start(RecordingTransport())  # type: ignore[arg-type]
    for _ in range(200):  # 200 KB in all, 1 KB at a time, with the writer running in between
        stream.send({"type": "UPDATE", "update": {"status": {"message": "x" * 900}}})
        await asyncio.sleep(0)
    stream.close()
    await asyncio.wait_for(stream.wait_closed(), 5)
    assert not stream.overflowed
    assert sum(len(chunk) for chunk in response.writes) > 200 * 900
