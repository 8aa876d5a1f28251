"""/v2/events: Server-Sent Events from the event bus, optionally filtered by `event_type`."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from mesolite.marathon.api.context import service_of
from mesolite.marathon.events import END_OF_STREAM

KEEPALIVE_SECONDS = 15


async def event_stream(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    bus = service.events
    wanted = {value for value in request.query.getall("event_type", []) if value}
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Connection": "keep-alive"}
    )
    await response.prepare(request)
    queue = bus.subscribe()
    try:
        attached = bus.publish("event_stream_attached", remoteAddress=request.remote or "")
        await _send(response, attached, wanted)
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b"\r\n")
                continue
            if event is END_OF_STREAM:
                break
            await _send(response, event, wanted)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        bus.unsubscribe(queue)
        with contextlib.suppress(Exception):
            bus.publish("event_stream_detached", remoteAddress=request.remote or "")
    return response


async def _send(response: web.StreamResponse, event: dict, wanted: set[str]) -> None:
    if wanted and event["eventType"] not in wanted:
        return
    await response.write(f"event: {event['eventType']}\ndata: {json.dumps(event)}\n\n".encode())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/events", event_stream)
