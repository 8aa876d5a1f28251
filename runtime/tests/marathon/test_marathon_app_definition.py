"""App definitions: Marathon's defaults, the reference nginx.json, and a table of invalid definitions."""

from __future__ import annotations

import pytest
from app_definitions import INVALID_DEFINITIONS, REFERENCE_NGINX

from mesolite.marathon.app_definition import ValidationError, merge_update, normalize_app
from mesolite.marathon.paths import PathError, canonical_path, task_id_prefix


def test_reference_nginx_json_is_accepted_with_unique_constraint():
    app = normalize_app(REFERENCE_NGINX)
    assert app["id"] == "/nginx"
    assert app["constraints"] == [["hostname", "UNIQUE"]]
    assert app["container"]["docker"]["network"] == "BRIDGE"
    assert app["container"]["portMappings"][0]["containerPort"] == 80
    assert app["portDefinitions"] == []


def test_defaults_are_marathons():
    app = normalize_app({"id": "/sleep", "cmd": "sleep 100"})
    assert (app["cpus"], app["mem"], app["disk"], app["instances"]) == (1.0, 128.0, 0.0, 1)
    assert app["upgradeStrategy"] == {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    assert (app["backoffSeconds"], app["backoffFactor"], app["maxLaunchDelaySeconds"]) == (1, 1.15, 300)
    assert app["portDefinitions"] == [{"port": 0, "protocol": "tcp", "labels": {}}]
    assert app["killSelection"] == "YOUNGEST_FIRST"
    assert app["requirePorts"] is False


def test_health_check_defaults():
    app = normalize_app({"id": "web", "cmd": "x", "healthChecks": [{"protocol": "TCP"}]})
    assert app["healthChecks"][0] == {
        "protocol": "TCP",
        "gracePeriodSeconds": 300,
        "intervalSeconds": 60,
        "timeoutSeconds": 20,
        "maxConsecutiveFailures": 3,
        "delaySeconds": 15,
        "ignoreHttp1xx": False,
        "portIndex": 0,
    }
    http = normalize_app({"id": "web", "cmd": "x", "healthChecks": [{}]})["healthChecks"][0]
    assert (http["protocol"], http["path"]) == ("HTTP", "/")


def test_legacy_ports_become_port_definitions():
    app = normalize_app({"id": "web", "cmd": "x", "ports": [0, 0]})
    assert [d["port"] for d in app["portDefinitions"]] == [0, 0]


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("web", "/", "/web"),
        ("/prod/web", "/", "/prod/web"),
        ("web", "/prod", "/prod/web"),
        ("../db", "/prod/web", "/prod/db"),
        ("./a.b-c", "/", "/a.b-c"),
        ("/prod/web/", "/", "/prod/web"),
    ],
)
def test_path_ids_resolve(raw, base, expected):
    assert canonical_path(raw, base) == expected


@pytest.mark.parametrize("raw", ["Web", "a_b", "-a", "a-", "a..b", "a/B/c", "", "..", "a b", "a.-b"])
def test_bad_path_ids_are_refused(raw):
    with pytest.raises(PathError):
        canonical_path(raw)


def test_task_ids_encode_the_app_id():
    assert task_id_prefix("/prod/web") == "prod_web"


def test_partial_update_keeps_other_fields_and_switches_cmd_to_args():
    current = normalize_app({"id": "web", "cmd": "x", "instances": 2, "env": {"A": "1"}})
    merged = normalize_app(merge_update(current, {"args": ["y"]}), app_id="/web")
    assert (merged["cmd"], merged["args"], merged["instances"], merged["env"]) == (None, ["y"], 2, {"A": "1"})


# (description, the definition, the path the 422 must name)


@pytest.mark.parametrize(
    ("raw", "path"), [(raw, path) for _, raw, path in INVALID_DEFINITIONS], ids=[d for d, *_ in INVALID_DEFINITIONS]
)
def test_invalid_definition_names_the_field(raw, path):
    with pytest.raises(ValidationError) as caught:
        normalize_app(raw)
    body = caught.value.to_json()
    assert body["message"] == "Object is not valid"
    assert path in [detail["path"] for detail in body["details"]], body
    assert all(
        detail["errors"] and all(isinstance(e, str) and e for e in detail["errors"]) for detail in body["details"]
    )


def test_at_least_forty_invalid_definitions_are_covered():
    assert len(INVALID_DEFINITIONS) >= 40


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        normalize_app({"id": "web", "cmd": "x", "instances": -1, "cpus": "a", "mem": -5})
    assert {d["path"] for d in caught.value.details()} == {"/instances", "/cpus", "/mem"}


def test_id_in_body_must_match_the_url():
    with pytest.raises(ValidationError) as caught:
        normalize_app({"id": "/other", "cmd": "x"}, app_id="/web")
    assert caught.value.details()[0]["path"] == "/id"


def test_marathon_1_5_networks_choose_the_docker_network():
    app = normalize_app(
        {
            "id": "web",
            "networks": [{"mode": "container/bridge"}],
            "container": {"type": "DOCKER", "docker": {"image": "nginx"}, "portMappings": [{"containerPort": 80}]},
        }
    )
    assert app["container"]["docker"]["network"] == "BRIDGE"
    assert app["container"]["portMappings"][0]["hostPort"] == 0
