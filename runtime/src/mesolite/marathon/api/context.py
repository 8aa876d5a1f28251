"""What the HTTP handlers reach: the running service (its domain, leadership and configuration)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from mesolite.http_input import JsonInputError, read_json
from mesolite.marathon.record_size import DEFAULT_MAX_NODE_SIZE

if TYPE_CHECKING:
    from mesolite.marathon.marathon import Marathon
    from mesolite.marathon.service import MarathonService

SERVICE = web.AppKey("marathon_service", Any)


class NotLeading(Exception):
    """This instance cannot answer right now (not leading and no leader to proxy to, or still loading)."""


class RequestRefused(Exception):
    """The request cannot be taken as sent (400, 413, 415); `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


def max_node_size(request: web.Request) -> int:
    """`--zk_max_node_size`: the largest record (app, group, deployment) this Marathon stores."""
    return getattr(service_of(request).flags, "zk_max_node_size", DEFAULT_MAX_NODE_SIZE)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, sent as `application/json` (Marathon answers 415 otherwise).

    A JSON content type is what keeps a cross-site form (`text/plain`, urlencoded, multipart — the
    types a browser sends without asking the server first) from starting a task. Every other problem
    (invalid UTF-8, 10,000 nested brackets, a 400-digit integer) is a 400, a body over the limit a 413.
    """
    try:
        return await read_json(request, require_json_content_type=True)
    except JsonInputError as error:
        message = f"Invalid JSON: {error}" if error.status == 400 else str(error)
        raise RequestRefused(error.status, message) from None
