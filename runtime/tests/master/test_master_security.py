"""The master closed: authentication of every route (enumerated from its router), ACLs where Mesos applies them,
clear flag errors, and the UI's sandbox proxy on the master's origin.

Masters run as real processes (standalone); agents are master_helpers' TEST-ONLY `FakeAgent` presenting the
agent's credentials as HTTP Basic (the header the real agent sends with `--credential`), so that the master's
side is tested without the agent's own security work.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from agent_testing import AgentHome
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from master_helpers import FakeAgent, Scheduler, command_task, start_master

from harness.processes import free_port
from harness.waiting import wait_for
from mesolite.master.http import build_app
from mesolite.master.master import MasterSettings
from mesolite.master.service import FLAGS, MasterProcess
from mesolite.security.authentication import basic_authorization
from mesolite.ui.routes import add_master_ui

pytestmark = pytest.mark.integration

CREDENTIALS = {"alice": "alice-secret", "bob": "bob-secret", "ops": "ops-secret", "agent": "agent-secret"}
ALL_AUTHENTICATION = (
    "--authenticate_frameworks",
    "--authenticate_http_frameworks",
    "--authenticate_http_readonly",
    "--authenticate_http_readwrite",
    "--authenticate_agents",
)
# The routes Mesos leaves open (and the UI's page and static files); every other route must be closed.
OPEN_PATHS = re.compile(r"^(/health|/version|/redirect|/master/redirect(/.*)?|/|/ui|/ui/|/ui/static/.+)$")


def auth(principal: str, secret: str | None = None) -> dict[str, str]:
    """The headers of a client presenting `principal`'s credentials (or `secret` instead of its own)."""
    return {"Authorization": basic_authorization(principal, CREDENTIALS[principal] if secret is None else secret)}


@pytest.fixture
def credentials_file(tmp_path) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"credentials": [{"principal": p, "secret": s} for p, s in CREDENTIALS.items()]}))
    return path


def acls_file(tmp_path: Path, acls: dict) -> Path:
    path = tmp_path / "acls.json"
    path.write_text(json.dumps(acls))
    return path


def start_secure_master(launcher, credentials_file: Path, *flags: str):
    return start_master(
        launcher,
        "--allocation_interval=100ms",
        f"--credentials={credentials_file}",
        *ALL_AUTHENTICATION,
        *flags,
    )


# ------------------------------------------------------------------------------------------ every route


def router_routes() -> list[tuple[str, str]]:
    """(method, concrete path) of every route of the master's application, from its router."""
    flags = FLAGS.load(["--ip=127.0.0.1", "--port=5050"])
    app = build_app(MasterProcess(flags, MasterSettings()))
    samples = {"rest": "somewhere", "agent_id": "no-such-agent", "path": "common/ui.js"}
    routes = []
    for route in app.router.routes():
        canonical = route.resource.canonical
        path = re.sub(r"\{(\w+)\}", lambda match: samples.get(match[1], match[0]), canonical)
        assert "{" not in path, f"no sample value for the route {canonical}: add one"
        routes.append((route.method, path))
    return sorted(set(routes))


ROUTES = router_routes()


def test_the_router_has_open_and_closed_routes():
    # Guards the enumeration itself: an empty or all-open list would make the test below pass vacuously.
    assert any(OPEN_PATHS.match(path) for _method, path in ROUTES)
    closed = {path for _method, path in ROUTES if not OPEN_PATHS.match(path)}
    assert {"/master/state", "/api/v1/scheduler", "/internal/agent/call", "/teardown"} <= closed


async def test_every_route_needs_valid_credentials_unless_mesos_leaves_it_open(launcher, credentials_file):
    master = start_secure_master(launcher, credentials_file)
    failures = []
    async with aiohttp.ClientSession() as http:
        for method, path in ROUTES:
            url = master.url(path)
            results = {}
            for name, credential in (
                ("none", None),
                ("wrong", auth("alice", "not-the-secret")),
                ("right", auth("ops")),
            ):
                async with http.request(method, url, headers=credential, allow_redirects=False, data=b"") as response:
                    await response.read()
                    results[name] = (response.status, response.headers.get("WWW-Authenticate"))
            if OPEN_PATHS.match(path):
                if any(status in (401, 403) for status, _ in results.values()):
                    failures.append(f"{method} {path} should be open: {results}")
            else:
                for name in ("none", "wrong"):
                    if results[name] != (401, 'Basic realm="mesos"'):
                        failures.append(f"{method} {path} without valid credentials ({name}): {results[name]}")
                if results["right"][0] in (401, 403):
                    failures.append(f"{method} {path} refused valid credentials: {results['right']}")
    assert not failures, "\n".join(failures)


async def test_open_mode_asks_nobody_for_credentials(launcher):
    master = start_master(launcher)
    async with aiohttp.ClientSession() as http:
        for method, path in ROUTES:
            async with http.request(method, master.url(path), allow_redirects=False, data=b"") as response:
                assert response.status not in (401, 403), (method, path, response.status)


# ------------------------------------------------------------------------------------------ flag errors


def master_exits(*flags: str) -> str:
    """Start a master that must refuse its flags; answers what it printed (exit status 2, no traceback)."""
    result = subprocess.run(
        [sys.executable, "-m", "mesolite.cli", "master", "--ip=127.0.0.1", "--port=1", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_flag_errors_name_the_flag(tmp_path, credentials_file):
    assert "--credentials" in master_exits(f"--credentials={tmp_path / 'missing.json'}")
    (tmp_path / "bad.json").write_text('{"credentials": [{"principal": "x"}]}')
    assert "--credentials" in master_exits(f"--credentials={tmp_path / 'bad.json'}")
    output = master_exits(f"--credentials={credentials_file}", '--acls={"run_tasks": [{"principals": 1}]}')
    assert "--acls" in output
    assert "--acls" in master_exits(f"--credentials={credentials_file}", f"--acls={tmp_path / 'missing-acls.json'}")
    output = master_exits("--authenticate_http_readonly")
    assert "--authenticate_http_readonly" in output and "--credentials" in output
    output = master_exits(f"--credentials={credentials_file}", "--http_framework_authenticators=crammd5")
    assert "--http_framework_authenticators" in output and "crammd5" in output


# ------------------------------------------------------------------------------------------ ACLs


async def subscribe_status(http: aiohttp.ClientSession, master, info: dict) -> tuple[int, str]:
    call = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "f", **info}}}
    async with http.post(master.url("/api/v1/scheduler"), json=call, headers={"Accept": "application/json"}) as r:
        if r.status == 200:
            return r.status, ""
        return r.status, await r.text()


async def test_subscribe_is_refused_for_a_role_the_principal_may_not_use(launcher, credentials_file, tmp_path):
    acls = {"register_frameworks": [{"principals": {"values": ["alice", "bob"]}, "roles": {"values": ["web"]}}]}
    acls["register_frameworks"].append({"principals": {"type": "ANY"}, "roles": {"type": "NONE"}})
    master = start_secure_master(launcher, credentials_file, f"--acls={acls_file(tmp_path, acls)}")
    async with aiohttp.ClientSession(headers=auth("alice")) as http:
        status, text = await subscribe_status(http, master, {"principal": "alice", "role": "batch"})
        assert status == 403 and "'batch'" in text, (status, text)
        async with http.get(master.url("/master/frameworks")) as response:
            assert (await response.json())["frameworks"] == []  # refused before any framework existed
        # Someone else's principal in FrameworkInfo: refused, whatever the role.
        status, text = await subscribe_status(http, master, {"principal": "bob", "role": "web"})
        assert status == 403 and "does not match" in text, (status, text)
        scheduler = Scheduler(http, master.url())
        await scheduler.subscribe({"principal": "alice", "role": "web", "failover_timeout": 60})
        await scheduler.close()
    async with aiohttp.ClientSession(headers=auth("bob")) as bob_http:
        # bob may not take alice's framework over by failing it over to himself.
        info = {"principal": "bob", "role": "web", "id": {"value": scheduler.framework_id}}
        status, text = await subscribe_status(bob_http, master, info)
        assert status == 403 and "does not match principal 'alice'" in text, (status, text)
    async with aiohttp.ClientSession() as anonymous:
        status, _ = await subscribe_status(anonymous, master, {"principal": "alice", "role": "web"})
        assert status == 401


async def test_a_task_whose_user_run_tasks_forbids_gets_task_error_and_its_neighbour_launches(
    launcher, credentials_file, tmp_path
):
    acls = {"run_tasks": [{"principals": {"values": ["alice"]}, "users": {"values": ["nobody"]}}], "permissive": True}
    acls["run_tasks"].append({"principals": {"type": "ANY"}, "users": {"type": "NONE"}})
    master = start_secure_master(launcher, credentials_file, f"--acls={acls_file(tmp_path, acls)}")
    async with (
        aiohttp.ClientSession(headers=auth("agent")) as agent_http,
        aiohttp.ClientSession(headers=auth("alice")) as http,
    ):
        agent = FakeAgent(agent_http, master.url())
        await agent.subscribe()
        scheduler = Scheduler(http, master.url())
        await scheduler.subscribe({"principal": "alice", "user": "nobody"})
        (offer,) = await scheduler.offers()
        as_root = command_task(offer, "as-root")
        as_root["command"]["user"] = "root"
        as_framework_user = command_task(offer, "as-nobody")
        assert (await scheduler.launch(offer, as_root, as_framework_user)).status == 202
        status = (await scheduler.next("UPDATE"))["update"]["status"]
        assert status["task_id"] == {"value": "as-root"}
        assert status["state"] == "TASK_ERROR" and status["reason"] == "REASON_TASK_UNAUTHORIZED"
        assert "'root'" in status["message"]
        run = (await agent.next("RUN_TASK"))["run_task"]
        assert run["task"]["task_id"] == {"value": "as-nobody"}
        await scheduler.close()
        await agent.disconnect()


async def test_views_show_only_what_the_principal_may_view_and_teardown_needs_its_acl(
    launcher, credentials_file, tmp_path
):
    acls = {
        "view_frameworks": [
            {"principals": {"values": ["ops"]}, "users": {"values": ["nobody"]}},
            {"principals": {"values": ["ops"]}, "users": {"type": "NONE"}},
        ],
        "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "NONE"}}],
        "teardown_frameworks": [
            {"principals": {"values": ["alice"]}, "framework_principals": {"values": ["alice", "bob"]}},
            {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}},
        ],
    }
    master = start_secure_master(launcher, credentials_file, f"--acls={acls_file(tmp_path, acls)}")
    async with (
        aiohttp.ClientSession(headers=auth("agent")) as agent_http,
        aiohttp.ClientSession(headers=auth("alice")) as alice_http,
        aiohttp.ClientSession(headers=auth("bob")) as bob_http,
        aiohttp.ClientSession(headers=auth("ops")) as ops_http,
    ):
        agent = FakeAgent(agent_http, master.url())
        await agent.subscribe()
        visible = Scheduler(alice_http, master.url())
        await visible.subscribe({"principal": "alice", "user": "nobody", "name": "visible"})
        hidden = Scheduler(bob_http, master.url())
        await hidden.subscribe({"principal": "bob", "user": "root", "name": "hidden"})
        (offer,) = await visible.offers()
        await visible.launch(offer, command_task(offer, "secret-task"))
        await agent.next("RUN_TASK")

        async def view(http: aiohttp.ClientSession, path: str) -> dict:
            async with http.get(master.url(path)) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        for path in ("/master/state", "/master/frameworks"):
            ops_view = await view(ops_http, path)
            assert [framework["name"] for framework in ops_view["frameworks"]] == ["visible"], path
            assert ops_view["frameworks"][0]["tasks"] == []  # view_tasks: nothing for ops
            everyone = await view(alice_http, path)  # no rule for alice: permissive
            assert sorted(framework["name"] for framework in everyone["frameworks"]) == ["hidden", "visible"]
        assert (await view(ops_http, "/master/tasks"))["tasks"] == []
        assert [task["id"] for task in (await view(alice_http, "/master/tasks"))["tasks"]] == ["secret-task"]

        form = {"frameworkId": hidden.framework_id}
        async with ops_http.post(master.url("/master/teardown"), data=form) as response:
            assert response.status == 403, await response.text()
        async with alice_http.post(master.url("/teardown"), data=form) as response:
            assert response.status == 200, await response.text()
        names = [framework["name"] for framework in (await view(alice_http, "/master/frameworks"))["frameworks"]]
        assert names == ["visible"]
        await visible.close()
        await hidden.close()
        await agent.disconnect()


# ------------------------------------------------------------------------------------------ the UI's proxy


async def test_the_proxy_reaches_only_agents_connected_now(launcher, http):
    master = start_master(launcher, "--agent_ping_timeout=10secs")
    agent = FakeAgent(http, master.url(), port=free_port())  # nothing listens there: reaching it is a 502
    await agent.subscribe()
    url = master.url(f"/ui/api/agents/{agent.agent_id}/files/read")
    async with http.get(url, params={"path": "/sandbox/stdout"}) as response:
        assert response.status == 502, await response.text()
    await agent.disconnect()

    statuses = []
    for _attempt in range(150):  # the master notices the closed stream at once; generous for a loaded machine
        async with http.get(url, params={"path": "/sandbox/stdout"}) as response:
            statuses.append(response.status)
        if statuses[-1] == 404:
            break
        await asyncio.sleep(0.1)
    assert statuses[-1] == 404, statuses


def hostile_agent_app(tmp_path: Path, seen_authorization: list[str | None]) -> web.Application:
    """An 'agent' whose /files/read answers as HTML, and whose /state has one sandbox: `tmp_path / "sandbox"`."""

    async def state(request: web.Request) -> web.Response:
        seen_authorization.append(request.headers.get("Authorization"))
        executor = {"id": "task-1", "directory": str(tmp_path / "sandbox"), "tasks": [{"id": "task-1"}]}
        return web.json_response({"frameworks": [{"id": "fw-1", "user": "nobody", "executors": [executor]}]})

    async def files_read(request: web.Request) -> web.Response:
        seen_authorization.append(request.headers.get("Authorization"))
        if request.query["path"].endswith("missing"):
            return web.Response(status=404, text="<script>alert(1)</script>", content_type="text/html")
        body = json.dumps({"data": "<script>alert(1)</script>", "offset": 0})
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/state", state)
    app.router.add_get("/files/read", files_read)
    return app


async def test_the_proxy_never_serves_the_agents_content_type_and_forwards_the_callers_credentials(tmp_path):
    seen: list[str | None] = []
    agent = TestClient(TestServer(hostile_agent_app(tmp_path, seen)))
    await agent.start_server()
    app = web.Application()
    add_master_ui(app, agent_address=lambda agent_id: f"127.0.0.1:{agent.port}" if agent_id == "a1" else None)
    master = TestClient(TestServer(app))
    await master.start_server()
    try:
        header = basic_authorization("ops", "ops-secret")
        path = str(tmp_path / "sandbox" / "stdout")
        response = await master.get(
            "/ui/api/agents/a1/files/read", params={"path": path}, headers={"Authorization": header}
        )
        assert response.status == 200
        assert response.content_type == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert (await response.json())["data"] == "<script>alert(1)</script>"
        assert seen == [header]
        response = await master.get("/ui/api/agents/a1/files/read", params={"path": path + "-missing"})
        assert response.status == 404
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        await master.close()
        await agent.close()


async def test_access_sandboxes_limits_the_proxy_to_sandboxes_the_principal_may_read(tmp_path):
    seen: list[str | None] = []
    agent = TestClient(TestServer(hostile_agent_app(tmp_path, seen)))
    await agent.start_server()
    decisions: list[tuple[str, str, str]] = []

    def may_access(request: web.Request, framework_id: str, executor_id: str, user: str) -> bool:
        decisions.append((framework_id, executor_id, user))
        return request.headers.get("Authorization") == basic_authorization("alice", "alice-secret")

    app = web.Application()
    add_master_ui(app, agent_address=lambda agent_id: f"127.0.0.1:{agent.port}", may_access_sandbox=may_access)
    master = TestClient(TestServer(app))
    await master.start_server()
    try:
        inside = {"path": str(tmp_path / "sandbox" / "stdout")}
        alice = {"Authorization": basic_authorization("alice", "alice-secret")}
        bob = {"Authorization": basic_authorization("bob", "bob-secret")}
        assert (await master.get("/ui/api/agents/a1/files/read", params=inside, headers=alice)).status == 200
        assert decisions[-1] == ("fw-1", "task-1", "nobody")
        assert (await master.get("/ui/api/agents/a1/files/read", params=inside, headers=bob)).status == 403
        outside = {"path": str(tmp_path / "sandbox-of-someone-else" / "stdout")}
        assert (await master.get("/ui/api/agents/a1/files/read", params=outside, headers=alice)).status == 403
        sandbox = {"framework_id": "fw-1", "task_id": "task-1"}
        assert (await master.get("/ui/api/agents/a1/sandbox", params=sandbox, headers=bob)).status == 403
        assert (await master.get("/ui/api/agents/a1/sandbox", params=sandbox, headers=alice)).status == 200
    finally:
        await master.close()
        await agent.close()


# ------------------------------------------------------------------------------------------ the real agent


def test_the_real_agent_registers_with_its_credential_and_not_without(launcher, credentials_file, tmp_path):
    master = start_secure_master(launcher, credentials_file)
    address = f"127.0.0.1:{master.port}"
    operator = auth("ops")

    def registered_agents() -> int:
        request = urllib.request.Request(master.url("/master/slaves"), headers=operator)
        with urllib.request.urlopen(request, timeout=10) as response:
            return len(json.load(response)["slaves"])

    impostor_credential = tmp_path / "impostor.json"
    impostor_credential.write_text(json.dumps({"principal": "agent", "secret": "guessed"}))
    (tmp_path / "impostor").mkdir()
    impostor = AgentHome.create(tmp_path / "impostor")
    launcher.start("agent", *impostor.arguments(address, f"--credential={impostor_credential}"), port=impostor.port)
    credential = tmp_path / "agent-credential.json"
    credential.write_text(json.dumps({"principal": "agent", "secret": CREDENTIALS["agent"]}))
    (tmp_path / "agent").mkdir()
    home = AgentHome.create(tmp_path / "agent")
    launcher.start("agent", *home.arguments(address, f"--credential={credential}"), port=home.port)
    wait_for(lambda: registered_agents() == 1, 30, what="the agent with the right credential to register")
    time.sleep(2)  # the impostor retries meanwhile (backoff 200ms): it must still be refused
    assert registered_agents() == 1
    assert "refused credentials for POST /internal/agent/subscribe" in master.log()  # the impostor did try


async def test_register_agents_admits_only_the_principals_it_names(launcher, credentials_file, tmp_path):
    acls = {"permissive": False, "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}]}
    master = start_secure_master(launcher, credentials_file, f"--acls={acls_file(tmp_path, acls)}")
    async with aiohttp.ClientSession(headers=auth("bob")) as http:
        body = {"type": "REGISTER", "agent_info": {"hostname": "impostor", "resources": []}}
        async with http.post(master.url("/internal/agent/subscribe"), json=body) as response:
            assert response.status == 403
            assert "register_agents" in await response.text()
    async with aiohttp.ClientSession(headers=auth("agent")) as agent_http:
        agent = FakeAgent(agent_http, master.url())
        await agent.subscribe()  # the named principal is admitted
        await agent.disconnect()
