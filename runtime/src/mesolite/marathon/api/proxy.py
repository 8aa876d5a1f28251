"""The leader proxy: non-leaders forward /v2 requests to the leading Marathon, and every response names it.

Non-leaders forward /v2 requests to the leader (adding `X-Marathon-Via`) and answer /v2/events with a 302
to the leader; every response names the leader in `X-Marathon-Leader`, as Marathon's `LeaderProxyFilter`
does. While no leader is known (an election under way, or this instance's ZooKeeper connection is down)
/v2 answers 503. Who leads is the election's business (`mesolite.zookeeper.election`).

The caller's `Authorization` travels with the request (every instance has the same `--http_credentials`).
A leader that serves https only (it then advertises its https port) is reached over https, its certificate
checked against the cluster's CA (`LIBPROCESS_SSL_CA_FILE`). The `Origin` was checked by this instance
(`request_limits`) and is not forwarded: the leader would compare it with its own address.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from mesolite.marathon.api.context import SERVICE

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
    "origin",
}


@web.middleware
async def leader_proxy_middleware(request: web.Request, handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    if not request.path.startswith("/v2/") or service.is_leader:
        return await handler(request)
    leader = service.leader_address
    if leader is None:
        return web.json_response({"message": "Could not determine the current leader"}, status=503)
    if leader == service.address:
        # Named as leader but not leading (a term just ended, or starts): forwarding would come back here.
        return web.json_response({"message": "this instance is between terms of leadership; try again"}, status=503)
    via = request.headers.get("X-Marathon-Via", "")
    if service.address in via:
        return web.json_response({"message": f"proxy loop detected (via {via})"}, status=502)
    if request.path == "/v2/events":
        raise web.HTTPFound(f"{service.scheme}://{leader}{request.path_qs}")
    return await _proxy(request, service, leader, via)


async def _proxy(request: web.Request, service, leader: str, via: str) -> web.Response:
    hop = f"1.1 {service.address}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    headers["X-Marathon-Via"] = f"{via}, {hop}" if via else hop
    body = await request.read()
    timeout = aiohttp.ClientTimeout(total=30, connect=5)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
            session.request(
                request.method,
                f"{service.scheme}://{leader}{request.path_qs}",
                headers=headers,
                data=body,
                allow_redirects=False,
                ssl=service.client_ssl_context,  # used for https only
            ) as upstream,
        ):
            payload = await upstream.read()
            response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            response_headers["X-Marathon-Via"] = hop
            return web.Response(status=upstream.status, body=payload, headers=response_headers)
    except (aiohttp.ClientError, TimeoutError) as error:
        return web.json_response({"message": f"the leader {leader} did not answer: {error}"}, status=502)


async def add_leader_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response names the leader, except to a caller without valid credentials."""
    service = request.app[SERVICE]
    leader_url = service.leader_url()
    if leader_url and response.status != 401 and "X-Marathon-Leader" not in response.headers:
        response.headers["X-Marathon-Leader"] = leader_url
