"""The agent's HTTP routes (port 5051): translation between the wire and the agent, nothing more."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from mesolite import MESOS_COMPATIBLE_VERSION, __version__
from mesolite.agent import state
from mesolite.agent.files import FilesError, SandboxFiles

if TYPE_CHECKING:
    from mesolite.agent.agent import Agent

DOWNLOAD_CHUNK_BYTES = 256 * 1024


def json_response(body, status: int = 200) -> web.Response:
    # CORS: the master's UI (another origin) reads sandboxes and state straight from agents, as Mesos's does.
    return web.json_response(body, status=status, headers={"Access-Control-Allow-Origin": "*"})


def create_app(agent: Agent) -> web.Application:
    def files() -> SandboxFiles:
        return SandboxFiles(agent.work.root, agent.agent_id)

    async def get_state(_request: web.Request) -> web.Response:
        return json_response(state.state(agent))

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
            return json_response(await asyncio.to_thread(files().browse, request.query.get("path")))
        except FilesError as error:
            return files_error(error)

    async def read(request: web.Request) -> web.Response:
        query = request.query
        try:
            body = await asyncio.to_thread(files().read, query.get("path"), query.get("offset"), query.get("length"))
        except FilesError as error:
            return files_error(error)
        return json_response(body)

    async def download(request: web.Request) -> web.StreamResponse:
        try:
            descriptor, size, name = await asyncio.to_thread(files().download, request.query.get("path"))
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

    app = web.Application()
    for prefix in ("", "/slave(1)"):
        app.router.add_get(f"{prefix}/state", get_state)
        app.router.add_get(f"{prefix}/state.json", get_state)
        app.router.add_get(f"{prefix}/health", get_health)
    app.router.add_get("/metrics/snapshot", get_metrics)
    app.router.add_get("/version", get_version)
    app.router.add_get("/files/browse", browse)
    app.router.add_get("/files/browse.json", browse)
    app.router.add_get("/files/read", read)
    app.router.add_get("/files/read.json", read)
    app.router.add_get("/files/download", download)
    app.router.add_get("/files/download.json", download)
    return app
