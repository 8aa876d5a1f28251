"""The master's HTTP routes: they translate between the wire and `Master` calls, nothing more.

Requests that need the leader are answered by a non-leading master with `307` and
`Location: //<leader host>:<port><path>` (Mesos's form), or `503` when no leader is known (or this
master is still recovering).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from mesolite.http_input import JsonInputError, decode_json
from mesolite.master import metrics, state, validation
from mesolite.master.maintenance import ACL_ACTIONS
from mesolite.master.master import Master
from mesolite.master.streams import EventStream
from mesolite.master.tasks import task_user
from mesolite.master.validation import CallError
from mesolite.security.authentication import Access, add_route, classify, principal_of
from mesolite.ui.routes import UiRoute, add_master_ui

if TYPE_CHECKING:
    from mesolite.master.service import MasterProcess


PROCESS_KEY = web.AppKey("mesolite_master_process", object)

# How long a client may take to send a request's body once its headers are in (a slow sender holds a handler).
BODY_READ_TIMEOUT_SECONDS = 30.0
# Calls that Mesos accepts and that have no effect here (no operations feedback).
NO_OP_CALLS = frozenset({"REQUEST", "RECONCILE_OPERATIONS"})
UNSUPPORTED_CALLS = frozenset({"ACKNOWLEDGE_OPERATION_STATUS", "UPDATE_FRAMEWORK"})

# The largest request body: an ACCEPT of thousands of tasks or a RECONCILE of 100,000 fits many times over.
MAX_BODY_BYTES = 16 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def process_of(request: web.Request) -> MasterProcess:
    return request.app[PROCESS_KEY]  # type: ignore[return-value]


def text_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


def refuse_for_descriptors(process: MasterProcess, kind: str) -> web.Response | None:
    """`503` with `Retry-After` when a new stream of `kind` would eat into the descriptor reserve (limits.py).

    The connection is closed with the answer: a refused client must not keep holding a descriptor."""
    refusal = process.descriptors.refuse_new_stream(kind)
    if refusal is None:
        return None
    response = text_error(503, refusal.message)
    response.headers["Retry-After"] = str(refusal.retry_after)
    response.force_close()
    return response


def leader_only(handler: Callable[[web.Request, Master], Awaitable[web.StreamResponse]]) -> Handler:
    """Run `handler` with the leading `Master`, or redirect to the leader / answer 503."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        process = process_of(request)
        master = process.master
        if master is None:
            return redirect_to_leader(process, request.path_qs)
        return await handler(request, master)

    return wrapped


def redirect_to_leader(process: MasterProcess, path: str) -> web.StreamResponse:
    leader, reason = process.redirect_target()
    if leader is None:
        return text_error(503, f"Service Unavailable: {reason}")
    address = leader.get("address") or {}
    host = address.get("hostname") or leader.get("hostname") or address.get("ip")
    port = address.get("port") or leader.get("port")
    raise web.HTTPTemporaryRedirect(f"//{host}:{port}{path}")


# ------------------------------------------------------------------------------- operator endpoints


async def health(_request: web.Request) -> web.Response:
    return web.Response(status=200)


async def version(_request: web.Request) -> web.Response:
    return web.json_response(state.build_info())


async def redirect(request: web.Request) -> web.StreamResponse:
    process = process_of(request)
    rest = request.match_info.get("rest", "")
    path = "/" + rest if rest else ""
    leader, reason = (process.info, "") if process.master is not None else process.redirect_target(include_self=True)
    if leader is None:
        return text_error(503, f"Service Unavailable: {reason}")
    address = leader.get("address") or {}
    host = address.get("hostname") or leader.get("hostname")
    raise web.HTTPTemporaryRedirect(f"//{host}:{address.get('port') or leader.get('port')}{path}")


def viewer_of(request: web.Request) -> state.Viewer:
    """The request's principal, and what the ACLs let it see (`view_frameworks`, `view_tasks`)."""
    return state.Viewer(process_of(request).security.authorizer, principal_of(request))


@leader_only
async def master_state(request: web.Request, master: Master) -> web.Response:
    process = process_of(request)
    view = state.master_state(master, process.info, process.flags, process.start_time, viewer_of(request))
    return json_response(view, request)


@leader_only
async def state_summary(request: web.Request, master: Master) -> web.Response:
    process = process_of(request)
    return json_response(state.state_summary(master, process.info, process.flags, viewer_of(request)), request)


@leader_only
async def frameworks(request: web.Request, master: Master) -> web.Response:
    return json_response(state.frameworks_json(master, request.query.get("framework_id"), viewer_of(request)), request)


@leader_only
async def slaves(request: web.Request, master: Master) -> web.Response:
    return json_response(state.slaves_json(master), request)


@leader_only
async def tasks(request: web.Request, master: Master) -> web.Response:
    query = request.query
    try:
        limit = int(query.get("limit", 100))
        offset = int(query.get("offset", 0))
    except ValueError:
        return text_error(400, "'limit' and 'offset' must be integers")
    order = query.get("order", "des")
    if order not in ("asc", "des"):
        return text_error(400, "'order' must be 'asc' or 'des'")
    view = state.tasks_json(
        master, limit, offset, order, query.get("framework_id"), query.get("task_id"), viewer_of(request)
    )
    return json_response(view, request)


@leader_only
async def teardown(request: web.Request, master: Master) -> web.Response:
    """Mesos's /teardown: POST `frameworkId=<id>` (form-encoded) removes that framework and kills its tasks.

    The `teardown_frameworks` ACL decides whether the request's principal may tear down frameworks of the
    framework's principal."""
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_SECONDS):
            form = await request.post()
    except TimeoutError:
        return text_error(408, f"The request body did not arrive within {BODY_READ_TIMEOUT_SECONDS:.0f}s")
    except ValueError as error:
        return text_error(400, f"Unable to parse the request body: {error}")
    framework_id = form.get("frameworkId")
    if not isinstance(framework_id, str) or not framework_id:
        return text_error(400, "Missing 'frameworkId' in the request body (form-encoded frameworkId=<id>)")
    framework = master.frameworks.get(framework_id)
    if framework is None:
        return text_error(400, "No framework found with specified ID")
    owner = framework.info.get("principal") or ""
    if not process_of(request).security.allows("teardown_frameworks", request, owner):
        return text_error(
            403, f"Not authorized to tear down framework {framework_id} of principal '{owner}' (teardown_frameworks)"
        )
    master.remove_framework(framework_id, f"torn down by the operator ({principal_of(request) or 'anonymous'})")
    return web.Response(status=200)


async def metrics_snapshot(request: web.Request) -> web.Response:
    process = process_of(request)
    return web.json_response(metrics.snapshot(process.master, process.start_time) | process.descriptors.metrics())


def json_response(body: dict, request: web.Request) -> web.Response:
    """JSON, or JSONP when `jsonp=<callback>` is given (Mesos supports it for its old web UI)."""
    callback = request.query.get("jsonp")
    text = json.dumps(body, separators=(",", ":"))
    if callback and callback.replace("_", "").replace(".", "").isalnum():
        return web.Response(text=f"{callback}({text});", content_type="text/javascript")
    return web.Response(text=text, content_type="application/json")


# ------------------------------------------------------------------------------- v1 scheduler API


async def read_json_call(request: web.Request) -> dict:
    """The request's body as a JSON object, through `http_input` (UTF-8 only, bounded depth, size and integers)."""
    content_type = request.headers.get("Content-Type", "")
    mime = content_type.split(";")[0].strip().lower()
    if not mime:
        raise CallError("Expecting 'Content-Type' to be present")
    if mime == "application/x-protobuf":
        raise CallError(
            "Protobuf requests are not supported by this master: send JSON (Content-Type: application/json)", 415
        )
    if mime != "application/json":
        raise CallError(f"Expecting 'Content-Type' of application/json, got '{content_type}'", 415)
    accept = request.headers.get("Accept", "")
    if accept and not any(kind in accept for kind in ("application/json", "application/recordio", "*/*")):
        raise CallError(f"Expecting 'Accept' to allow application/json or application/recordio, got '{accept}'", 406)
    call = await read_json_body(request)
    if not isinstance(call, dict):
        raise CallError(f"Expecting a JSON object (a v1 Call), got {type(call).__name__}")
    return call


async def scheduler_api(request: web.Request) -> web.StreamResponse:
    try:
        call = await read_json_call(request)
    except CallError as error:
        return text_error(error.status, error.message)
    process = process_of(request)
    master = process.master
    if master is None:
        return redirect_to_leader(process, request.path_qs)
    try:
        kind = validation.validate_call(call)
        if kind == "SUBSCRIBE":
            return await subscribe(request, master, call)
        framework = master.framework_for_call(call, request.headers.get("Mesos-Stream-Id"))
        check_framework_principal(request, framework.info)
        dispatch_call(master, framework, kind, call)
    except CallError as error:
        return text_error(error.status, error.message)
    return web.Response(status=202)


def dispatch_call(master: Master, framework, kind: str, call: dict) -> None:
    """Run a call that `validation.validate_call` accepted."""
    body = call.get(kind.lower())
    if kind in NO_OP_CALLS:
        return
    if kind in UNSUPPORTED_CALLS:
        raise CallError(f"{kind} is not supported by this master")
    handlers = {
        "TEARDOWN": lambda: master.teardown(framework),
        "ACCEPT": lambda: master.accept(framework, body),
        "DECLINE": lambda: master.decline(framework, body),
        "REVIVE": lambda: master.revive(framework, body),
        "SUPPRESS": lambda: master.suppress(framework, body),
        "KILL": lambda: master.kill(framework, body),
        "SHUTDOWN": lambda: master.shutdown_executor(framework, body),
        "ACKNOWLEDGE": lambda: master.acknowledge(framework, body),
        "RECONCILE": lambda: master.reconcile(framework, body),
        "MESSAGE": lambda: master.message(framework, body),
        "ACCEPT_INVERSE_OFFERS": lambda: master.maintenance.answer_inverse_offers(framework.framework_id, body, True),
        "DECLINE_INVERSE_OFFERS": lambda: master.maintenance.answer_inverse_offers(framework.framework_id, body, False),
    }
    handlers[kind]()


def check_framework_principal(request: web.Request, framework_info: dict) -> None:
    """An authenticated caller acts for its own framework only: its principal must be FrameworkInfo.principal."""
    principal = principal_of(request)
    claimed = framework_info.get("principal")
    if principal is not None and principal != claimed:
        raise CallError(
            f"Authenticated principal '{principal}' does not match principal '{claimed or ''}' set in FrameworkInfo",
            403,
        )


async def subscribe(request: web.Request, master: Master, call: dict) -> web.StreamResponse:
    info, framework_id = master.validate_subscribe(call)
    refused = refuse_for_descriptors(process_of(request), "framework")
    if refused is not None:
        return refused
    # Refused before anything exists: no framework, no stream, no registry record.
    check_framework_principal(request, info)
    existing = master.frameworks.get(framework_id) if framework_id else None
    if existing is not None:
        # A failover may not hand someone else's framework to this principal.
        check_framework_principal(request, existing.info)
    master.authorize_roles(info)
    stream_id = str(uuid.uuid4())
    wants_recordio = "application/recordio" in request.headers.get("Accept", "")
    headers = {"Mesos-Stream-Id": stream_id, "Cache-Control": "no-cache"}
    if wants_recordio:
        headers |= {"Content-Type": "application/recordio", "Message-Content-Type": "application/json"}
    else:
        headers["Content-Type"] = "application/json"
    response = web.StreamResponse(status=200, headers=headers)
    response.enable_chunked_encoding()
    stream = EventStream(response, stream_id)
    master.subscribe(call, stream)
    return await serve_stream(request, response, stream)


async def serve_stream(request: web.Request, response: web.StreamResponse, stream: EventStream) -> web.StreamResponse:
    try:
        await response.prepare(request)
    except (ConnectionError, RuntimeError):
        stream.abort()
        return response
    stream.start(request.transport)
    await stream.wait_closed()
    return response


# ------------------------------------------------------------------------------- master <-> agent


@leader_only
async def agent_subscribe(request: web.Request, master: Master) -> web.StreamResponse:
    refused = refuse_for_descriptors(process_of(request), "agent")
    if refused is not None:
        return refused
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/recordio", "Record-Io-Content-Type": "application/json"}
    )
    response.enable_chunked_encoding()
    stream = EventStream(response, f"agent-{request.remote}")
    if not process_of(request).security.allows("register_agents", request):
        return text_error(403, f"Principal '{principal_of(request)}' may not register agents (register_agents)")
    try:
        body = await read_json_call(request)
        validation.validate_agent_subscription(body)
        body = with_agent_ip(body, request.remote)
        refusal = master.maintenance.refusal(body.get("agent_info") or {})
        if refusal is not None:  # as Mesos: no agent registers from a machine that is DOWN for maintenance
            return text_error(403, refusal)
        master.maintenance.agent_admitted(master.admission.admit(body, stream))
    except CallError as error:
        return text_error(error.status, error.message)
    return await serve_stream(request, response, stream)


def with_agent_ip(body: dict, remote: str | None) -> dict:
    """The subscription with `agent_info.ip`: the one the agent advertises, else the address it connected
    from. Its pid (`slave(1)@ip:port`) and the UI's sandbox proxy use it: an agent's hostname need not
    resolve on the master (`--hostname` is often a display name)."""
    info = body.get("agent_info")
    if not isinstance(info, dict):
        return body  # admission says what is wrong
    advertised = info.get("ip")
    if advertised is not None:
        try:
            ipaddress.ip_address(advertised if isinstance(advertised, str) else "")
        except ValueError:
            raise CallError(f"agent_info.ip must be an IP address, got {advertised!r}") from None
        return body
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return body  # not over TCP/IP (e.g. a unix socket): the hostname stays the agent's address
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            return body  # pids and "host:port" strings hold IPv4 addresses only
        address = address.ipv4_mapped
    return {**body, "agent_info": {**info, "ip": str(address)}}


@leader_only
async def agent_call(request: web.Request, master: Master) -> web.Response:
    try:
        call = await read_json_call(request)
        validation.validate_agent_call(call)
        master.admission.call(request.headers.get("Mesos-Agent-Id"), call)
    except CallError as error:
        return text_error(error.status, error.message)
    return web.Response(status=202)


# ------------------------------------------------------------------------------- maintenance (maintenance.py)


async def read_json_body(request: web.Request) -> object:
    """A JSON body of any shape (the maintenance endpoints take objects and lists), through `http_input`."""
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_SECONDS):
            body = await request.read()
        return decode_json(body, request.charset)
    except TimeoutError:
        raise CallError(f"The request body did not arrive within {BODY_READ_TIMEOUT_SECONDS:.0f}s", 408) from None
    except web.HTTPRequestEntityTooLarge as error:
        raise CallError(f"Request body too large: {error.text}", 413) from None
    except JsonInputError as error:
        raise CallError(f"Failed to parse body into JSON: {error}", error.status) from None


def refuse_operator(request: web.Request, call_type: str) -> web.Response | None:
    """403 when the ACL of this maintenance call (`maintenance.ACL_ACTIONS`) refuses the request's principal."""
    action = ACL_ACTIONS.get(call_type)
    if action is None or process_of(request).security.allows(action, request):
        return None
    return text_error(403, f"Principal '{principal_of(request) or ''}' is not authorized to {call_type} ({action})")


@leader_only
async def maintenance_schedule(request: web.Request, master: Master) -> web.Response:
    """GET: the schedule; POST: replace it (Mesos's /maintenance/schedule)."""
    if request.method == "GET":
        return refuse_operator(request, "GET_MAINTENANCE_SCHEDULE") or json_response(
            master.maintenance.schedule_json(), request
        )
    return await change_maintenance(request, master, "UPDATE_MAINTENANCE_SCHEDULE", master.maintenance.update_schedule)


async def change_maintenance(
    request: web.Request, master: Master, call_type: str, change: Callable[[object], None]
) -> web.Response:
    """One maintenance change from a request's JSON body: 200 once it is in the registry, else 4xx/503 saying why."""
    refused = refuse_operator(request, call_type)
    if refused is not None:
        return refused
    try:
        change(await read_json_body(request))
        await master.maintenance.persisted()
    except CallError as error:
        return text_error(error.status, error.message)
    return web.Response(status=200)


@leader_only
async def maintenance_status(request: web.Request, master: Master) -> web.Response:
    refused = refuse_operator(request, "GET_MAINTENANCE_STATUS")
    return refused or json_response(master.maintenance.status_json(), request)


@leader_only
async def machine_down(request: web.Request, master: Master) -> web.Response:
    return await change_maintenance(request, master, "START_MAINTENANCE", master.maintenance.start_maintenance)


@leader_only
async def machine_up(request: web.Request, master: Master) -> web.Response:
    return await change_maintenance(request, master, "STOP_MAINTENANCE", master.maintenance.stop_maintenance)


@leader_only
async def operator_api(request: web.Request, master: Master) -> web.Response:
    """The v1 operator API (`POST /api/v1`): its maintenance and agent calls (see maintenance.py)."""
    try:
        call = await read_json_call(request)
        if not isinstance(call.get("type"), str):
            raise CallError("Expecting 'type' to be present")
        refused = refuse_operator(request, call["type"])
        if refused is not None:
            return refused
        response = master.maintenance.operator_call(call)
        if response is None:
            await master.maintenance.persisted()
    except CallError as error:
        return text_error(error.status, error.message)
    if response is None:
        return web.Response(status=200)
    return web.json_response(response)


# ------------------------------------------------------------------------------- the application


# Every route of the master, with who may call it (see access.py for what each kind means).
ROUTES: list[tuple[str, str, Handler, Access]] = [
    ("GET", "/health", health, Access.OPEN),
    ("GET", "/version", version, Access.OPEN),
    ("GET", "/redirect", redirect, Access.OPEN),
    ("GET", "/master/redirect", redirect, Access.OPEN),
    ("GET", "/master/redirect/{rest:.*}", redirect, Access.OPEN),
    ("GET", "/metrics/snapshot", metrics_snapshot, Access.READ_ONLY),
    ("POST", "/api/v1/scheduler", scheduler_api, Access.FRAMEWORK),
    ("POST", "/api/v1", operator_api, Access.READ_WRITE),
    ("GET", "/maintenance/schedule", maintenance_schedule, Access.READ_WRITE),
    ("POST", "/maintenance/schedule", maintenance_schedule, Access.READ_WRITE),
    ("GET", "/maintenance/status", maintenance_status, Access.READ_ONLY),
    ("POST", "/machine/down", machine_down, Access.READ_WRITE),
    ("POST", "/machine/up", machine_up, Access.READ_WRITE),
    ("POST", "/internal/agent/subscribe", agent_subscribe, Access.AGENT),
    ("POST", "/internal/agent/call", agent_call, Access.AGENT),
]
for _prefix in ("", "/master"):
    ROUTES += [
        ("GET", f"{_prefix}/state", master_state, Access.READ_ONLY),
        ("GET", f"{_prefix}/state.json", master_state, Access.READ_ONLY),
        ("GET", f"{_prefix}/state-summary", state_summary, Access.READ_ONLY),
        ("GET", f"{_prefix}/frameworks", frameworks, Access.READ_ONLY),
        ("GET", f"{_prefix}/slaves", slaves, Access.READ_ONLY),
        ("GET", f"{_prefix}/tasks", tasks, Access.READ_ONLY),
        ("GET", f"{_prefix}/tasks.json", tasks, Access.READ_ONLY),
        ("POST", f"{_prefix}/teardown", teardown, Access.READ_WRITE),
    ]
# The UI's pages and static files are open, as Mesos's are; the data they fetch is not.
UI_ACCESS = {UiRoute.PAGE: Access.OPEN, UiRoute.DATA: Access.READ_ONLY}


def build_app(process: MasterProcess) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[PROCESS_KEY] = process
    for method, path, handler, access in ROUTES:
        add_route(app, method, path, handler, access)
    for resource, ui_kind in add_ui(app, process).items():
        classify(app, resource, UI_ACCESS[ui_kind])
    process.security.install(app)
    return app


def add_ui(app: web.Application, process: MasterProcess) -> dict[web.AbstractResource, UiRoute]:
    """Serve the master UI; answers the kind of each route it added."""

    def agent_address(agent_id: str) -> str | None:
        master = process.master
        agent = master.agents.get(agent_id) if master is not None else None
        # Only an agent registered with this master and connected now: not one merely read back from the
        # registry, nor one that stopped answering (its address may belong to something else by now).
        if agent is None or not agent.active:
            return None
        # Where the agent registered from (its pid, `slave(1)@<ip>:<port>`), not its hostname.
        return agent.pid.partition("@")[2]

    def leader_url() -> str | None:
        leader = process.leader_info
        if process.master is not None or leader is None or leader.get("id") == process.info["id"]:
            return None
        address = leader.get("address") or {}
        scheme = address.get("scheme") or "http"
        host = address.get("hostname") or leader.get("hostname")
        return f"{scheme}://{host}:{address.get('port') or leader.get('port')}"

    def may_access_sandbox(request: web.Request, framework_id: str, executor_id: str, reported_user: str) -> bool:
        """`access_sandboxes`: the user the executor runs as, from the master's own records when it has them."""
        user = reported_user
        master = process.master
        framework = None
        if master is not None:
            framework = master.frameworks.get(framework_id) or next(
                (item for item in master.completed_frameworks if item.framework_id == framework_id), None
            )
        if framework is not None:
            user = framework.info.get("user") or user
            for group in (framework.tasks.values(), framework.completed_tasks):
                task = next((task for task in group if task.executor_id == executor_id), None)
                if task is not None:
                    user = task_user(task.info, framework.info)
                    break
        return process.security.allows("access_sandboxes", request, user)

    security = process.security
    return add_master_ui(
        app,
        agent_address=agent_address,
        leader_url=leader_url,
        agent_ssl_context=security.client_context(),
        may_access_sandbox=None if security.authorizer.is_open else may_access_sandbox,
    )
