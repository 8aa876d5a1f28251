"""/v2/events: Server-Sent Events from the event bus, optionally filtered by `event_type`."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from mesolite.marathon.api.context import service_of

KEEPALIVE_SECONDS = 15


async def event_stream(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    bus = service.events
    wanted = {value for value in request.query.getall("event_type", []) if value}
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Connection": "keep-alive"}
    )
    await response.prepare(request)
    subscription = bus.subscribe(wanted)
    try:
        # Every stream, this one included, is told of the new subscriber.
        bus.publish("event_stream_attached", remoteAddress=request.remote or "")
        while True:
            try:
                frame = await asyncio.wait_for(subscription.next_frame(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b"\r\n")
                continue
            if frame is None:  # the bus ended the stream (no longer leading, or this client fell behind)
                break
            await response.write(frame)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        bus.unsubscribe(subscription)
        with contextlib.suppress(Exception):
            bus.publish("event_stream_detached", remoteAddress=request.remote or "")
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/events", event_stream)
