"""What the HTTP handlers reach: the running service (its domain, leadership and configuration)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from mesolite.marathon.core import Marathon
    from mesolite.marathon.service import MarathonService

SERVICE = web.AppKey("marathon_service", Any)


class NotLeading(Exception):
    """This instance cannot answer right now (not leading and no leader to proxy to, or still loading)."""


def service_of(request: web.Request) -> MarathonService:
    return request.app[SERVICE]


def marathon_of(request: web.Request) -> Marathon:
    marathon = service_of(request).marathon
    if marathon is None:
        raise NotLeading("this instance is not the leader (or is still loading the state); try again shortly")
    return marathon


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("true", "1", "yes", "")


async def json_body(request: web.Request) -> Any:
    """The request's JSON; a `web.HTTPBadRequest` with Marathon's message for invalid JSON."""
    text = await request.text()
    try:
        return json.loads(text)
    except ValueError as error:
        raise web.HTTPBadRequest(
            text=json.dumps({"message": f"Invalid JSON: {error}"}), content_type="application/json"
        ) from None
