"""Test-only stand-ins for the APIs the UIs read: canned JSON in the public Mesos and Marathon formats.

The fast UI tests need the pages to render known data quickly and deterministically, so these small
aiohttp apps serve the *real* UI routes (`mesolite.ui.routes`) next to canned answers for the public
endpoints (/master/state and /metrics/snapshot as Mesos 1.11 writes them, an agent's /state and
/files/read, Marathon's /v2 apps, queue, deployments, info and events). The Marathon stand-in keeps
apps in memory and validates the few fields the tests exercise, answering 422 with Marathon's
{"message", "details": [{"path", "errors"}]} body. The end-to-end test runs the real services instead.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from mesolite.ui import add_marathon_ui, add_master_ui

MARATHON_FRAMEWORK_ID = "0f3c9a52-5b7e-4a61-9d0e-6d1c2b7a9e10-0000"
EXECUTE_FRAMEWORK_ID = "0f3c9a52-5b7e-4a61-9d0e-6d1c2b7a9e10-0001"
AGENT_IDS = ["0f3c9a52-5b7e-4a61-9d0e-6d1c2b7a9e10-S0", "0f3c9a52-5b7e-4a61-9d0e-6d1c2b7a9e10-S1"]
NGINX_TASK_IDS = ["nginx.6b1f4c2e-9a55-11ef-8d3c-0242ac110002", "nginx.7c2a5d3f-9a55-11ef-8d3c-0242ac110002"]
NGINX_STDOUT = "".join(f"172.17.0.1 - - GET /{n} HTTP/1.1 200 615\n" for n in range(40))


def iso(seconds_ago: float) -> str:
    moment = datetime.fromtimestamp(time.time() - seconds_ago, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ------------------------------------------------------------------------------------------- agent


def make_agent_app(sandboxes: Path) -> web.Application:
    """An agent's /state and /files/read over real files (Mesos formats), for the master's sandbox proxy."""
    now = time.time()
    directories = {}
    for index, task_id in enumerate(NGINX_TASK_IDS):
        directory = sandboxes / f"run-{index}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "stdout").write_text(NGINX_STDOUT)
        (directory / "stderr").write_text("nginx: [notice] start worker processes\n")
        directories[task_id] = str(directory)
    executors = [
        {
            "id": task_id,
            "name": f"Command Executor (Task: {task_id})",
            "directory": directory,
            "tasks": [{"id": task_id, "framework_id": MARATHON_FRAMEWORK_ID, "state": "TASK_RUNNING"}],
            "completed_tasks": [],
            "queued_tasks": [],
        }
        for task_id, directory in directories.items()
    ]
    state = {
        "id": AGENT_IDS[0],
        "start_time": now - 4000,
        "frameworks": [{"id": MARATHON_FRAMEWORK_ID, "name": "marathon", "executors": executors}],
        "completed_frameworks": [],
    }
    app = web.Application()

    async def agent_state(request: web.Request) -> web.Response:
        return web.json_response(state)

    async def files_read(request: web.Request) -> web.Response:
        return read_file_slice(Path(request.query["path"]), request.query)

    def read_file_slice(path: Path, query) -> web.Response:
        if not path.is_file() or not path.is_relative_to(sandboxes):
            return web.Response(status=404, text=f"No such file '{path}'")
        offset = int(query.get("offset", "0"))
        size = path.stat().st_size
        if offset == -1:
            return web.json_response({"data": "", "offset": size})
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(int(query.get("length", str(size))))
        return web.json_response({"data": data.decode(errors="replace"), "offset": offset})

    app.router.add_get("/state", agent_state)
    app.router.add_get("/files/read", files_read)
    return app


# ------------------------------------------------------------------------------------------ master


def port_range(index: int) -> str:
    return f"[{31000 + index}-{31000 + index}]"


def master_state(agent_address: str) -> dict:
    now = time.time()
    agents = [
        {
            "id": AGENT_IDS[index],
            "pid": f"slave(1)@{agent_address}",
            "hostname": hostname,
            "port": 5051,
            "registered_time": now - 3900 + index * 60,
            "resources": {"cpus": 2.0, "mem": 3840.0, "disk": 35000.0, "gpus": 0.0, "ports": "[31000-32000]"},
            "used_resources": {
                "cpus": 0.2,
                "mem": 32.0,
                "disk": 0.0,
                "gpus": 0.0,
                "ports": f"[{31000 + index}-{31000 + index}]",
            },
            "offered_resources": {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0},
            "attributes": {"rack": f"r{index + 1}", "zone": "lab"},
            "active": True,
            "version": "1.11.0",
        }
        for index, hostname in enumerate(["node1", "node2"])
    ]

    def nginx_task(index: int) -> dict:
        started = now - 600 + index * 30
        return {
            "id": NGINX_TASK_IDS[index],
            "name": "nginx",
            "framework_id": MARATHON_FRAMEWORK_ID,
            "executor_id": "",
            "slave_id": AGENT_IDS[index],
            "state": "TASK_RUNNING",
            "resources": {
                "cpus": 0.2,
                "mem": 32.0,
                "disk": 0.0,
                "gpus": 0.0,
                "ports": f"[{31000 + index}-{31000 + index}]",
            },
            "role": "*",
            "statuses": [
                {"state": "TASK_STARTING", "timestamp": started - 2, "source": "SOURCE_EXECUTOR"},
                {
                    "state": "TASK_RUNNING",
                    "timestamp": started,
                    "source": "SOURCE_EXECUTOR",
                    "container_status": {
                        "network_infos": [{"ip_addresses": [{"ip_address": f"172.17.0.{2 + index}"}]}]
                    },
                },
            ],
            "container": {"type": "DOCKER", "docker": {"image": "nginx", "network": "BRIDGE"}},
        }

    finished = {
        "id": "cluster-test",
        "name": "cluster-test",
        "framework_id": EXECUTE_FRAMEWORK_ID,
        "executor_id": "",
        "slave_id": AGENT_IDS[1],
        "state": "TASK_FINISHED",
        "resources": {"cpus": 1.0, "mem": 128.0, "disk": 0.0, "gpus": 0.0},
        "statuses": [
            {"state": "TASK_RUNNING", "timestamp": now - 3000, "source": "SOURCE_EXECUTOR"},
            {
                "state": "TASK_FINISHED",
                "timestamp": now - 2940,
                "source": "SOURCE_EXECUTOR",
                "message": "Command exited with status 0",
            },
        ],
    }
    failed = {
        "id": "nginx.1a2b3c4d-9a50-11ef-8d3c-0242ac110002",
        "name": "nginx",
        "framework_id": MARATHON_FRAMEWORK_ID,
        "executor_id": "",
        "slave_id": AGENT_IDS[0],
        "state": "TASK_FAILED",
        "resources": {"cpus": 0.2, "mem": 32.0, "disk": 0.0, "gpus": 0.0},
        "statuses": [
            {"state": "TASK_RUNNING", "timestamp": now - 1500, "source": "SOURCE_EXECUTOR"},
            {
                "state": "TASK_FAILED",
                "timestamp": now - 1400,
                "source": "SOURCE_EXECUTOR",
                "reason": "REASON_COMMAND_EXECUTOR_FAILED",
                "message": "Command exited with status 1",
            },
        ],
    }
    return {
        "version": "1.11.0",
        "build_date": "2024-01-01 00:00:00",
        "start_time": now - 4000,
        "elected_time": now - 3990,
        "id": "master-0f3c9a52",
        "pid": "master@127.0.0.1:5050",
        "hostname": "node1",
        "cluster": "lab",
        "leader": "master@127.0.0.1:5050",
        "leader_info": {"id": "master-0f3c9a52", "hostname": "node1", "port": 5050, "pid": "master@127.0.0.1:5050"},
        "activated_slaves": 2,
        "deactivated_slaves": 0,
        "slaves": agents,
        "frameworks": [
            {
                "id": MARATHON_FRAMEWORK_ID,
                "name": "marathon",
                "user": "root",
                "role": "*",
                "hostname": "node1",
                "webui_url": "http://node1:8080",
                "active": True,
                "connected": True,
                "checkpoint": True,
                "failover_timeout": 604800,
                "registered_time": now - 3800,
                "used_resources": {"cpus": 0.4, "mem": 64.0, "disk": 0.0, "gpus": 0.0},
                "offered_resources": {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0},
                "tasks": [nginx_task(0), nginx_task(1)],
                "completed_tasks": [failed],
            }
        ],
        "completed_frameworks": [
            {
                "id": EXECUTE_FRAMEWORK_ID,
                "name": "mesos-execute instance",
                "user": "root",
                "role": "*",
                "active": False,
                "registered_time": now - 3050,
                "unregistered_time": now - 2930,
                "used_resources": {"cpus": 0.0, "mem": 0.0, "disk": 0.0},
                "tasks": [],
                "completed_tasks": [finished],
            }
        ],
        "orphan_tasks": [],
    }


STATE_OVERRIDES = web.AppKey("state_overrides", dict)


def make_master_app(agent_address: str) -> web.Application:
    app = web.Application()
    add_master_ui(app, agent_address=lambda agent_id: agent_address if agent_id in AGENT_IDS else None)

    # Tests change the cluster under a page that is already open through these overrides.
    app[STATE_OVERRIDES] = overrides = {}

    async def state(request: web.Request) -> web.Response:
        return web.json_response({**master_state(agent_address), **overrides})

    async def metrics(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "master/uptime_secs": 4000.0,
                "master/elected": 1.0,
                "master/cpus_total": 4.0,
                "master/cpus_used": 0.4,
                "master/tasks_running": 2.0,
                "master/tasks_staging": 0.0,
                "master/tasks_starting": 0.0,
                "master/tasks_finished": 1.0,
                "master/tasks_failed": 1.0,
                "master/tasks_killed": 0.0,
                "master/tasks_lost": 0.0,
                "master/tasks_error": 0.0,
                "master/tasks_killing": 0.0,
            }
        )

    app.router.add_get("/master/state", state)
    app.router.add_get("/metrics/snapshot", metrics)
    return app


# ---------------------------------------------------------------------------------------- Marathon

APP_ID_PATTERN = re.compile(r"^(/?(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9]))+$")
CONSTRAINT_OPERATORS = {"UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS"}


class FakeMarathon:
    """In-memory apps in Marathon's /v2 format; tasks appear at once (there is no cluster behind it)."""

    def __init__(self) -> None:
        self.apps: dict[str, dict] = {}
        self.versions: dict[str, list[str]] = {}
        self.deployments: list[dict] = []
        self.queue: list[dict] = []
        self.requests: list[tuple[str, str, object]] = []  # every change the UI asked for, in order
        self.listeners: set[asyncio.Queue] = set()
        self._ports = itertools.count(31005)
        self.seed()

    # -- canned apps for the screenshots and list tests
    def seed(self) -> None:
        self.put_app(
            {
                "id": "/nginx",
                "cpus": 0.2,
                "mem": 32.0,
                "instances": 2,
                "constraints": [["hostname", "UNIQUE"]],
                "labels": {"env": "lab", "team": "web"},
                "networks": [{"mode": "container/bridge"}],
                "container": {
                    "type": "DOCKER",
                    "docker": {"image": "nginx"},
                    "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                },
                "healthChecks": [{"protocol": "MESOS_HTTP", "portIndex": 0, "path": "/"}],
            },
            healthy=True,
        )
        self.put_app(
            {
                "id": "/web/api",
                "cmd": "python3 -m http.server $PORT0",
                "cpus": 0.5,
                "mem": 128.0,
                "instances": 3,
                "labels": {"env": "prod"},
                "portDefinitions": [{"port": 0, "protocol": "tcp"}],
            },
            running=1,
        )
        deployment_id = "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"
        self.apps["/web/api"]["deployments"] = [{"id": deployment_id}]
        self.deployments.append(
            {
                "id": deployment_id,
                "version": iso(40),
                "affectedApps": ["/web/api"],
                "affectedPods": [],
                "steps": [{"actions": [{"action": "ScaleApplication", "app": "/web/api"}]}],
                "currentActions": [{"action": "ScaleApplication", "app": "/web/api", "readinessCheckResults": []}],
                "currentStep": 1,
                "totalSteps": 1,
            }
        )
        self.put_app({"id": "/reports/nightly", "cmd": "sleep 3600", "cpus": 0.1, "mem": 64.0, "instances": 0})
        self.put_app(
            {
                "id": "/redis",
                "cpus": 1.5,
                "mem": 2048.0,
                "instances": 3,
                "constraints": [["hostname", "UNIQUE"]],
                "labels": {"env": "prod"},
                "networks": [{"mode": "container/bridge"}],
                "container": {
                    "type": "DOCKER",
                    "docker": {"image": "redis:7"},
                    "portMappings": [{"containerPort": 6379, "hostPort": 0, "protocol": "tcp"}],
                },
            },
            running=2,
        )
        self.queue.append(
            {
                "app": self.public(self.apps["/redis"]),
                "count": 1,
                "delay": {"timeLeftSeconds": 0, "overdue": True},
                "since": iso(300),
                "processedOffersSummary": {
                    "processedOffersCount": 24,
                    "unusedOffersCount": 24,
                    "lastUnusedOfferAt": iso(2),
                    "rejectSummaryLastOffers": [
                        {"reason": "UnfulfilledRole", "declined": 0, "processed": 2},
                        {"reason": "UnfulfilledConstraint", "declined": 2, "processed": 2},
                        {"reason": "InsufficientCpus", "declined": 0, "processed": 0},
                    ],
                },
                "lastUnusedOffers": [
                    {
                        "offer": {"id": "o1", "agentId": AGENT_IDS[0], "hostname": "node1"},
                        "reason": ["UnfulfilledConstraint"],
                        "timestamp": iso(2),
                    },
                    {
                        "offer": {"id": "o2", "agentId": AGENT_IDS[1], "hostname": "node2"},
                        "reason": ["UnfulfilledConstraint"],
                        "timestamp": iso(2),
                    },
                ],
            }
        )

    def put_app(self, definition: dict, running: int | None = None, healthy: bool = False) -> dict:
        version = iso(0)
        app = {
            "instances": 1,
            "cpus": 1.0,
            "mem": 128.0,
            "disk": 0.0,
            "constraints": [],
            "labels": {},
            "healthChecks": [],
            **definition,
            "version": version,
            "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": version},
            "deployments": [],
        }
        app["id"] = "/" + app["id"].strip("/")
        self.apps[app["id"]] = app
        self.versions.setdefault(app["id"], []).append(version)
        self.set_tasks(app, app["instances"] if running is None else running, healthy)
        return app

    def set_tasks(self, app: dict, count: int, healthy: bool = False) -> None:
        tasks = app.get("tasks", [])[:count]
        while len(tasks) < count:
            index = len(tasks)
            task_id = f"{app['id'].strip('/').replace('/', '_')}.{uuid.uuid4()}"
            task = {
                "id": task_id,
                "appId": app["id"],
                "host": ["node1", "node2"][index % 2],
                "slaveId": AGENT_IDS[index % 2],
                "ports": [next(self._ports)],
                "stagedAt": iso(120),
                "startedAt": iso(118),
                "version": app["version"],
                "state": "TASK_RUNNING",
            }
            if app.get("healthChecks"):
                task["healthCheckResults"] = [{"alive": True, "taskId": task_id, "consecutiveFailures": 0}]
            tasks.append(task)
        app["tasks"] = tasks
        app["tasksRunning"] = len(tasks)
        app["tasksStaged"] = 0
        app["tasksHealthy"] = len(tasks) if app.get("healthChecks") else 0
        app["tasksUnhealthy"] = 0

    @staticmethod
    def public(app: dict) -> dict:
        return {key: value for key, value in app.items() if key not in {"tasks"}}

    # -- validation, Marathon style: every problem at its JSON path
    @staticmethod
    def validate(definition: dict) -> list[dict]:
        problems: list[dict] = []
        app_id = definition.get("id")
        if not isinstance(app_id, str) or not app_id.strip("/"):
            problems.append({"path": "/id", "errors": ["error.path.missing"]})
        elif not APP_ID_PATTERN.match(app_id):
            message = f"must fully match regular expression '{APP_ID_PATTERN.pattern}'"
            problems.append({"path": "/id", "errors": [message]})
        for name, minimum in (("cpus", 0.0), ("mem", 0.0), ("instances", 0)):
            if name in definition:
                value = definition[name]
                if not isinstance(value, int | float) or isinstance(value, bool):
                    problems.append({"path": f"/{name}", "errors": ["error.expected.jsnumber"]})
                elif value < minimum:
                    problems.append({"path": f"/{name}", "errors": [f"got {value}, expected {minimum} or more"]})
        for index, constraint in enumerate(definition.get("constraints", [])):
            if len(constraint) < 2 or constraint[1] not in CONSTRAINT_OPERATORS:
                operators = ", ".join(sorted(CONSTRAINT_OPERATORS))
                message = f"Constraint operator must be one of the following: [{operators}]"
                problems.append({"path": f"/constraints({index})", "errors": [message]})
        if not definition.get("cmd") and not definition.get("args") and not definition.get("container"):
            problems.append(
                {
                    "path": "/",
                    "errors": ["AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."],
                }
            )
        return problems

    async def notify(self, event_type: str, payload: dict) -> None:
        for listener in list(self.listeners):
            listener.put_nowait((event_type, payload))

    def deployment_answer(self) -> dict:
        return {"deploymentId": str(uuid.uuid4()), "version": iso(0)}


def make_marathon_app(marathon: FakeMarathon) -> web.Application:
    app = web.Application()
    add_marathon_ui(app)

    def json_error(status: int, message: str, details: list | None = None) -> web.Response:
        body = {"message": message}
        if details is not None:
            body["details"] = details
        return web.json_response(body, status=status)

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": "marathon",
                "version": "1.11.24",
                "leader": "node1:8080",
                "frameworkId": MARATHON_FRAMEWORK_ID,
                "elected": True,
            }
        )

    async def list_apps(request: web.Request) -> web.Response:
        return web.json_response({"apps": list(marathon.apps.values())})

    async def create_app(request: web.Request) -> web.Response:
        definition = await request.json()
        marathon.requests.append(("POST", "/v2/apps", definition))
        problems = marathon.validate(definition)
        if problems:
            return json_error(422, "Object is not valid", problems)
        app_id = "/" + definition["id"].strip("/")
        if app_id in marathon.apps:
            return json_error(409, f"An app with id [{app_id}] already exists.")
        created = marathon.put_app(definition)
        await marathon.notify("deployment_success", {"id": str(uuid.uuid4())})
        return web.json_response(created, status=201)

    async def one_app(request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        suffix = None
        for candidate in ("/versions", "/restart", "/tasks"):
            if path.endswith(candidate):
                path, suffix = path[: -len(candidate)], candidate
        current = marathon.apps.get(path)
        body = await request.json() if request.can_read_body else None
        if request.method != "GET":
            marathon.requests.append((request.method, f"/v2/apps{path}{suffix or ''}", body))
        if current is None:
            return json_error(404, f"App '{path}' does not exist")
        if request.method == "GET" and suffix == "/versions":
            return web.json_response({"versions": list(reversed(marathon.versions[path]))})
        if request.method == "GET":
            return web.json_response({"app": current})
        if request.method == "POST" and suffix == "/restart":
            return web.json_response(marathon.deployment_answer())
        if request.method == "PUT":
            merged = {**marathon.public(current), **body}
            problems = marathon.validate(merged)
            if problems:
                return json_error(422, "Object is not valid", problems)
            if set(body) == {"instances"}:
                current["instances"] = body["instances"]
                marathon.set_tasks(current, body["instances"], healthy=True)
            else:
                marathon.put_app(merged)
            await marathon.notify("deployment_success", {})
            return web.json_response(marathon.deployment_answer())
        if request.method == "DELETE":
            del marathon.apps[path]
            await marathon.notify("deployment_success", {})
            return web.json_response(marathon.deployment_answer())
        return json_error(405, "method not allowed")

    async def queue(request: web.Request) -> web.Response:
        return web.json_response({"queue": marathon.queue})

    async def deployments(request: web.Request) -> web.Response:
        return web.json_response(marathon.deployments)

    async def delete_deployment(request: web.Request) -> web.Response:
        deployment_id = request.match_info["id"]
        marathon.requests.append(("DELETE", request.path_qs, None))
        marathon.deployments = [d for d in marathon.deployments if d["id"] != deployment_id]
        return web.json_response(marathon.deployment_answer(), status=202 if request.query.get("force") else 200)

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        listener: asyncio.Queue = asyncio.Queue()
        marathon.listeners.add(listener)
        try:
            await response.write(b'event: event_stream_attached\ndata: {"remoteAddress": "127.0.0.1"}\n\n')
            while True:
                event_type, payload = await listener.get()
                await response.write(f"event: {event_type}\ndata: {json.dumps(payload)}\n\n".encode())
        finally:
            marathon.listeners.discard(listener)

    app.router.add_get("/v2/info", info)
    app.router.add_get("/v2/apps", list_apps)
    app.router.add_post("/v2/apps", create_app)
    app.router.add_route("*", "/v2/apps/{path:.+}", one_app)
    app.router.add_get("/v2/queue", queue)
    app.router.add_get("/v2/deployments", deployments)
    app.router.add_delete("/v2/deployments/{id}", delete_deployment)
    app.router.add_get("/v2/events", events)
    return app
