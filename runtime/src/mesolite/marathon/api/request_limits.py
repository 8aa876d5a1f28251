"""Limits on what a request may be, before any handler reads it: body size, URL length, and what a browser
may send: a state-changing request must come from a page of this very server (its `Origin`) and, under /v2,
declare JSON.

Together they close cross-site request forgery, which HTTP Basic alone invites (a browser attaches the
credentials it remembers to every request to the server, whichever site made the page that sends it):

- browsers send `Origin` with every POST, PUT, PATCH and DELETE, cross-site or not, so a request whose
  `Origin` is not this server's own scheme://host:port was sent by another site's page: 403;
- without asking the server first, a page can only send forms (`text/plain`, urlencoded, multipart), never
  `application/json`: 415 for those types.

Clients that are not browsers (curl, marathon-python) send no `Origin` and are not affected.
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

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


def _origin_key(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


def is_same_origin(origin: str, request: web.Request) -> bool:
    """Whether `Origin` names this server as the request reached it (scheme://host:port; default ports implied).

    A reverse proxy in front must then pass the Host header and terminate TLS as the origin the browser sees."""
    try:
        theirs = URL(origin.strip())
        ours = URL.build(scheme=request.scheme, authority=request.host)
    except ValueError:
        return False
    if not theirs.is_absolute() or theirs.path not in ("", "/") or theirs.query_string:
        return False  # "null" (a sandboxed or file page) and anything that is not an origin
    return _origin_key(theirs) == _origin_key(ours)


@web.middleware
async def state_changing_request_middleware(request: web.Request, handler) -> web.StreamResponse:
    """403 for a state-changing request from another origin; 415 for one under /v2 that declares a content type
    other than JSON.

    The routes that read a body also refuse one that declares no type at all (see `context.json_body`);
    a bodyless POST such as .../restart, or a DELETE from curl, may omit it.
    """
    if request.method not in STATE_CHANGING_METHODS:
        return await handler(request)
    origin = request.headers.get("Origin")
    if origin is not None and not is_same_origin(origin, request):
        return web.json_response(
            {
                "message": f"Origin '{origin[:200]}' is not this server ({request.scheme}://{request.host}): "
                "requests that change state are accepted from this server's own pages only"
            },
            status=403,
        )
    declared = request.headers.get("Content-Type")
    if request.path.startswith("/v2/") and declared is not None and not is_json_content_type(request):
        return web.json_response(
            {"message": f"Content-Type '{request.content_type}' is not supported: send application/json"},
            status=415,
        )
    return await handler(request)
