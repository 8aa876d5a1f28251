"""/v2/queue: launches that wait, each with why recent offers were declined; DELETE .../delay resets a backoff."""

from __future__ import annotations

from aiohttp import web

from mesolite.marathon.api.apps import app_id_of
from mesolite.marathon.api.context import marathon_of
from mesolite.marathon.api.views import queue_json


async def show_queue(request: web.Request) -> web.Response:
    embeds = {value for value in request.query.getall("embed", [])}
    return web.json_response(queue_json(marathon_of(request), last_unused_offers="lastUnusedOffers" in embeds))


async def reset_delay(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    app_id = app_id_of(request)
    marathon.app(app_id)
    marathon.queue.reset_delay(app_id)
    marathon.changed.set()
    return web.Response(status=204)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/queue", show_queue)
    router.add_delete("/v2/queue/{app_id:.+}/delay", reset_delay)
