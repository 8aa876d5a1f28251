"""The HTTP servers' common set-up (master, agent, Marathon): one listening site with the limits every server
facing untrusted clients needs.

- Request bodies: bounded by the application's `client_max_size` (413 past it, see `http_input`).
- Request heads: a connection must send a complete request head within `header_timeout` of connecting,
  or it is closed. aiohttp has no such timeout of its own (depending on its version, a connection that sends
  nothing, or part of a head a byte at a time, is kept for its keep-alive timeout or for ever): one such
  client per file descriptor starves the server. `HeadDeadline` wraps each connection's protocol to enforce it.
- Idle connections: between requests, a kept-alive connection may stay idle for `keepalive_timeout`; a
  partial head after a response counts as idle (aiohttp closes a connection still waiting for a complete
  request when its keep-alive timer fires).
- Request lines and header fields: aiohttp's limits (8190 bytes each; 400 past them).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = 20.0
KEEPALIVE_TIMEOUT_SECONDS = 75.0
HEAD_END = b"\r\n\r\n"


class HeadDeadline(asyncio.Protocol):
    """A connection's protocol (aiohttp's request handler) behind a deadline: the first request head must be
    complete within `timeout` seconds of connecting, else the connection is aborted.

    Only the first head is watched here: after a response, aiohttp's keep-alive timer closes a connection that
    has not delivered a complete next request in time."""

    def __init__(self, inner: asyncio.Protocol, timeout: float) -> None:
        self.inner = inner
        self.timeout = timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._tail = b""  # the last bytes received, in case the head's end is split between two reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._deadline = asyncio.get_running_loop().call_later(self.timeout, self._expired)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            seen = self._tail + data
            if HEAD_END in seen:
                self._cancel_deadline()
            else:
                self._tail = seen[-(len(HEAD_END) - 1) :]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._tail = b""

    def _expired(self) -> None:
        self._deadline = None
        if self._transport is not None and not self._transport.is_closing():
            peer = self._transport.get_extra_info("peername")
            log.info("closing a connection from %s: no complete request head within %.0fs", peer, self.timeout)
            self._transport.abort()


class _DeadlineFactory:
    """The runner's protocol factory (aiohttp's `Server`), each protocol it makes behind a `HeadDeadline`."""

    def __init__(self, server: web.Server, timeout: float) -> None:
        self._server = server
        self._timeout = timeout

    def __call__(self) -> HeadDeadline:
        return HeadDeadline(self._server(), self._timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class GuardedAppRunner(web.AppRunner):
    """An `AppRunner` whose sites accept connections through `HeadDeadline`."""

    def __init__(self, app: web.Application, *, header_timeout: float = HEADER_TIMEOUT_SECONDS, **kwargs: Any):
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout

    @property
    def server(self) -> web.Server | None:  # type: ignore[override]
        # Sites build their listener from this factory; the runner itself keeps using the real server.
        server = super().server
        return None if server is None else _DeadlineFactory(server, self.header_timeout)  # type: ignore[return-value]


async def start_http_server(
    app: web.Application,
    host: str | None,
    port: int,
    *,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
    keepalive_timeout: float = KEEPALIVE_TIMEOUT_SECONDS,
    backlog: int = 128,
    shutdown_timeout: float = 60.0,
    handler_cancellation: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Serve `app` on host:port with the limits above; `runner.cleanup()` stops it.

    `handler_cancellation`: cancel a handler when its client disconnects (event streams need it).
    `ssl_context`: serve TLS only (see `security/tls.py`); the head deadline then includes the handshake."""
    runner = GuardedAppRunner(
        app,
        header_timeout=header_timeout,
        keepalive_timeout=keepalive_timeout,
        shutdown_timeout=shutdown_timeout,
        handler_cancellation=handler_cancellation,
        access_log=None,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=backlog, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
