"""Marathon end to end: real ZooKeeper, the real master and agents, tasks as real processes.

The marathon-python client (0.13, strict about every field) is the independent client.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from marathon_cluster import SERVE

import marathon as marathon_python
from harness.http import http
from harness.waiting import wait_for

pytestmark = pytest.mark.integration


def client_of(service) -> marathon_python.MarathonClient:
    return marathon_python.MarathonClient(service.url(), timeout=15)


def running_tasks(client, app_id: str) -> list:
    return [t for t in client.list_tasks(app_id) if t.state == "TASK_RUNNING"]


def answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as response:
        return response.status == 200
    return False


def deployments_done(client) -> bool:
    return client.list_deployments() == []


def test_command_app_lifecycle_with_marathon_python(cluster):
    cluster.start_agent("127.0.0.1")
    service = cluster.start_marathon()
    client = client_of(service)
    app = marathon_python.MarathonApp(cmd=SERVE, cpus=0.1, mem=32, instances=2, ports=[0])
    created = client.create_app("/web", app)
    assert created.deployments
    wait_for(lambda: len(running_tasks(client, "/web")) == 2, 60, what="two running tasks")
    wait_for(lambda: deployments_done(client), 30, what="the deployment to finish")
    apps = client.list_apps(embed_tasks=True)
    assert [len(a.tasks) for a in apps] == [2]
    # Ports: a host port from the offer's range, the same service port on both, the task serves on PORT0.
    tasks = client.list_tasks("/web")
    service_port = apps[0].port_definitions[0].port
    assert 10000 <= service_port <= 20000
    for task in tasks:
        assert 24000 <= task.ports[0] <= 24099 and task.service_ports == [service_port]
        wait_for(lambda task=task: answers(task.host, task.ports[0]), 20, what="the task to serve on its port")
    _status, _, text = http("GET", service.url("/v2/tasks"), headers={"Accept": "text/plain"})
    line = text.strip().split("\n")[0].split("\t")
    assert line[0] == "web" and line[1] == str(service_port) and len([p for p in line[2:] if p]) == 2

    client.scale_app("/web", instances=3)
    wait_for(lambda: len(running_tasks(client, "/web")) == 3, 60, what="three running tasks")
    killed = client.kill_task("/web", tasks[0].id)
    assert killed.id == tasks[0].id
    wait_for(lambda: tasks[0].id not in [t.id for t in running_tasks(client, "/web")], 30, what="the kill")
    wait_for(lambda: len(running_tasks(client, "/web")) == 3, 60, what="the replacement")
    current = [t.id for t in running_tasks(client, "/web")]
    assert client.kill_given_tasks(current[:1], scale=True)
    wait_for(lambda: client.get_app("/web").instances == 2, 10, what="the scale-down")
    wait_for(lambda: len(running_tasks(client, "/web")) == 2, 60, what="two tasks again")

    client.update_app("/web", marathon_python.MarathonApp(cmd=SERVE + " # v2"))
    wait_for(lambda: deployments_done(client), 90, what="the upgrade")
    upgraded = client.get_app("/web", embed_tasks=True)
    assert {t.version for t in upgraded.tasks} == {upgraded.version}
    assert upgraded.port_definitions[0].port == service_port, "the service port stays across updates"

    # DELETE /v2/apps/web/tasks?host=...: every task on that host goes, and is replaced.
    before = {t.id for t in running_tasks(client, "/web")}
    killed = client.kill_tasks("/web", host="127.0.0.1")
    assert {t.id for t in killed} == before
    wait_for(lambda: len(running_tasks(client, "/web")) == 2 and not before & {t.id for t in running_tasks(
        client, "/web")}, 60, what="replacements for the host's tasks")  # fmt: skip

    client.delete_app("/web")
    wait_for(lambda: client.list_apps() == [] and client.list_tasks() == [], 60, what="the app and its tasks to go")


def test_reference_nginx_json_through_http_post(cluster):
    cluster.start_agent("127.0.0.1", port_base=31000)
    service = cluster.start_marathon()
    nginx = {
        "id": "nginx-like",
        "cpus": 0.2,
        "mem": 32.0,
        "instances": 1,
        "constraints": [["hostname", "UNIQUE", ""]],
        "cmd": SERVE,
        "portDefinitions": [{"port": 0, "protocol": "tcp"}],
    }
    status, _headers, body = http("POST", service.url("/v2/apps"), nginx)
    assert status == 201, body
    client = client_of(service)
    wait_for(lambda: len(running_tasks(client, "/nginx-like")) == 1, 60, what="the task")
    task = running_tasks(client, "/nginx-like")[0]
    assert 31000 <= task.ports[0] <= 32000


def test_constraints_spread_and_say_why_they_wait(cluster):
    cluster.start_agent("127.0.0.1", attributes="rack:r1")
    cluster.start_agent("localhost", attributes="rack:r2")
    service = cluster.start_marathon()
    client = client_of(service)
    unique = {"id": "unique", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 3,
              "constraints": [["hostname", "UNIQUE"]]}  # fmt: skip
    assert http("POST", service.url("/v2/apps"), unique)[0] == 201
    wait_for(lambda: len(running_tasks(client, "/unique")) == 2, 60, what="one task per host")
    assert sorted(t.host for t in running_tasks(client, "/unique")) == ["127.0.0.1", "localhost"]

    def waiting_reason():
        app = http("GET", service.url("/v2/apps/unique?embed=app.waiting"))[2]["app"]
        return (app.get("waiting") or {}).get("summary", "")

    wait_for(lambda: "constraint hostname:UNIQUE" in waiting_reason(), 30, what="the reason in the app")
    # The strict client reads the same waiting app: the extension field comes only when embedded.
    assert client.get_app("/unique", embed_counts=True).tasks_running == 2
    queue = http("GET", service.url("/v2/queue"))[2]["queue"]
    assert queue[0]["count"] == 1 and "hostname:UNIQUE" in queue[0]["processedOffersSummary"]["summary"]

    cluster_app = {"id": "rack-two", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 2,
                   "constraints": [["rack", "CLUSTER", "r2"]]}  # fmt: skip
    assert http("POST", service.url("/v2/apps"), cluster_app)[0] == 201
    wait_for(lambda: len(running_tasks(client, "/rack-two")) == 2, 60, what="the CLUSTER app")
    assert {t.host for t in running_tasks(client, "/rack-two")} == {"localhost"}

    spread = {"id": "spread", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 4,
              "constraints": [["rack", "GROUP_BY", "2"], ["hostname", "LIKE", "127.*|localhost"],
                              ["hostname", "MAX_PER", "2"]]}  # fmt: skip
    assert http("POST", service.url("/v2/apps"), spread)[0] == 201
    wait_for(lambda: len(running_tasks(client, "/spread")) == 4, 60, what="the spread app")
    hosts = [t.host for t in running_tasks(client, "/spread")]
    assert sorted(hosts) == ["127.0.0.1", "127.0.0.1", "localhost", "localhost"]

    unlike = {"id": "not-local", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 1,
              "constraints": [["hostname", "UNLIKE", "localhost"], ["rack", "IS", "r1"]]}  # fmt: skip
    assert http("POST", service.url("/v2/apps"), unlike)[0] == 201
    wait_for(lambda: len(running_tasks(client, "/not-local")) == 1, 60, what="the UNLIKE app")
    assert running_tasks(client, "/not-local")[0].host == "127.0.0.1"

    too_big = {"id": "too-big", "cmd": "sleep 600", "cpus": 5, "mem": 16}
    assert http("POST", service.url("/v2/apps"), too_big)[0] == 201

    def big_reason():
        app = http("GET", service.url("/v2/apps/too-big?embed=app.waiting"))[2]["app"]
        return (app.get("waiting") or {}).get("summary", "")

    wait_for(lambda: "insufficient cpus (need 5, largest" in big_reason(), 30, what="insufficient cpus")


def test_failing_health_check_gets_the_task_replaced(cluster, tmp_path):
    cluster.start_agent("127.0.0.1")
    service = cluster.start_marathon()
    client = client_of(service)
    # The first task serves for a while, then stops answering (but keeps running): Marathon must kill and
    # replace it. Its replacement serves for good.
    marker = tmp_path / "flaked"
    flaky = (
        f"if [ -e {marker} ]; then {SERVE}; fi; touch {marker}; "
        "python3 -m http.server --bind 127.0.0.1 $PORT0 & server=$!; sleep 4; kill $server; exec sleep 600"
    )
    app = {"id": "flaky", "cmd": flaky, "cpus": 0.1, "mem": 32, "instances": 1,
           "healthChecks": [{"protocol": "HTTP", "path": "/", "intervalSeconds": 1, "timeoutSeconds": 1,
                             "gracePeriodSeconds": 30, "maxConsecutiveFailures": 2}]}  # fmt: skip
    assert http("POST", service.url("/v2/apps"), app)[0] == 201
    wait_for(lambda: client.get_app("/flaky").tasks_healthy == 1, 60, what="a healthy task")
    first = running_tasks(client, "/flaky")[0].id
    wait_for(lambda: first not in [t.id for t in client.list_tasks("/flaky")], 60, what="the unhealthy task killed")
    wait_for(lambda: client.get_app("/flaky").tasks_healthy == 1, 60, what="a healthy replacement")


def test_mesos_run_health_checks_make_tasks_healthy(cluster):
    cluster.start_agent("127.0.0.1")
    service = cluster.start_marathon()
    client = client_of(service)
    common = {"intervalSeconds": 1, "timeoutSeconds": 5, "gracePeriodSeconds": 30, "delaySeconds": 0}
    apps = {
        "command-checked": {"protocol": "COMMAND", "command": {"value": 'test -n "$MESOS_TASK_ID"'}, **common},
        "http-checked": {"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, **common},
    }
    for app_id, check in apps.items():
        app = {"id": app_id, "cmd": SERVE, "cpus": 0.1, "mem": 32, "instances": 1, "healthChecks": [check]}
        assert http("POST", service.url("/v2/apps"), app)[0] == 201
    for app_id in apps:
        wait_for(lambda a=app_id: client.get_app(f"/{a}").tasks_healthy == 1, 60, what=f"{app_id} healthy")


def test_an_app_runs_the_executable_it_fetched(cluster, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "script.sh").write_text("#!/bin/sh\necho the fetched script runs\nexec sleep 600\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=served))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        agent = cluster.start_agent("127.0.0.1")
        service = cluster.start_marathon()
        url = f"http://127.0.0.1:{server.server_address[1]}/script.sh"
        app = {"id": "fetched", "cmd": "./script.sh", "cpus": 0.1, "mem": 16, "instances": 1,
               "fetch": [{"uri": url, "executable": True}]}  # fmt: skip
        assert http("POST", service.url("/v2/apps"), app)[0] == 201
        client = client_of(service)
        wait_for(lambda: len(running_tasks(client, "/fetched")) == 1, 60, what="the task of the fetched script")

        # Running is not enough (a missing ./script.sh fails only after TASK_RUNNING): the script has spoken.
        def spoke() -> bool:
            outputs = agent.work_dir.glob("slaves/*/frameworks/*/executors/*/runs/*/stdout")
            return any(output.read_text() == "the fetched script runs\n" for output in outputs)

        wait_for(spoke, 10, what="the script's output")
        assert len(running_tasks(client, "/fetched")) == 1
    finally:
        server.shutdown()
        server.server_close()
