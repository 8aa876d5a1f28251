"""The UI routes over real HTTP: pages, static files, the leader redirect and the sandbox proxy.

The agent behind the proxy is the test-only stand-in of fake_apis (a real aiohttp server answering
/state and /files/read in Mesos's formats over real files).
"""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from harness.processes import free_port
from mesolite.ui import add_marathon_ui, add_master_ui
from mesolite.ui.routes import MAX_READ_LENGTH, find_sandbox_directory

from .fake_apis import AGENT_IDS, MARATHON_FRAMEWORK_ID, NGINX_STDOUT, NGINX_TASK_IDS, make_agent_app


async def client_for(app: web.Application) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def agent(tmp_path):
    client = await client_for(make_agent_app(tmp_path / "sandboxes"))
    yield client
    await client.close()


@pytest.fixture
async def master(agent):
    app = web.Application()
    address = f"127.0.0.1:{agent.port}"
    add_master_ui(app, agent_address=lambda agent_id: address if agent_id == AGENT_IDS[0] else None)
    client = await client_for(app)
    yield client
    await client.close()


async def test_master_page_is_served_with_a_policy_that_forbids_anything_from_elsewhere(master):
    response = await master.get("/")
    assert response.status == 200
    assert "ui/static/master/app.js" in await response.text()
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy


async def test_static_modules_have_a_javascript_type_and_revalidate(master):
    response = await master.get("/ui/static/common/ui.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path", ["/ui/static/../routes.py", "/ui/static/%2e%2e/routes.py", "/ui/static/master/missing.js"]
)
async def test_files_outside_the_static_tree_or_missing_are_not_served(master, path):
    response = await master.get(path)
    assert response.status == 404


async def test_old_marathon_ui_address_redirects_to_the_page():
    app = web.Application()
    add_marathon_ui(app)
    client = await client_for(app)
    try:
        response = await client.get("/ui/", allow_redirects=False)
        assert response.status == 302 and response.headers["Location"] == "/"
        page = await client.get("/")
        assert "ui/static/marathon/app.js" in await page.text()
    finally:
        await client.close()


async def test_a_non_leading_master_sends_the_browser_to_the_leader():
    app = web.Application()
    add_master_ui(app, agent_address=lambda agent_id: None, leader_url=lambda: "http://127.0.0.2:5050")
    client = await client_for(app)
    try:
        response = await client.get("/", allow_redirects=False)
        assert response.status == 307
        assert response.headers["Location"] == "http://127.0.0.2:5050/"
    finally:
        await client.close()


async def test_sandbox_directory_is_found_in_the_agent_state(master, tmp_path):
    query = {"framework_id": MARATHON_FRAMEWORK_ID, "task_id": NGINX_TASK_IDS[0], "executor_id": ""}
    response = await master.get(f"/ui/api/agents/{AGENT_IDS[0]}/sandbox", params=query)
    assert response.status == 200
    assert await response.json() == {"directory": str(tmp_path / "sandboxes" / "run-0")}


async def test_sandbox_of_an_unknown_task_is_a_404_with_the_reason(master):
    query = {"framework_id": MARATHON_FRAMEWORK_ID, "task_id": "no-such-task"}
    response = await master.get(f"/ui/api/agents/{AGENT_IDS[0]}/sandbox", params=query)
    assert response.status == 404
    assert "no-such-task" in (await response.json())["message"]


async def test_file_reads_are_proxied_in_mesos_format(master, tmp_path):
    path = str(tmp_path / "sandboxes" / "run-0" / "stdout")
    response = await master.get(f"/ui/api/agents/{AGENT_IDS[0]}/files/read", params={"path": path, "offset": "-1"})
    assert await response.json() == {"data": "", "offset": len(NGINX_STDOUT)}
    response = await master.get(
        f"/ui/api/agents/{AGENT_IDS[0]}/files/read", params={"path": path, "offset": "10", "length": "20"}
    )
    assert await response.json() == {"data": NGINX_STDOUT[10:30], "offset": 10}


async def test_file_read_errors_of_the_agent_pass_through(master, tmp_path):
    path = str(tmp_path / "sandboxes" / "run-0" / "missing")
    response = await master.get(f"/ui/api/agents/{AGENT_IDS[0]}/files/read", params={"path": path})
    assert response.status == 404


async def test_read_length_is_capped_so_a_browser_cannot_make_the_master_pull_a_huge_file(master, agent):
    seen = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"data": "", "offset": 0})

    recording_agent = web.Application()
    recording_agent.router.add_get("/files/read", record)
    recorder = await client_for(recording_agent)
    app = web.Application()
    add_master_ui(app, agent_address=lambda agent_id: f"127.0.0.1:{recorder.port}")
    client = await client_for(app)
    try:
        await client.get("/ui/api/agents/any/files/read", params={"path": "/x", "length": str(10 * MAX_READ_LENGTH)})
        await client.get("/ui/api/agents/any/files/read", params={"path": "/x"})
        assert [query["length"] for query in seen] == [str(MAX_READ_LENGTH)] * 2
    finally:
        await client.close()
        await recorder.close()


@pytest.mark.parametrize(
    ("params", "message"),
    [({}, "'path' is required"), ({"path": "/x", "offset": "ten"}, "'offset' must be an integer, got 'ten'")],
)
async def test_bad_read_queries_are_refused_with_the_reason(master, params, message):
    response = await master.get(f"/ui/api/agents/{AGENT_IDS[0]}/files/read", params=params)
    assert response.status == 400
    assert message in (await response.json())["message"]


async def test_unknown_agent_is_a_404(master):
    response = await master.get("/ui/api/agents/nobody/files/read", params={"path": "/x"})
    assert response.status == 404
    assert "no agent with id 'nobody'" in (await response.json())["message"]


async def test_unreachable_agent_is_a_502_that_names_it():
    address = f"127.0.0.1:{free_port()}"
    app = web.Application()

    async def locate(agent_id: str) -> str:  # the master may look agents up asynchronously
        return address

    add_master_ui(app, agent_address=locate)
    client = await client_for(app)
    try:
        response = await client.get("/ui/api/agents/S9/files/read", params={"path": "/x"})
        assert response.status == 502
        assert f"agent S9 at {address} could not be reached" in (await response.json())["message"]
    finally:
        await client.close()


def executor(executor_id: str, directory: str, tasks=(), completed=()) -> dict:
    return {
        "id": executor_id,
        "directory": directory,
        "tasks": [{"id": task} for task in tasks],
        "completed_tasks": [{"id": task} for task in completed],
    }


@pytest.mark.parametrize(
    ("state", "executor_id", "task_id", "expected"),
    [
        # A command task: the executor carries the task's id.
        ({"frameworks": [{"id": "F", "executors": [executor("t1", "/run/1")]}]}, "", "t1", "/run/1"),
        # A custom executor found by its id, or by the task it runs.
        ({"frameworks": [{"id": "F", "executors": [executor("e", "/run/e", tasks=["t2"])]}]}, "e", "t2", "/run/e"),
        ({"frameworks": [{"id": "F", "executors": [executor("e", "/run/e", tasks=["t2"])]}]}, "", "t2", "/run/e"),
        # Finished tasks live under completed executors, or completed frameworks.
        (
            {"frameworks": [{"id": "F", "executors": [], "completed_executors": [executor("t3", "/run/3")]}]},
            "",
            "t3",
            "/run/3",
        ),
        (
            {"completed_frameworks": [{"id": "F", "completed_executors": [executor("x", "/run/x", completed=["t4"])]}]},
            "",
            "t4",
            "/run/x",
        ),
        # Another framework's task of the same id is not ours.
        ({"frameworks": [{"id": "G", "executors": [executor("t1", "/run/g")]}]}, "", "t1", None),
        ({}, "", "t1", None),
    ],
)
def test_find_sandbox_directory(state, executor_id, task_id, expected):
    assert find_sandbox_directory(state, "F", executor_id, task_id) == expected
