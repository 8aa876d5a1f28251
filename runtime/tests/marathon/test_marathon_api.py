"""The /v2 API of a real `mesolite marathon` process on real ZooKeeper (no master needed for these)."""

from __future__ import annotations

import threading

import pytest
from app_definitions import INVALID_DEFINITIONS, REFERENCE_NGINX
from marathon_testing import start_marathon

import marathon as marathon_python
from harness.http import http
from harness.processes import free_port
from harness.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def service(zookeeper, launcher):
    # No master listens there: apps are stored and deployments planned, nothing launches.
    return start_marathon(launcher, f"127.0.0.1:{free_port()}", zookeeper.url("/marathon"))


def test_invalid_definitions_are_refused_naming_the_field_and_nothing_changes(service):
    status, _, _ = http("POST", service.url("/v2/apps"), {"id": "keep", "cmd": "sleep 1", "instances": 0})
    assert status == 201
    # With 0 instances its deployment finishes at once (nothing to launch).
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the deployment to finish")
    before = http("GET", service.url("/v2/apps"))[2]
    versions_before = http("GET", service.url("/v2/apps/keep/versions"))[2]
    for description, definition, path in INVALID_DEFINITIONS:
        status, _, body = http("POST", service.url("/v2/apps"), definition)
        assert status == 422, description
        assert body["message"] == "Object is not valid"
        assert path in [d["path"] for d in body["details"]], (description, body)
        # The same definitions as updates of an existing app (where an id is not needed).
        # ("requirePorts" is fine for "keep", whose port already has a number.)
        if isinstance(definition, dict) and path not in ("/id", "/", "/requirePorts"):
            status, _, body = http("PUT", service.url("/v2/apps/keep?force=true"), {**definition, "id": "keep"})
            assert status == 422, description
            assert path in [d["path"] for d in body["details"]], (description, body)
    assert http("GET", service.url("/v2/apps"))[2] == before
    assert http("GET", service.url("/v2/apps/keep/versions"))[2] == versions_before


def test_errors_look_like_marathons(service):
    status, _, body = http("POST", service.url("/v2/apps"), raw=b"{not json")
    assert status == 400 and "Invalid JSON" in body["message"]
    status, _, body = http("GET", service.url("/v2/apps/missing"))
    assert (status, body) == (404, {"message": "App '/missing' does not exist"})
    assert http("POST", service.url("/v2/apps"), {"id": "dup", "cmd": "x", "instances": 0})[0] == 201
    status, _, body = http("POST", service.url("/v2/apps"), {"id": "dup", "cmd": "x"})
    assert status == 409 and "already exists" in body["message"]
    status, _, body = http("PUT", service.url("/v2/apps/dup"), {"instances": 2})
    assert status == 409 and body["deployments"], "a deployment locks the app"
    status, _, body = http("DELETE", service.url("/v2/deployments/nope"))
    assert status == 404


def test_reference_nginx_json_is_created_with_headers(service):
    status, headers, body = http("POST", service.url("/v2/apps"), REFERENCE_NGINX)
    assert status == 201
    assert headers["Location"].endswith("/v2/apps/nginx")
    assert body["deployments"] == [{"id": headers["Marathon-Deployment-Id"]}]
    assert body["constraints"] == [["hostname", "UNIQUE"]]
    assert body["container"]["portMappings"][0]["servicePort"] == 10000
    assert body["version"].endswith("Z") and len(body["version"]) == len("2015-09-17T09:32:42.598Z")
    deployments = http("GET", service.url("/v2/deployments"))[2]
    assert deployments[0]["affectedApps"] == ["/nginx"] and deployments[0]["totalSteps"] == 2


def test_marathon_python_client_against_the_api(service):
    client = marathon_python.MarathonClient(service.url())
    created = client.create_app(
        "/team/web", marathon_python.MarathonApp(cmd="sleep 100", cpus=0.1, mem=16, instances=0, labels={"tier": "web"})
    )
    assert created.id == "/team/web"
    apps = client.list_apps(
        embed_tasks=True,
        embed_counts=True,
        embed_deployments=True,
        embed_last_task_failure=True,
        embed_task_stats=True,
        embed_readiness=True,
    )
    assert [app.id for app in apps] == ["/team/web"]
    assert [a.id for a in client.list_apps(label="tier==web")] == ["/team/web"]
    assert client.list_apps(label="tier==db") == []
    app = client.get_app("/team/web", embed_tasks=True)
    assert app.instances == 0 and app.tasks == []
    deployments = client.list_deployments()
    assert deployments and deployments[0].affected_apps == ["/team/web"]
    result = client.scale_app("/team/web", instances=0, force=True)
    assert "deploymentId" in result
    updated = client.update_app("/team/web", marathon_python.MarathonApp(cmd="sleep 200"), force=True)
    assert "deploymentId" in updated
    assert client.get_app("/team/web").cmd == "sleep 200"
    versions = client.list_versions("/team/web")
    assert len(versions) == 3
    assert client.get_version("/team/web", versions[-1]).cmd == "sleep 100"
    info = client.get_info()
    assert info.name == "marathon" and info.elected is True and info.leader == service.url()[len("http://") :]
    assert client.get_leader() == {"leader": info.leader}
    assert client.ping().strip() == b"pong"
    assert "gauges" in client.get_metrics()
    assert client.list_tasks() == []
    assert client.list_queue() == [] or all(item.app.id == "/team/web" for item in client.list_queue())
    groups = client.list_groups()
    assert [g.id for g in groups] == ["/team"]
    assert client.delete_app("/team/web", force=True)["deploymentId"]
    wait_for(lambda: client.list_apps() == [], 10, what="the app to go")


def test_event_stream_through_the_client(service):
    client = marathon_python.MarathonClient(service.url())
    received = []

    def listen():
        for event in client.event_stream(event_types=["api_post_event", "deployment_info"]):
            received.append(event)
            if len(received) >= 2:
                return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    wait_for(lambda: http("GET", service.url("/metrics"))[2]["gauges"]
             ["service.mesosphere.marathon.events.subscribers"]["value"] >= 1, 10, what="the subscriber")  # fmt: skip
    http("POST", service.url("/v2/apps"), {"id": "evented", "cmd": "x", "instances": 0})
    listener.join(10)
    kinds = sorted(type(event).__name__ for event in received)
    assert kinds == ["MarathonApiPostEvent", "MarathonDeploymentInfo"]
    assert all(event.timestamp.endswith("Z") for event in received)


def test_groups_tasks_text_queue_and_leader(service):
    group = {
        "id": "/prod",
        "apps": [
            {"id": "db", "cmd": "x", "instances": 0},
            {"id": "web", "cmd": "y", "instances": 0, "dependencies": ["db"]},
        ],
    }
    status, headers, body = http("POST", service.url("/v2/groups"), group)
    assert status == 201 and body["deploymentId"]
    tree = http("GET", service.url("/v2/groups"))[2]
    assert [g["id"] for g in tree["groups"]] == ["/prod"]
    assert sorted(a["id"] for a in tree["groups"][0]["apps"]) == ["/prod/db", "/prod/web"]
    assert http("GET", service.url("/v2/apps/prod/web"))[2]["app"]["dependencies"] == ["/prod/db"]
    deployment = next(d for d in http("GET", service.url("/v2/deployments"))[2] if d["id"] == body["deploymentId"])
    actions = [[a["app"] for a in step["actions"]] for step in deployment["steps"]]
    assert actions.index(["/prod/db"]) < actions.index(["/prod/web"]), "dependencies deploy first"
    status, _, text = http("GET", service.url("/v2/tasks"), headers={"Accept": "text/plain"})
    assert status == 200 and text in ("", None)
    assert http("GET", service.url("/v2/queue"))[2] == {"queue": []}
    status, headers, body = http("GET", service.url("/v2/leader"))
    assert status == 200 and headers["X-Marathon-Leader"] == service.url()


def test_updates_restart_versions_and_rollback(service):
    base = service.url("/v2/apps")
    # PUT creates when absent (201, Location), then is a partial update by default.
    status, headers, body = http("PUT", f"{base}/svc", {"cmd": "sleep 1", "instances": 0, "env": {"A": "1"}})
    assert status == 201 and headers["Location"].endswith("/v2/apps/svc") and body["deploymentId"]
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the deployment")
    assert http("PATCH", f"{base}/svc", {"labels": {"team": "a"}})[0] == 200
    app = http("GET", f"{base}/svc")[2]["app"]
    assert (app["env"], app["labels"], app["cmd"]) == ({"A": "1"}, {"team": "a"}, "sleep 1")
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the deployment")
    # partialUpdate=false replaces the whole definition.
    status, _, _ = http("PUT", f"{base}/svc?partialUpdate=false", {"cmd": "sleep 2", "instances": 0})
    assert status == 200
    app = http("GET", f"{base}/svc")[2]["app"]
    assert (app["env"], app["labels"], app["cmd"]) == ({}, {}, "sleep 2")
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the deployment")
    status, _, body = http("POST", f"{base}/svc/restart")
    assert status == 200 and body["deploymentId"]
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the restart")
    versions = http("GET", f"{base}/svc/versions")[2]["versions"]
    assert len(versions) == 4 and versions == sorted(versions, reverse=True)
    first = http("GET", f"{base}/svc/versions/{versions[-1]}")[2]
    assert first["cmd"] == "sleep 1"
    # Rolling back to a version is a PUT of {"version": ...}.
    status, _, _ = http("PUT", f"{base}/svc", {"version": versions[-1]})
    assert status == 200
    assert http("GET", f"{base}/svc")[2]["app"]["env"] == {"A": "1"}
    assert http("GET", f"{base}/svc/versions/2000-01-01T00:00:00.000Z")[0] == 404
    assert http("GET", f"{base}/svc/tasks/svc.nope")[0] == 404


def test_deleting_a_deployment_rolls_back_or_just_stops(service):
    base = service.url("/v2/apps")
    assert http("POST", base, {"id": "stuck", "cmd": "sleep 1", "instances": 0})[0] == 201
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the deployment")
    # No master: this deployment waits forever for its two tasks.
    status, headers, body = http("PUT", f"{base}/stuck", {"instances": 2, "cmd": "sleep 2"})
    deployment_id = body["deploymentId"]
    assert headers["Marathon-Deployment-Id"] == deployment_id
    status, _, rollback = http("DELETE", service.url(f"/v2/deployments/{deployment_id}"))
    assert status == 200 and rollback["deploymentId"] != deployment_id
    app = http("GET", f"{base}/stuck")[2]["app"]
    assert (app["instances"], app["cmd"]) == (0, "sleep 1")
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the rollback")
    _, _, body = http("PUT", f"{base}/stuck", {"instances": 3})
    status, _, _ = http("DELETE", service.url(f"/v2/deployments/{body['deploymentId']}?force=true"))
    assert status == 202
    assert http("GET", service.url("/v2/deployments"))[2] == []
    assert http("GET", f"{base}/stuck")[2]["app"]["instances"] == 3, "force only stops, it does not roll back"
    queue = http("GET", service.url("/v2/queue"))[2]["queue"]
    assert [item["count"] for item in queue] == [3]
    assert http("DELETE", service.url("/v2/queue/stuck/delay"))[0] == 204


def test_group_update_and_delete(service):
    group = {"id": "/g", "apps": [{"id": "a", "cmd": "x", "instances": 0}]}
    assert http("POST", service.url("/v2/groups"), group)[0] == 201
    assert http("POST", service.url("/v2/groups"), group)[0] == 409
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the deployment")
    status, _, _ = http("PUT", service.url("/v2/groups/g"), {"id": "/g", "apps": [{"id": "b", "cmd": "y",
                                                                                  "instances": 0}]})  # fmt: skip
    assert status == 200
    assert sorted(a["id"] for a in http("GET", service.url("/v2/groups/g"))[2]["apps"]) == ["/g/a", "/g/b"]
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 10, what="the deployment")
    status, _, _ = http("DELETE", service.url("/v2/groups/g"))
    assert status == 200
    wait_for(lambda: http("GET", service.url("/v2/apps"))[2] == {"apps": []}, 10, what="the apps to go")
    assert http("GET", service.url("/v2/groups/g"))[0] == 404
    status, _, body = http("POST", service.url("/v2/groups"), {"id": "/h", "apps": [{"id": "BAD", "cmd": "x"}]})
    assert status == 422 and body["details"][0]["path"] == "/apps(0)/id"
    assert http("GET", service.url("/v2/groups/h"))[0] == 404, "a refused group leaves nothing behind"
