"""Limits on what a request to /v2 may be, before any handler reads it: body size, URL length, content type."""

from __future__ import annotations

from aiohttp import web

from mesolite.http_input import is_json_content_type
from mesolite.marathon.record_size import DEFAULT_MAX_NODE_SIZE

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def body_limit(max_node_size: int = DEFAULT_MAX_NODE_SIZE) -> int:
    """The largest request body (413 past it): a body this large could not be stored anyway.

    Four times `--zk_max_node_size` leaves room for pretty-printed JSON of a change that still fits
    (a stored record is compact JSON), and nothing near the 10 MB bodies that exhausted ZooKeeper.
    """
    return max(4 * max_node_size, 1024 * 1024)


def url_limit(max_node_size: int = DEFAULT_MAX_NODE_SIZE) -> int:
    """The longest request line: an app stored before ids were limited (a 300 kB id) must still be deletable."""
    return body_limit(max_node_size)


@web.middleware
async def json_content_type_middleware(request: web.Request, handler) -> web.StreamResponse:
    """415 for a state-changing /v2 request that declares a content type other than JSON.

    A browser sends a cross-site form (`text/plain`, urlencoded, multipart) without asking the server
    first; it never sends `application/json` that way. The routes that read a body also refuse one that
    declares no type at all (see `context.json_body`); a bodyless POST such as .../restart may omit it.
    """
    declared = request.headers.get("Content-Type")
    if (
        request.method in STATE_CHANGING_METHODS
        and request.path.startswith("/v2/")
        and declared is not None
        and not is_json_content_type(request)
    ):
        return web.json_response(
            {"message": f"Content-Type '{request.content_type}' is not supported: send application/json"},
            status=415,
        )
    return await handler(request)
