"""The shared HTTP server set-up: slow or silent clients are disconnected, idle keep-alive ends, bodies are bounded.

Real servers on loopback, raw sockets as clients (so that a test controls every byte and every pause).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from harness.processes import free_port
from mesolite.http_server import start_http_server

HEADER_TIMEOUT = 0.5
KEEPALIVE_TIMEOUT = 1.0


async def hello(_request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def echo_length(request: web.Request) -> web.Response:
    return web.Response(text=str(len(await request.read())))


async def slow(_request: web.Request) -> web.Response:
    await asyncio.sleep(3 * HEADER_TIMEOUT)
    return web.Response(text="late but fine")


@pytest.fixture
async def server():
    app = web.Application(client_max_size=1024)
    app.add_routes([web.get("/", hello), web.post("/echo", echo_length), web.get("/slow", slow)])
    port = free_port()
    runner = await start_http_server(
        app, "127.0.0.1", port, header_timeout=HEADER_TIMEOUT, keepalive_timeout=KEEPALIVE_TIMEOUT
    )
    yield port
    await runner.cleanup()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Read until the server closes the connection; how long that took (fails if it does not within `seconds`)."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while True:
            try:
                if not await reader.read(65536):
                    break
            except ConnectionResetError:
                break
    return time.monotonic() - started


async def test_a_connection_that_sends_nothing_is_closed(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    await closed_within(reader, 10 * HEADER_TIMEOUT)
    writer.close()


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    closed = asyncio.ensure_future(closed_within(reader, 10 * HEADER_TIMEOUT))
    for byte in head:
        if closed.done():
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0.05)
    await closed
    assert not closed.exception()
    writer.close()


async def test_a_prompt_request_is_served_and_an_idle_keepalive_connection_closed(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    await asyncio.sleep(HEADER_TIMEOUT / 2)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    response = await asyncio.wait_for(reader.readuntil(b"hello"), 5)
    assert response.startswith(b"HTTP/1.1 200")
    # The same connection serves a second request after more than the head timeout (keep-alive)...
    await asyncio.sleep(HEADER_TIMEOUT * 1.5)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"hello"), 5)).startswith(b"HTTP/1.1 200")
    # ...and is closed once idle for the keep-alive timeout.
    idle = await closed_within(reader, 10 * KEEPALIVE_TIMEOUT)
    assert idle >= KEEPALIVE_TIMEOUT * 0.9
    writer.close()


async def test_a_handler_may_take_longer_than_the_head_timeout(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"late but fine"), 10)).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_bodies_are_bounded(server):
    for size, status in ((1000, b"200"), (5000, b"413")):
        reader, writer = await asyncio.open_connection("127.0.0.1", server)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.split()[1] == status, line
        writer.close()
