"""/v2/eventSubscriptions: the HTTP callbacks events are POSTed to (`--event_subscriber http_callback` only).

POST and DELETE take `?callbackUrl=` and answer the `subscribe_event` / `unsubscribe_event`; GET lists
`{"callbackUrls": [...]}`. Without the flag, Marathon answers 400 saying how to enable them.
"""

from __future__ import annotations

from aiohttp import web

from mesolite.marathon.api.context import RequestRefused, marathon_of, service_of
from mesolite.marathon.callbacks import NOT_RUNNING_MESSAGE, HttpCallbacks


def callbacks_of(request: web.Request) -> HttpCallbacks:
    service = service_of(request)
    if not getattr(service, "http_callbacks_enabled", False):
        raise RequestRefused(400, NOT_RUNNING_MESSAGE)
    marathon_of(request)  # 503 while not leading (or loading)
    callbacks = service.callbacks
    if callbacks is None:
        raise RequestRefused(503, "the event callbacks are still loading; try again shortly")
    return callbacks


async def list_subscriptions(request: web.Request) -> web.Response:
    return web.json_response({"callbackUrls": callbacks_of(request).callback_urls})


async def subscribe(request: web.Request) -> web.Response:
    event = await callbacks_of(request).subscribe(request.query.get("callbackUrl"), request.remote or "")
    return web.json_response(event)


async def unsubscribe(request: web.Request) -> web.Response:
    event = await callbacks_of(request).unsubscribe(request.query.get("callbackUrl"), request.remote or "")
    return web.json_response(event)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/eventSubscriptions", list_subscriptions)
    router.add_post("/v2/eventSubscriptions", subscribe)
    router.add_delete("/v2/eventSubscriptions", unsubscribe)
