"""Hostile input to Marathon's /v2 API (issue 11): each request is refused with a clear 4xx, never a 500,
and nothing already stored changes — the apps and groups are compared before and after every request.

A real `mesolite marathon` on real ZooKeeper; no master is needed (apps are stored, nothing launches).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from http.client import HTTPConnection, HTTPException
from typing import Any

import pytest
from marathon_testing import start_marathon

import marathon as marathon_python
from harness.http import http
from harness.processes import free_port
from harness.waiting import wait_for
from mesolite.marathon.app_definition import (
    INT32_MAX,
    MAX_ENV_VARIABLES,
    MAX_ID_DEPTH,
    MAX_ID_LENGTH,
    MAX_LABELS,
    ValidationError,
    normalize_app,
)
from mesolite.marathon.events import SUBSCRIBER_BACKLOG_BYTES, EventBus
from mesolite.marathon.group_definition import parse_group
from mesolite.marathon.paths import ROOT
from mesolite.marathon.record_size import check_change_fits, encoded_size
from mesolite.marathon.storage import MarathonStorage
from mesolite.marathon.timestamps import now_timestamp
from mesolite.zookeeper.session import ZooKeeperSession
from mesolite.zookeeper.store import ZooKeeperStore
from mesolite.zookeeper.url import parse_zookeeper_url

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
JSON = "application/json"


def app(app_id: str = "hostile", **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 100", "instances": 0, **fields}


def health_check(**fields: Any) -> dict[str, Any]:
    return {"healthChecks": [{"protocol": "TCP", "portIndex": 0, **fields}]}


# -- what an app definition may hold: (description, definition, the path the 422 names) --------------------
OUT_OF_RANGE_DEFINITIONS = [
    ("taskKillGracePeriodSeconds 1e300", app(taskKillGracePeriodSeconds=1e300), "/taskKillGracePeriodSeconds"),
    ("taskKillGracePeriodSeconds 1e400 (inf)", None, "/taskKillGracePeriodSeconds"),  # raw JSON, below
    ("instances beyond int32", app(instances=INT32_MAX + 1), "/instances"),
    ("cpus 1e300", app(cpus=1e300), "/cpus"),
    ("mem 1e300", app(mem=1e300), "/mem"),
    ("disk 1e300", app(disk=1e300), "/disk"),
    ("gpus beyond int32", app(gpus=INT32_MAX + 1), "/gpus"),
    ("backoffSeconds 1e300", app(backoffSeconds=1e300), "/backoffSeconds"),
    ("backoffFactor 1e300", app(backoffFactor=1e300), "/backoffFactor"),
    ("maxLaunchDelaySeconds 1e300", app(maxLaunchDelaySeconds=1e300), "/maxLaunchDelaySeconds"),
    ("health check interval 1e300", app(**health_check(intervalSeconds=1e300)), "/healthChecks(0)/intervalSeconds"),
    ("health check timeout 1e300", app(**health_check(timeoutSeconds=1e300)), "/healthChecks(0)/timeoutSeconds"),
    ("health check grace 1e300", app(**health_check(gracePeriodSeconds=1e300)), "/healthChecks(0)/gracePeriodSeconds"),
    ("health check delay 1e300", app(**health_check(delaySeconds=1e300)), "/healthChecks(0)/delaySeconds"),
    (
        "health check failures beyond int32",
        app(**health_check(maxConsecutiveFailures=INT32_MAX + 1)),
        "/healthChecks(0)/maxConsecutiveFailures",
    ),
    ("health check portIndex 1e18", app(**health_check(portIndex=10**18)), "/healthChecks(0)/portIndex"),
    (
        "unreachableStrategy 1e18",
        app(unreachableStrategy={"inactiveAfterSeconds": 10**18, "expungeAfterSeconds": 10**18}),
        "/unreachableStrategy/inactiveAfterSeconds",
    ),
    (
        "upgradeStrategy over 1",
        app(upgradeStrategy={"minimumHealthCapacity": 1e300}),
        "/upgradeStrategy/minimumHealthCapacity",
    ),
    (
        "readiness check interval 1e300",
        app(readinessChecks=[{"name": "ready", "intervalSeconds": 1e300}]),
        "/readinessChecks(0)/intervalSeconds",
    ),
    (
        "residency timeout 1e300",
        app(residency={"relaunchEscalationTimeoutSeconds": 1e300}),
        "/residency/relaunchEscalationTimeoutSeconds",
    ),
    (
        "a free-form number 1e300 (ipAddress)",
        app(ipAddress={"discovery": {"ports": [{"number": 1e300}]}}),
        "/ipAddress/discovery/ports(0)/number",
    ),
    ("port 1e18", app(portDefinitions=[{"port": 10**18}]), "/portDefinitions(0)/port"),
    ("legacy port -1", app(ports=[-1]), "/portDefinitions(0)/port"),
    ("a task that uses no resources", app(cpus=0, mem=0, disk=0, gpus=0), "/"),
    # Sizes and counts.
    ("an id longer than the limit", app("a" * (MAX_ID_LENGTH + 1)), "/id"),
    ("an id of 300 kB", app("a" * 300_000), "/id"),
    ("an id of 3,000 segments", app("/".join(["a"] * 3000)), "/id"),
    ("an id deeper than the limit", app("/".join(["a"] * (MAX_ID_DEPTH + 1))), "/id"),
    ("a dependency of 3,000 segments", app(dependencies=["/".join(["a"] * 3000)]), "/dependencies(0)"),
    ("too many labels", app(labels={f"l{i}": "x" for i in range(MAX_LABELS + 1)}), "/labels"),
    ("a label name of 300 characters", app(labels={"k" * 300: "x"}), f"/labels/{'k' * 64}... (300 characters)"),
    ("a label value of 100 kB", app(labels={"big": "x" * 100_000}), "/labels/big"),
    ("too many environment variables", app(env={f"V{i}": "x" for i in range(MAX_ENV_VARIABLES + 1)}), "/env"),
    ("an environment value of 200 kB", app(env={"BIG": "x" * 200_000}), "/env/BIG"),
    ("a cmd of 200 kB (Linux refuses such an argument)", app(cmd="x" * 200_000), "/cmd"),
    ("an argument of 200 kB", {**app(args=["x" * 200_000]), "cmd": None}, "/args(0)"),
]


@pytest.mark.parametrize(
    ("description", "definition", "path"), [c for c in OUT_OF_RANGE_DEFINITIONS if c[1] is not None]
)
def test_out_of_range_fields_are_refused_naming_the_field(description, definition, path):
    with pytest.raises(ValidationError) as refused:
        normalize_app(definition)
    assert path in [d["path"] for d in refused.value.details()], (description, refused.value.details())


def test_what_marathon_accepts_stays_accepted():
    accepted = normalize_app(
        app(
            instances=INT32_MAX,
            cpus=64,
            mem=1024 * 1024,
            taskKillGracePeriodSeconds=3600,
            backoffFactor=2,
            labels={f"l{i}": "x" * 1000 for i in range(MAX_LABELS)},
            env={"JAVA_OPTS": "-Xmx1g " * 1000},
            **health_check(intervalSeconds=86400, timeoutSeconds=600),
        )
    )
    assert accepted["taskKillGracePeriodSeconds"] == 3600 and accepted["instances"] == INT32_MAX
    assert normalize_app(app("/".join(["a"] * MAX_ID_DEPTH)))["id"].count("/") == MAX_ID_DEPTH


def test_group_trees_resolve_ids_and_name_every_wrong_field():
    tree = parse_group(
        {"id": "prod", "apps": [app("web")], "groups": [{"id": "db", "apps": [app("/abs")]}], "dependencies": ["../x"]},
        None,
    )
    assert tree.group_id == "/prod"
    assert tree.groups == {
        "/prod": {"id": "/prod", "dependencies": ["../x"]},
        "/prod/db": {"id": "/prod/db", "dependencies": []},
    }
    apps, where = tree.normalized_apps()
    assert set(apps) == {"/prod/web", "/abs"} and where == {"/prod/web": "/apps(0)", "/abs": "/groups(0)/apps(0)"}
    assert parse_group({"id": "child"}, None, parent="/prod").group_id == "/prod/child"
    assert parse_group({"apps": []}, "/prod").group_id == "/prod"
    with pytest.raises(ValidationError) as refused:
        parse_group({"id": "g", "apps": {}, "groups": [1, {"id": "Bad"}, {"id": "ok", "dependencies": [[]]}]}, None)
    assert [d["path"] for d in refused.value.details()] == [
        "/apps",
        "/groups(0)",
        "/groups(1)/id",
        "/groups(2)/dependencies(0)",
    ]
    # A group stored before ids were limited can still be changed.
    long_group = "/" + "g" * 300
    assert parse_group({"apps": []}, None, existing={long_group}, parent=ROOT) is not None
    assert parse_group({"id": long_group}, None, existing={long_group}).group_id == long_group


def test_the_record_size_is_what_storage_writes():
    definition = normalize_app(app("sized", labels={"x": "y" * 1000}))
    stamp = now_timestamp()
    stored = {**definition, "version": stamp, "versionInfo": {"lastScalingAt": stamp, "lastConfigChangeAt": stamp}}
    size = len(json.dumps(stored, separators=(",", ":"), sort_keys=True).encode())
    assert encoded_size(stored) == size
    # The deployment of a new app holds it once; the app's own record is the limit here.
    deployment_size = size + 400
    check_change_fits({"/sized": None}, {"/sized": definition}, deployment_size)
    with pytest.raises(ValidationError) as refused:
        check_change_fits({"/sized": None}, {"/sized": definition}, size - 1)
    assert "App '/sized' would be stored as" in str(refused.value)
    # An update holds the original and the new definition: about twice the app.
    with pytest.raises(ValidationError) as refused:
        check_change_fits({"/sized": stored}, {"/sized": definition}, deployment_size)
    assert "The deployment of app(s) '/sized'" in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        check_change_fits({}, {}, 10, groups=[{"id": "/g", "dependencies": ["/" + "x" * 20]}])
    assert "Group '/g'" in str(refused.value)


async def test_an_event_stream_that_is_never_read_is_ended_and_its_backlog_freed():
    bus = EventBus()
    stalled = bus.subscribe()
    elsewhere = bus.subscribe(["deployment_success"])
    definition = {"id": "/big", "labels": {"l": "y" * 1024 * 1024}}
    for _ in range(SUBSCRIBER_BACKLOG_BYTES // (1024 * 1024) + 1):
        bus.publish("api_post_event", appDefinition=definition)
    assert stalled.ended and not elsewhere.ended
    assert bus.subscriber_count == 1
    assert await stalled.next_frame() is None, "the unsent backlog was dropped; the stream ends at once"
    bus.publish("deployment_success", id="d")
    assert (await elsewhere.next_frame()).startswith(b"event: deployment_success\n")


# -- the real service ----------------------------------------------------------------------------------------


@pytest.fixture
def service(zookeeper, launcher):
    return start_marathon(launcher, f"127.0.0.1:{free_port()}", zookeeper.url("/marathon"))


def send(service, method: str, path: str, body: bytes | None, content_type: str | None = JSON):
    """(status, parsed JSON or text) of one request with exactly these bytes and this Content-Type."""
    parsed = urllib.parse.urlsplit(service.url())
    connection = HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
        status = response.status
    except (OSError, HTTPException) as error:  # a dropped connection is a failure to report too
        return 0, f"no answer: {error!r}"
    finally:
        connection.close()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def stored_state(service) -> tuple[Any, Any]:
    """What is stored, as the API shows it: every app and the group tree."""
    return http("GET", service.url("/v2/apps"))[2], http("GET", service.url("/v2/groups"))[2]


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(levels: int) -> bytes:
    return b'{"id": "deep", "cmd": "x", "labels": ' + b"[" * levels + b"]" * levels + b"}"


# (description, method, path, body bytes, Content-Type, expected status, text the answer must contain)
HOSTILE_REQUESTS = [
    # Record size: --zk_max_node_size (1024000 bytes by default).
    (
        "10 MB of labels",
        "PUT",
        "/v2/apps/huge",
        body_of(app("huge", labels={"x": "y" * 10 * MIB})),
        JSON,
        413,
        "too large",
    ),
    (
        "1.5 MB of labels",
        "PUT",
        "/v2/apps/big",
        body_of(app("big", labels={"x": "y" * 60_000, **{f"k{i}": "y" * 60_000 for i in range(25)}})),
        JSON,
        422,
        "'/big' would be stored as",
    ),
    (
        "a group whose deployment exceeds the node size",
        "POST",
        "/v2/groups",
        body_of(
            {"id": "pair", "apps": [app(f"a{i}", labels={f"k{j}": "y" * 60_000 for j in range(10)}) for i in range(2)]}
        ),
        JSON,
        422,
        "--zk_max_node_size",
    ),
    # Bodies that are not acceptable JSON.
    ("invalid UTF-8", "POST", "/v2/apps", b'{"id": "x\xff\xfe", "cmd": "x"}', JSON, 400, "UTF-8"),
    ("an unknown charset", "POST", "/v2/apps", body_of(app()), "application/json; charset=klingon", 415, "charset"),
    ("Latin-1", "POST", "/v2/apps", body_of(app()), "application/json; charset=latin-1", 415, "charset"),
    ("JSON nested 10,000 levels", "POST", "/v2/apps", nested(10_000), JSON, 400, "nested"),
    (
        "JSON nested 10,000 levels in a group",
        "PUT",
        "/v2/groups/g",
        b'{"apps": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        JSON,
        400,
        "nested",
    ),
    (
        "a 400-digit integer",
        "POST",
        "/v2/apps",
        b'{"id": "x", "cmd": "x", "instances": ' + b"9" * 400 + b"}",
        JSON,
        400,
        "digits",
    ),
    (
        "infinity as 1e400",
        "POST",
        "/v2/apps",
        b'{"id": "x", "cmd": "x", "taskKillGracePeriodSeconds": 1e400}',
        JSON,
        422,
        "taskKillGracePeriodSeconds",
    ),
    ("NaN", "POST", "/v2/apps", b'{"id": "x", "cmd": "x", "cpus": NaN}', JSON, 400, "NaN"),
    # Groups with fields of the wrong type, and invalid ids.
    ("group apps not an array", "POST", "/v2/groups", body_of({"id": "g", "apps": 5}), JSON, 422, "/apps"),
    ("group groups not an array", "POST", "/v2/groups", body_of({"id": "g", "groups": "x"}), JSON, 422, "/groups"),
    (
        "group dependencies not an array",
        "POST",
        "/v2/groups",
        body_of({"id": "g", "dependencies": 5}),
        JSON,
        422,
        "/dependencies",
    ),
    (
        "a dependency that is a number",
        "POST",
        "/v2/groups",
        body_of({"id": "g", "dependencies": [5]}),
        JSON,
        422,
        "/dependencies(0)",
    ),
    ("a subgroup that is a number", "POST", "/v2/groups", body_of({"id": "g", "groups": [5]}), JSON, 422, "/groups(0)"),
    (
        "a subgroup id of the wrong type",
        "POST",
        "/v2/groups",
        body_of({"id": "g", "groups": [{"id": []}]}),
        JSON,
        422,
        "/groups(0)/id",
    ),
    ("a group id that is a number", "POST", "/v2/groups", body_of({"id": 5}), JSON, 422, "/id"),
    ("a group body that is an array", "PUT", "/v2/groups/g", body_of([1, 2]), JSON, 422, "group"),
    (
        "an invalid id in POST /v2/groups/{parent}",
        "POST",
        "/v2/groups/prod",
        body_of({"id": "Not_Valid"}),
        JSON,
        422,
        "/id",
    ),
    ("a numeric id in POST /v2/groups/{parent}", "POST", "/v2/groups/prod", body_of({"id": 5}), JSON, 422, "/id"),
    ("no id in POST /v2/groups/{parent}", "POST", "/v2/groups/prod", body_of({"apps": []}), JSON, 422, "/id"),
    ("a group id of 3,000 segments", "POST", "/v2/groups", body_of({"id": "/".join(["g"] * 3000)}), JSON, 422, "/id"),
    (
        "a subgroup id over the limit",
        "PUT",
        "/v2/groups/g",
        body_of({"groups": [{"id": "s" * 300}]}),
        JSON,
        422,
        "/groups(0)/id",
    ),
    ("an invalid id in PUT /v2/apps/{id}", "PUT", "/v2/apps/Bad_Id", body_of({"cmd": "x"}), JSON, 422, "/id"),
    ("a PUT creating an id over the limit", "PUT", "/v2/apps/" + "a" * 300, body_of({"cmd": "x"}), JSON, 422, "/id"),
    # Content types a cross-site form can send (Marathon answers 415 unless the body is JSON).
    ("POST /v2/apps as text/plain", "POST", "/v2/apps", body_of(app()), "text/plain", 415, "Content-Type"),
    (
        "POST /v2/apps as a form",
        "POST",
        "/v2/apps",
        b"id=x&cmd=y",
        "application/x-www-form-urlencoded",
        415,
        "Content-Type",
    ),
    (
        "POST /v2/apps as multipart",
        "POST",
        "/v2/apps",
        body_of(app()),
        "multipart/form-data; boundary=x",
        415,
        "Content-Type",
    ),
    ("POST /v2/apps without a Content-Type", "POST", "/v2/apps", body_of(app()), None, 415, "Content-Type"),
    (
        "PUT /v2/apps/keep as text/plain",
        "PUT",
        "/v2/apps/keep",
        body_of({"instances": 3}),
        "text/plain",
        415,
        "Content-Type",
    ),
    ("PUT /v2/apps as text/plain", "PUT", "/v2/apps", body_of([app()]), "text/plain", 415, "Content-Type"),
    (
        "POST /v2/groups as text/plain",
        "POST",
        "/v2/groups",
        body_of({"id": "g", "apps": [app()]}),
        "text/plain",
        415,
        "Content-Type",
    ),
    ("POST restart as text/plain", "POST", "/v2/apps/keep/restart", b"", "text/plain", 415, "Content-Type"),
    (
        "POST /v2/tasks/delete as a form",
        "POST",
        "/v2/tasks/delete",
        b"ids=x",
        "application/x-www-form-urlencoded",
        415,
        "Content-Type",
    ),
    ("DELETE /v2/apps/keep as text/plain", "DELETE", "/v2/apps/keep", b"", "text/plain", 415, "Content-Type"),
    # Wrong-typed input on every route that takes a body.
    ("an app that is an array", "POST", "/v2/apps", body_of([app()]), JSON, 422, "JSON object"),
    ("an app that is null", "POST", "/v2/apps", b"null", JSON, 422, "JSON object"),
    ("an update that is a string", "PATCH", "/v2/apps/keep", body_of("x"), JSON, 422, "JSON object"),
    ("an update that is a number", "PUT", "/v2/apps/keep", b"5", JSON, 422, "JSON object"),
    ("a list update that is an object", "PUT", "/v2/apps", body_of(app()), JSON, 422, "array"),
    ("a list update with a number", "PUT", "/v2/apps", body_of([5]), JSON, 422, "/(0)/id"),
    ("a list update with an id of the wrong type", "PUT", "/v2/apps", body_of([{"id": [1]}]), JSON, 422, "/(0)/id"),
    ("task ids that are numbers", "POST", "/v2/tasks/delete", body_of({"ids": [1]}), JSON, 422, "/ids"),
    ("task ids that are an object", "POST", "/v2/tasks/delete", body_of({"ids": {"a": 1}}), JSON, 422, "/ids"),
    ("a task-kill body that is an array", "POST", "/v2/tasks/delete", body_of([1]), JSON, 422, "/ids"),
    ("an empty body", "POST", "/v2/apps", b"", JSON, 400, "Invalid JSON"),
    ("a field of the wrong type", "PUT", "/v2/apps/keep", body_of({"instances": "3"}), JSON, 422, "/instances"),
    (
        "constraints of the wrong type",
        "PUT",
        "/v2/apps/keep",
        body_of({"constraints": [[1, 2]]}),
        JSON,
        422,
        "/constraints(0)",
    ),
    (
        "an env secret of the wrong type",
        "PUT",
        "/v2/apps/keep",
        body_of({"env": {"S": {"secret": 5}}}),
        JSON,
        422,
        "/env/S/secret",
    ),
    # Paths and query strings.
    ("a NUL in an app id", "GET", "/v2/apps/%00", None, None, 404, "does not exist"),
    ("a NUL in a group id", "GET", "/v2/groups/%00", None, None, 404, "does not exist"),
    ("a NUL in a deployment id", "DELETE", "/v2/deployments/%00", None, None, 404, "does not exist"),
    ("a NUL in a queue delay", "DELETE", "/v2/queue/%00/delay", None, None, 404, "does not exist"),
    ("a version that does not exist", "GET", "/v2/apps/keep/versions/%00", None, None, 404, "does not exist"),
    ("a task of another app", "DELETE", "/v2/apps/keep/tasks/%00", None, None, 404, "does not exist"),
    # Versions are looked up in ZooKeeper: one of 2 MB must never become a ZooKeeper request.
    ("a version of 2 MB", "GET", "/v2/apps/keep/versions/" + "1" * 2_000_000, None, None, 404, "does not exist"),
    (
        "a rollback to a version of 2 MB",
        "PUT",
        "/v2/apps/keep",
        body_of({"version": "1" * 2_000_000}),
        JSON,
        422,
        "/version",
    ),
    (
        "a rollback to a version that is a number",
        "PUT",
        "/v2/apps/keep",
        body_of({"version": 5}),
        JSON,
        422,
        "/version",
    ),
]


def test_hostile_requests_get_a_clear_4xx_and_change_nothing(service):
    # Something stored that the refused requests must leave alone: an app in a group, and a group.
    assert http("POST", service.url("/v2/apps"), app("/prod/keep-me"))[0] == 201
    assert http("POST", service.url("/v2/apps"), app("keep", labels={"a": "b"}))[0] == 201
    assert http("POST", service.url("/v2/groups"), {"id": "empty"})[0] == 201
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 20, what="the deployments to finish")
    before = stored_state(service)
    versions_before = http("GET", service.url("/v2/apps/keep/versions"))[2]
    failures = []
    cases = list(HOSTILE_REQUESTS)
    for description, definition, path in OUT_OF_RANGE_DEFINITIONS:
        body = (
            body_of(definition)
            if definition is not None
            else b'{"id": "x", "cmd": "x", "taskKillGracePeriodSeconds": 1e400}'
        )
        cases.append((description, "POST", "/v2/apps", body, JSON, 422, path))
    for description, method, path, body, content_type, expected, text in cases:
        status, answer = send(service, method, path, body, content_type)
        shown = answer if isinstance(answer, str) else json.dumps(answer)
        if status != expected or text not in shown[:2000]:
            failures.append(
                f"{description}: {method} {path[:60]} -> {status} {shown[:300]} (expected {expected}, '{text}')"
            )
        if stored_state(service) != before:
            failures.append(f"{description}: the stored apps or groups changed")
            before = stored_state(service)
    assert not failures, "\n".join(failures)
    assert http("GET", service.url("/v2/apps/keep/versions"))[2] == versions_before
    # The service is alive and still takes a valid change.
    assert http("PUT", service.url("/v2/apps/keep"), {"instances": 0, "labels": {"a": "c"}})[0] == 200


def test_the_largest_record_is_set_by_zk_max_node_size(zookeeper, launcher):
    service = start_marathon(
        launcher, f"127.0.0.1:{free_port()}", zookeeper.url("/marathon"), "--zk_max_node_size=20000"
    )
    assert http("GET", service.url("/v2/info"))[2]["zookeeper_config"]["zk_max_node_size"] == 20000
    status, _, answer = http("POST", service.url("/v2/apps"), app("small", labels={"x": "y" * 30_000}))
    assert status == 422, answer
    assert answer["message"] == "Object is not valid"
    assert "App '/small' would be stored as" in answer["details"][0]["errors"][0]
    assert "20000 bytes" in answer["details"][0]["errors"][0]
    assert http("POST", service.url("/v2/apps"), app("small", labels={"x": "y" * 5_000}))[0] == 201
    # An update stores the original and the new definition in its deployment: both must fit.
    status, _, answer = http("PUT", service.url("/v2/apps/small?force=true"), {"labels": {"x": "z" * 16_000}})
    assert status == 422 and "deployment" in answer["details"][0]["errors"][0], answer
    assert http("GET", service.url("/v2/apps/small"))[2]["app"]["labels"] == {"x": "y" * 5_000}


def test_clients_that_send_json_still_work(service):
    """marathon-python and the README's curl (`-H 'Content-Type: application/json'`) send JSON."""
    client = marathon_python.MarathonClient(service.url())
    client.create_app("/client/app", marathon_python.MarathonApp(cmd="sleep 100", instances=0))
    wait_for(lambda: client.list_deployments() == [], 20, what="the deployment to finish")
    assert client.restart_app("/client/app")["deploymentId"]
    wait_for(lambda: client.list_deployments() == [], 20, what="the restart to finish")
    assert client.scale_app("/client/app", instances=0, force=True)["deploymentId"]
    assert client.kill_tasks("/client/app") == []
    assert client.delete_app("/client/app", force=True)["deploymentId"]
    assert send(service, "POST", "/v2/apps", body_of(app("curl")), "application/json; charset=utf-8")[0] == 201
    wait_for(lambda: http("GET", service.url("/v2/deployments"))[2] == [], 20, what="the deployment to finish")
    # A bodyless request without any Content-Type (curl -X POST .../restart, curl -X DELETE) is not a form.
    assert send(service, "POST", "/v2/apps/curl/restart", None, None)[0] == 200
    assert send(service, "DELETE", "/v2/apps/curl?force=true", None, None)[0] == 200


async def _store_apps_directly(zk_url: str, app_ids: list[str]) -> None:
    """Apps as an older Marathon stored them, before ids were limited (bypassing every check)."""
    session = ZooKeeperSession(parse_zookeeper_url(zk_url), session_timeout=5)
    await session.start()
    try:
        storage = MarathonStorage(ZooKeeperStore(session, session.url.child("state")))
        for app_id in app_ids:
            record = normalize_app(app("placeholder"))
            stamp = now_timestamp()
            record |= {
                "id": app_id,
                "version": stamp,
                "versionInfo": {"lastScalingAt": stamp, "lastConfigChangeAt": stamp},
            }
            await storage.save_app(record)
    finally:
        await session.stop()


def test_apps_stored_with_ids_over_the_limits_can_still_be_deleted(zookeeper, launcher):
    long_id = "/" + "a" * 300_000
    deep_id = "/" + "/".join(["d"] * 3000)
    zk_url = zookeeper.url("/marathon")
    asyncio.run(_store_apps_directly(zk_url, [long_id, deep_id]))
    service = start_marathon(launcher, f"127.0.0.1:{free_port()}", zk_url)
    ids = {a["id"] for a in http("GET", service.url("/v2/apps"))[2]["apps"]}
    assert ids == {long_id, deep_id}
    assert http("GET", service.url("/v2/groups"))[0] == 200
    assert send(service, "DELETE", f"/v2/apps{long_id}", None, None)[0] == 200
    assert send(service, "DELETE", f"/v2/apps{deep_id}", None, None)[0] == 200
    wait_for(lambda: http("GET", service.url("/v2/apps"))[2]["apps"] == [], 60, what="both apps to go")
