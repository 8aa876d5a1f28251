"""HTTP routes that serve the web UIs and the master's sandbox proxy.

Both UIs are static pages that read the service's own public JSON API from the browser, so the only
server-side logic here is serving files safely and, for the master, proxying an agent's `/files` API:
the browser talks to the master alone and never needs a route to an agent.

The proxy is on the master's own origin, so what an agent answers must never be able to act as the master's
page: answers are re-encoded by the master (JSON it parsed, or plain text), with types the master chooses and
`nosniff`, never the agent's content type. It reaches only agents the master's `agent_address` names (registered
and connected), over https when the master has a client TLS context, and forwards the caller's `Authorization`
so that an agent requiring credentials sees the same principal the master did.
"""

from __future__ import annotations

import enum
import inspect
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

STATIC_ROOT = Path(__file__).parent / "static"

# Everything the pages use comes from the serving process itself; the policy makes the browser refuse
# anything else, so a stray external reference fails loudly in the tests instead of silently at a site
# without internet access.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Explicit types: a host's /etc/mime.types must not decide whether a browser runs our modules.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The largest slice of a sandbox file one proxied read may ask an agent for.
MAX_READ_LENGTH = 1024 * 1024

AgentAddress = Callable[[str], str | Awaitable[str | None] | None]
LeaderUrl = Callable[[], str | None]
# (request, framework id, executor id, the framework's user as the agent reports it) -> may the caller read it?
SandboxAccess = Callable[[web.Request, str, str, str], bool]

# What the proxy answers with: always these types, whatever the agent said.
PROXY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
TEXT_TYPE = "text/plain"


class UiRoute(enum.Enum):
    """The kind of a UI route, for the service's authentication: pages are open, data calls are not."""

    PAGE = "page"  # the page itself and its static files: nothing in them is secret
    DATA = "data"  # what the page fetches: the sandbox proxy


_agent_address_key = web.AppKey("mesolite_ui_agent_address", object)
_agent_ssl_key = web.AppKey("mesolite_ui_agent_ssl", object)
_sandbox_access_key = web.AppKey("mesolite_ui_sandbox_access", object)
_agent_timeout_key = web.AppKey("mesolite_ui_agent_timeout", float)
_client_session_key = web.AppKey("mesolite_ui_client_session", aiohttp.ClientSession)


def add_master_ui(
    app: web.Application,
    *,
    agent_address: AgentAddress,
    leader_url: LeaderUrl | None = None,
    agent_timeout: float = 10.0,
    agent_ssl_context: ssl.SSLContext | None = None,
    may_access_sandbox: SandboxAccess | None = None,
) -> dict[web.AbstractResource, UiRoute]:
    """Serve the master UI at `/` and the sandbox proxy under `/ui/api/agents/{agent_id}/`; answers the kind of
    every route added (for the master's authentication).

    `agent_address(agent_id)` (plain or async) answers the agent's "host:port" from the master's
    registry, or None for an agent the master does not know. `leader_url()` answers the base URL of the
    leading master (e.g. "http://10.0.0.2:5050") when another master leads, and None when this one
    leads or no leader is known: the page of a non-leading master then redirects to the leader's.
    `agent_ssl_context`: reach agents over https, verifying them with it. `may_access_sandbox`: the
    `access_sandboxes` decision (None: everyone may); with it, reads are limited to sandbox directories.
    """
    routes = dict.fromkeys(_add_pages(app, "master", leader_url), UiRoute.PAGE)
    app[_agent_address_key] = agent_address
    app[_agent_timeout_key] = agent_timeout
    app[_agent_ssl_key] = agent_ssl_context
    app[_sandbox_access_key] = may_access_sandbox
    app.cleanup_ctx.append(_client_session)
    for path, handler in (
        ("/ui/api/agents/{agent_id}/sandbox", _sandbox_directory),
        ("/ui/api/agents/{agent_id}/files/read", _proxy_files_read),
        ("/ui/api/agents/{agent_id}/files/browse", _proxy_files_browse),
    ):
        routes[app.router.add_get(path, handler).resource] = UiRoute.DATA
    return routes


def add_marathon_ui(app: web.Application) -> None:
    """Serve the Marathon UI at `/`; it talks to the /v2 API of the same instance (which proxies to the leader)."""
    _add_pages(app, "marathon", None)


# ---------------------------------------------------------------------------------------------- pages


def _add_pages(app: web.Application, ui_name: str, leader_url: LeaderUrl | None) -> list[web.AbstractResource]:
    index = STATIC_ROOT / ui_name / "index.html"

    async def serve_index(request: web.Request) -> web.StreamResponse:
        leader = leader_url() if leader_url is not None else None
        if leader:
            raise web.HTTPTemporaryRedirect(leader.rstrip("/") + "/")
        return web.FileResponse(index, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    async def redirect_to_index(request: web.Request) -> web.StreamResponse:
        # Marathon's own UI lived at /ui/: old bookmarks keep working.
        raise web.HTTPFound("/")

    return [
        app.router.add_get("/", serve_index).resource,
        app.router.add_get("/ui", redirect_to_index).resource,
        app.router.add_get("/ui/", redirect_to_index).resource,
        app.router.add_get("/ui/static/{path:.+}", _serve_static).resource,
    ]


async def _serve_static(request: web.Request) -> web.StreamResponse:
    relative = request.match_info["path"]
    path = (STATIC_ROOT / relative).resolve()
    if not path.is_relative_to(STATIC_ROOT.resolve()) or not path.is_file() or path.suffix not in CONTENT_TYPES:
        raise web.HTTPNotFound(text=f"no UI file {relative}")
    # no-cache means "revalidate": the browser keeps its copy but an upgraded package is seen at once.
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "Content-Type": CONTENT_TYPES[path.suffix]}
    return web.FileResponse(path, headers=headers)


# ------------------------------------------------------------------------------------- sandbox proxy


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=app[_agent_timeout_key])
    context = app.get(_agent_ssl_key)
    connector = aiohttp.TCPConnector(ssl=context) if context is not None else None
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        app[_client_session_key] = session
        yield


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=PROXY_HEADERS)


async def _locate_agent(request: web.Request) -> str:
    agent_id = request.match_info["agent_id"]
    address = request.app[_agent_address_key](agent_id)
    if inspect.isawaitable(address):
        address = await address
    if not address:
        raise _HttpError(404, f"no agent with id '{agent_id}' is registered with this master")
    return address


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _call_agent(request: web.Request, path: str, params: dict[str, str]) -> tuple[int, bytes, str]:
    """GET `path` on the agent named in the URL; answers (status, body, content type)."""
    address = await _locate_agent(request)
    agent_id = request.match_info["agent_id"]
    scheme = "https" if request.app.get(_agent_ssl_key) is not None else "http"
    url = f"{scheme}://{address}{path}"
    # The caller's credentials, for an agent that requires them (the master authenticated the same header).
    headers = {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}
    session = request.app[_client_session_key]
    try:
        async with session.get(url, params=params, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            return response.status, body, response.content_type
    except TimeoutError as error:
        raise _HttpError(504, f"agent {agent_id} at {address} did not answer {path} in time") from error
    except aiohttp.ClientError as error:
        raise _HttpError(502, f"agent {agent_id} at {address} could not be reached: {error}") from error


def _relay(status: int, body: bytes, what: str) -> web.Response:
    """An agent's answer, re-encoded by the master: JSON it could parse (200), else plain text (errors).

    Never the agent's own content type: an agent that answered HTML would otherwise be a page of the master's
    origin."""
    if status != 200:
        text = body.decode("utf-8", errors="replace")
        return web.Response(status=status, text=text, content_type=TEXT_TYPE, charset="utf-8", headers=PROXY_HEADERS)
    try:
        document = json.loads(body)
    except ValueError:
        return _error(502, f"the agent answered {what} with something that is not JSON")
    return web.json_response(document, headers=PROXY_HEADERS)


def _within(path: str, directory: str) -> bool:
    path, directory = os.path.normpath(path), os.path.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


async def _authorize_path(request: web.Request, path: str) -> None:
    """With `access_sandboxes` in force: `path` must lie in a sandbox the caller may access (403 otherwise).
    The agent's /state says which executor's sandbox holds it."""
    may_access = request.app.get(_sandbox_access_key)
    if may_access is None:
        return
    status, body, _content_type = await _call_agent(request, "/state", {})
    if status != 200:
        raise _HttpError(502 if status not in (401, 403) else status, f"agent answered {status} to /state")
    try:
        state = json.loads(body)
    except ValueError:
        raise _HttpError(502, "agent answered /state with something that is not JSON") from None
    for framework in [*state.get("frameworks", []), *state.get("completed_frameworks", [])]:
        for executor in [*framework.get("executors", []), *framework.get("completed_executors", [])]:
            directory = executor.get("directory")
            if isinstance(directory, str) and directory and _within(path, directory):
                if may_access(request, framework.get("id", ""), executor.get("id", ""), framework.get("user", "")):
                    return
                raise _HttpError(403, f"Not authorized to access the sandbox holding '{path}' (access_sandboxes)")
    raise _HttpError(403, f"'{path}' is not in a sandbox this master can authorize access to")


def _proxy_errors(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _HttpError as error:
            return _error(error.status, error.message)

    return wrapper


@_proxy_errors
async def _proxy_files_read(request: web.Request) -> web.StreamResponse:
    """The agent's `/files/read` (Mesos format: {"data", "offset"}), with the slice length capped."""
    query = request.query
    if "path" not in query:
        return _error(400, "query parameter 'path' is required")
    params = {"path": query["path"]}
    for name in ("offset", "length"):
        if name in query:
            try:
                params[name] = str(int(query[name]))
            except ValueError:
                return _error(400, f"query parameter '{name}' must be an integer, got '{query[name]}'")
    params["length"] = str(min(int(params.get("length", MAX_READ_LENGTH)), MAX_READ_LENGTH))
    await _authorize_path(request, params["path"])
    status, body, _content_type = await _call_agent(request, "/files/read", params)
    return _relay(status, body, "/files/read")


@_proxy_errors
async def _proxy_files_browse(request: web.Request) -> web.StreamResponse:
    """The agent's `/files/browse` (Mesos format: a list of file entries)."""
    if "path" not in request.query:
        return _error(400, "query parameter 'path' is required")
    await _authorize_path(request, request.query["path"])
    status, body, _content_type = await _call_agent(request, "/files/browse", {"path": request.query["path"]})
    return _relay(status, body, "/files/browse")


@_proxy_errors
async def _sandbox_directory(request: web.Request) -> web.StreamResponse:
    """Find a task's sandbox directory in the agent's `/state`, the way the Mesos UI does.

    Query: framework_id, task_id and optionally executor_id (empty for command tasks, whose executor
    carries the task's id). Answers {"directory": path} or 404 with the reason.
    """
    framework_id = request.query.get("framework_id", "")
    task_id = request.query.get("task_id", "")
    executor_id = request.query.get("executor_id", "")
    if not framework_id or not task_id:
        return _error(400, "query parameters 'framework_id' and 'task_id' are required")
    status, body, _content_type = await _call_agent(request, "/state", {})
    if status != 200:
        return _error(502, f"agent answered {status} to /state")
    try:
        state = json.loads(body)
    except ValueError:
        return _error(502, "agent answered /state with something that is not JSON")
    directory = find_sandbox_directory(state, framework_id, executor_id, task_id)
    if directory is None:
        reason = f"agent no longer knows the sandbox of task '{task_id}' (it may have been garbage collected)"
        return _error(404, reason)
    may_access = request.app.get(_sandbox_access_key)
    if may_access is not None:
        frameworks = state.get("frameworks", [])
        user = next((item.get("user", "") for item in frameworks if item.get("id") == framework_id), "")
        if not may_access(request, framework_id, executor_id or task_id, user):
            return _error(403, f"Not authorized to access the sandbox of task '{task_id}' (access_sandboxes)")
    return web.json_response({"directory": directory}, headers=PROXY_HEADERS)


def find_sandbox_directory(agent_state: dict, framework_id: str, executor_id: str, task_id: str) -> str | None:
    """The `directory` of the executor that ran `task_id`, from an agent's /state (Mesos format).

    The newest run wins: live executors are looked at before completed ones.
    """
    frameworks = [*agent_state.get("frameworks", []), *agent_state.get("completed_frameworks", [])]
    for framework in frameworks:
        if framework.get("id") != framework_id:
            continue
        for executor in [*framework.get("executors", []), *framework.get("completed_executors", [])]:
            task_ids = {
                task.get("id") for key in ("tasks", "queued_tasks", "completed_tasks") for task in executor.get(key, [])
            }
            if executor.get("id") == (executor_id or task_id) or task_id in task_ids:
                return executor.get("directory")
    return None
