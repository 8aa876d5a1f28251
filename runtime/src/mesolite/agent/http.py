"""The agent's HTTP routes (port 5051): translation between the wire and the agent, nothing more."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from mesolite import MESOS_COMPATIBLE_VERSION, __version__
from mesolite.agent import state
from mesolite.agent.files import FilesError, SandboxFiles
from mesolite.agent.http_security import AgentSecurity
from mesolite.security.authentication import Access, add_route, principal_of

if TYPE_CHECKING:
    from mesolite.agent.agent import Agent

DOWNLOAD_CHUNK_BYTES = 256 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body, status: int = 200) -> web.Response:
    # CORS: the master's UI (another origin) reads sandboxes and state straight from agents, as Mesos's does.
    return web.json_response(body, status=status, headers={"Access-Control-Allow-Origin": "*"})


def create_app(agent: Agent, security: AgentSecurity | None = None) -> web.Application:
    """The agent's routes; `security` (default: open mode) authenticates them and guards the sandboxes."""
    security = security or AgentSecurity()

    def files(request: web.Request) -> SandboxFiles:
        sandboxes = SandboxFiles(agent.work.root, agent.agent_id)
        if not security.authorizer.is_open:
            # Who runs each sandbox is read here, on the event loop: the files API then runs in a thread.
            principal = principal_of(request)
            users = agent.sandbox_users()
            sandboxes.may_access = lambda ids: security.may_access_sandbox(principal, users.user_of(ids))
        return sandboxes

    async def get_state(request: web.Request) -> web.Response:
        if security.authorizer.is_open:
            return json_response(state.state(agent))
        principal = principal_of(request)
        return json_response(
            state.state(agent, lambda action, user: security.authorizer.allows(action, principal, user))
        )

    async def get_health(_request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def get_metrics(_request: web.Request) -> web.Response:
        return json_response(state.metrics(agent))

    async def get_version(_request: web.Request) -> web.Response:
        return json_response({"version": MESOS_COMPATIBLE_VERSION, "mesolite_version": __version__})

    def files_error(error: FilesError) -> web.Response:
        return web.Response(status=error.status, text=str(error), headers={"Access-Control-Allow-Origin": "*"})

    # The files API touches the sandbox's filesystem, which a task controls: all of it runs in a thread, so that
    # a slow disk or a file that blocks can cost that request only, never the agent's event loop.
    async def browse(request: web.Request) -> web.Response:
        try:
            return json_response(await asyncio.to_thread(files(request).browse, request.query.get("path")))
        except FilesError as error:
            return files_error(error)

    async def read(request: web.Request) -> web.Response:
        query = request.query
        try:
            sandboxes = files(request)
            body = await asyncio.to_thread(sandboxes.read, query.get("path"), query.get("offset"), query.get("length"))
        except FilesError as error:
            return files_error(error)
        return json_response(body)

    async def download(request: web.Request) -> web.StreamResponse:
        try:
            descriptor, size, name = await asyncio.to_thread(files(request).download, request.query.get("path"))
        except FilesError as error:
            return files_error(error)
        try:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Disposition": f'attachment; filename="{quote(name)}"',
                    "Access-Control-Allow-Origin": "*",
                }
            )
            response.content_length = size
            await response.prepare(request)
            sent = 0
            while sent < size:
                chunk = await asyncio.to_thread(os.pread, descriptor, min(DOWNLOAD_CHUNK_BYTES, size - sent), sent)
                if not chunk:
                    break  # truncated meanwhile: the client sees a short body, as with any file that shrinks
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
            return response
        finally:
            os.close(descriptor)

    routes: list[tuple[str, Handler, Access]] = []
    for prefix in ("", "/slave(1)"):
        routes += [
            (f"{prefix}/state", get_state, Access.READ_ONLY),
            (f"{prefix}/state.json", get_state, Access.READ_ONLY),
            (f"{prefix}/health", get_health, Access.OPEN),
        ]
    routes += [
        ("/metrics/snapshot", get_metrics, Access.READ_ONLY),
        ("/version", get_version, Access.OPEN),
        ("/files/browse", browse, Access.READ_ONLY),
        ("/files/browse.json", browse, Access.READ_ONLY),
        ("/files/read", read, Access.READ_ONLY),
        ("/files/read.json", read, Access.READ_ONLY),
        ("/files/download", download, Access.READ_ONLY),
        ("/files/download.json", download, Access.READ_ONLY),
    ]
    app = web.Application(middlewares=security.middlewares())
    for path, handler, access in routes:
        add_route(app, "GET", path, handler, access)
    return app
