"""A stand-in for the master's v1 scheduler API, for tests of its clients (SchedulerClient, mesos-execute).

A small aiohttp server that plays scripted parts: the real master cannot be made to misbehave on cue (a
non-leader that redirects, a leader that falls silent or refuses, events sent at a chosen moment).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from mesolite.protocol.recordio import encode

CallHook = Callable[[dict], Awaitable[web.Response | None]]


class ScriptedMaster:
    """A stand-in master: records every request, answers SUBSCRIBE with a stream it controls.

    Other calls are answered 202, unless `on_call(call)` (when set) answers something else first; the hook
    may also send events before it answers.
    """

    def __init__(self, heartbeat_interval: float = 15.0) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.subscribes: list[dict] = []
        self.calls: list[tuple[dict, str | None]] = []
        self.redirect_to: str | None = None
        self.refuse_with: int | None = None
        self.on_call: CallHook | None = None
        self.streams: list[web.StreamResponse] = []
        self.runner: web.AppRunner | None = None
        self.address = ""

    async def start(self) -> ScriptedMaster:
        app = web.Application()
        app.router.add_post("/api/v1/scheduler", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.address = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        call = await request.json()
        if call["type"] != "SUBSCRIBE":
            self.calls.append((call, request.headers.get("Mesos-Stream-Id")))
            answer = await self.on_call(call) if self.on_call is not None else None
            return answer or web.Response(status=202)
        self.subscribes.append(call)
        if self.redirect_to:
            return web.Response(status=307, headers={"Location": f"//{self.redirect_to}/api/v1/scheduler"})
        if self.refuse_with:
            return web.Response(status=self.refuse_with, text="framework_info.name is missing")
        framework_id = (call.get("framework_id") or {}).get("value") or "framework-1"
        stream = web.StreamResponse(headers={"Mesos-Stream-Id": f"stream-{len(self.subscribes)}"})
        stream.content_type = "application/json"
        stream.enable_chunked_encoding()
        await stream.prepare(request)
        self.streams.append(stream)
        await self.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "framework_id": {"value": framework_id},
                    "heartbeat_interval_seconds": self.heartbeat_interval,
                },
            },
            stream,
        )
        try:
            # The transport is None once the client has gone.
            while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            pass
        return stream

    async def send(self, event: dict, stream: web.StreamResponse | None = None) -> None:
        await (stream or self.streams[-1]).write(encode(json.dumps(event).encode()))

    async def close_streams(self) -> None:
        for stream in self.streams:
            stream.force_close()
            if stream._req is not None and stream._req.transport is not None:
                stream._req.transport.close()
