"""High availability: leader election in ZooKeeper, and the proxy that sends API requests to the leader.

Every instance adds an ephemeral sequential member node `<zk path>/leader/member_<n>` holding its
`host:port`; the lowest member leads. Non-leaders forward /v2 requests to the leader (adding
`X-Marathon-Via`) and answer /v2/events with a 302 to the leader; every response names the leader in
`X-Marathon-Leader`, as Marathon does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from kazoo.exceptions import NodeExistsError, NoNodeError

from mesolite.marathon.api.context import SERVICE
from mesolite.zookeeper.session import SessionState, ZooKeeperSession

log = logging.getLogger(__name__)
MEMBER_PREFIX = "member_"
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
}

Callback = Callable[[], Awaitable[None]]


class LeaderElection:
    def __init__(
        self, session: ZooKeeperSession, path: str, address: str, on_elected: Callback, on_defeated: Callback
    ) -> None:
        self.session = session
        self.path = path.rstrip("/")
        self.address = address
        self.on_elected = on_elected
        self.on_defeated = on_defeated
        self.leader_address: str | None = None
        self.is_leader = False
        self._member: str | None = None
        self._refresh_lock = asyncio.Lock()
        self._stopped = False

    async def start(self) -> None:
        self.session.add_state_listener(self._on_session_state)
        await self.session.run(self.session.client.ensure_path, self.path)
        await self._join()

    async def stop(self) -> None:
        self._stopped = True
        self.session.remove_state_listener(self._on_session_state)
        await self._leave()
        await self._set_leading(False)

    async def abdicate(self) -> None:
        """Step down: leave the election and join again at the back of the line."""
        await self._leave()
        await self._set_leading(False)
        await asyncio.sleep(0.5)  # let another member take over before we are back in line
        if not self._stopped:
            await self._join()

    async def _join(self) -> None:
        with contextlib.suppress(NodeExistsError):
            self._member = await self.session.run(
                self.session.client.create,
                f"{self.path}/{MEMBER_PREFIX}",
                self.address.encode(),
                ephemeral=True,
                sequence=True,
            )
        await self._refresh()

    async def _leave(self) -> None:
        member, self._member = self._member, None
        if member:
            with contextlib.suppress(NoNodeError, Exception):
                await self.session.run(self.session.client.delete, member)

    def _watch(self, _event: object) -> None:
        # Called in a kazoo thread: hand over to the event loop.
        self.session.call_soon(lambda: asyncio.ensure_future(self._refresh()))

    async def _refresh(self) -> None:
        async with self._refresh_lock:
            try:
                children = await self.session.run(self.session.client.get_children, self.path, watch=self._watch)
            except Exception as error:
                log.warning("cannot read the leader election at %s: %s", self.path, error)
                return
            members = sorted(c for c in children if c.startswith(MEMBER_PREFIX))
            leader = None
            for member in members:
                try:
                    data, _stat = await self.session.run(self.session.client.get, f"{self.path}/{member}")
                    leader = (member, data.decode())
                    break
                except NoNodeError:
                    continue
            self.leader_address = leader[1] if leader else None
            mine = self._member.rsplit("/", 1)[-1] if self._member else None
            await self._set_leading(leader is not None and leader[0] == mine)

    async def _set_leading(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        self.is_leader = leading
        if leading:
            log.info("elected leader (%s)", self.address)
            await self.on_elected()
        else:
            log.info("no longer the leader")
            await self.on_defeated()

    async def _on_session_state(self, state: SessionState) -> None:
        if state == SessionState.LOST:
            self._member = None
            await self._set_leading(False)
        elif state == SessionState.CONNECTED and self._member is None and not self._stopped:
            await self._join()


@web.middleware
async def leader_proxy_middleware(request: web.Request, handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    if not request.path.startswith("/v2/") or service.is_leader:
        return await handler(request)
    leader = service.leader_address
    if leader is None:
        return web.json_response({"message": "Could not determine the current leader"}, status=503)
    via = request.headers.get("X-Marathon-Via", "")
    if service.address in via:
        return web.json_response({"message": f"proxy loop detected (via {via})"}, status=502)
    if request.path == "/v2/events":
        raise web.HTTPFound(f"http://{leader}{request.path_qs}")
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
                request.method, f"http://{leader}{request.path_qs}", headers=headers, data=body, allow_redirects=False
            ) as upstream,
        ):
            payload = await upstream.read()
            response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            response_headers["X-Marathon-Via"] = hop
            return web.Response(status=upstream.status, body=payload, headers=response_headers)
    except (aiohttp.ClientError, TimeoutError) as error:
        return web.json_response({"message": f"the leader {leader} did not answer: {error}"}, status=502)


async def add_leader_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response names the leader."""
    service = request.app[SERVICE]
    if service.leader_address and "X-Marathon-Leader" not in response.headers:
        response.headers["X-Marathon-Leader"] = f"http://{service.leader_address}"
