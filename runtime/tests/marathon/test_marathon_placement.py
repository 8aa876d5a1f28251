"""Constraints, ports, offer matching and the launch queue: pure logic, table-driven."""

from __future__ import annotations

import random

import pytest

from mesolite.marathon.app_definition import normalize_app
from mesolite.marathon.constraints import Constraint, Placement, parse_constraint, satisfies
from mesolite.marathon.launch_queue import LaunchQueue, OfferStatistics
from mesolite.marathon.matching import Launch, Mismatch, OfferResources, match
from mesolite.marathon.ports import assign_service_ports, pick_host_ports, task_environment

A1 = Placement("a", {"rack": "r1", "zone": "1"})
A2 = Placement("a", {"rack": "r1", "zone": "1"})
B1 = Placement("b", {"rack": "r2", "zone": "2"})
C1 = Placement("c", {"rack": "r2"})


@pytest.mark.parametrize(
    ("constraint", "candidate", "placed", "expected"),
    [
        (["hostname", "UNIQUE"], A1, [], True),
        (["hostname", "UNIQUE"], A1, [A2], False),
        (["hostname", "UNIQUE"], B1, [A2], True),
        (["hostname", "UNIQUE", ""], A1, [A2], False),
        (["rack", "UNIQUE"], C1, [B1], False),
        (["rack", "CLUSTER", "r1"], A1, [], True),
        (["rack", "CLUSTER", "r1"], B1, [], False),
        (["rack", "CLUSTER"], B1, [A1], False),
        (["rack", "CLUSTER"], A1, [A2], True),
        (["rack", "GROUP_BY"], A1, [A2], True),
        (["rack", "GROUP_BY"], A1, [A2, A2, B1], False),
        (["rack", "GROUP_BY"], A1, [A2, B1], True),
        (["rack", "GROUP_BY", "2"], A1, [A2], False),
        (["rack", "GROUP_BY", "2"], B1, [A2], True),
        (["hostname", "LIKE", "[ab]"], A1, [], True),
        (["hostname", "LIKE", "[ab]"], C1, [], False),
        (["hostname", "LIKE", "a"], Placement("ab"), [], False),
        (["hostname", "UNLIKE", "[ab]"], C1, [], True),
        (["hostname", "UNLIKE", "[ab]"], B1, [], False),
        (["zone", "UNLIKE", "1"], C1, [], True),
        (["zone", "LIKE", "1"], C1, [], False),
        (["rack", "MAX_PER", "2"], A1, [A2], True),
        (["rack", "MAX_PER", "2"], A1, [A2, A2], False),
        (["zone", "IS", "1"], A1, [], True),
        (["zone", "IS", "1.0"], A1, [], True),
        (["zone", "IS", "2"], A1, [], False),
        (["zone", "IS", "1"], C1, [], False),
    ],
)
def test_constraint_semantics(constraint, candidate, placed, expected):
    parsed, problem = parse_constraint(constraint)
    assert problem is None
    assert satisfies(parsed, candidate, placed) is expected


def test_reference_unique_with_empty_value_means_unique():
    parsed, _ = parse_constraint(["hostname", "UNIQUE", ""])
    assert parsed == Constraint("hostname", "UNIQUE", None)


def test_service_ports_lowest_free_and_stable_across_updates():
    first = assign_service_ports(normalize_app({"id": "a", "cmd": "x", "ports": [0, 0]}), used_elsewhere=[10000])
    assert [d["port"] for d in first["portDefinitions"]] == [10001, 10002]
    updated = assign_service_ports(
        normalize_app({"id": "a", "cmd": "y", "ports": [0, 0, 0]}), used_elsewhere=[10000], previous=first
    )
    assert [d["port"] for d in updated["portDefinitions"]] == [10001, 10002, 10003]


@pytest.mark.parametrize(
    ("requested", "available", "expected_length"),
    [
        ([0], [(31000, 31000)], 1),
        ([0, 0], [(31000, 31000)], None),
        ([31005], [(31000, 31010)], 1),
        ([80], [(31000, 32000)], None),
    ],
)
def test_host_ports_from_offer_ranges(requested, available, expected_length):
    picked = pick_host_ports(requested, available, random.Random(1))
    if expected_length is None:
        assert picked is None
    else:
        assert len(picked) == expected_length
        assert all(any(b <= p <= e for b, e in available) for p in picked)
        assert len(set(picked)) == len(picked)


def offer(hostname="a", cpus=4.0, mem=4096.0, ports=((31000, 31010),), attributes=()):
    return {
        "id": {"value": f"offer-{hostname}"},
        "agent_id": {"value": f"agent-{hostname}"},
        "hostname": hostname,
        "attributes": list(attributes),
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": "*"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": "*"},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": b, "end": e} for b, e in ports]},
                "role": "*",
            },
        ],
    }


def test_match_builds_a_command_task_with_environment():
    app = normalize_app({"id": "/web", "cmd": "python3 -m http.server $PORT0", "cpus": 0.5, "mem": 64, "ports": [0]})
    app["version"] = "2015-09-17T09:32:42.598Z"
    result = match(app, OfferResources.of(offer()), [])
    assert isinstance(result, Launch)
    info = result.task_info
    assert info["agent_id"] == {"value": "agent-a"}
    assert info["command"]["shell"] is True
    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert env["PORT0"] == str(result.host_ports[0]) == env["PORTS"] == env["PORT"]
    assert env["HOST"] == "a" and env["MESOS_TASK_ID"] == result.task_id
    assert env["MARATHON_APP_ID"] == "/web" and env["MARATHON_APP_VERSION"] == "2015-09-17T09:32:42.598Z"
    names = {r["name"]: r for r in info["resources"]}
    assert names["cpus"]["scalar"]["value"] == 0.5
    assert names["ports"]["ranges"]["range"] == [{"begin": result.host_ports[0], "end": result.host_ports[0]}]


def test_docker_bridge_task_has_port_mappings():
    app = normalize_app(
        {
            "id": "nginx",
            "cpus": 0.2,
            "mem": 32,
            "container": {
                "type": "DOCKER",
                "docker": {
                    "image": "nginx",
                    "network": "BRIDGE",
                    "portMappings": [{"containerPort": 80, "hostPort": 0, "name": "http"}],
                },
            },
        }
    )
    result = match(app, OfferResources.of(offer()), [])
    docker = result.task_info["container"]["docker"]
    assert result.task_info["container"]["type"] == "DOCKER"
    assert docker["network"] == "BRIDGE"
    assert docker["port_mappings"] == [{"host_port": result.host_ports[0], "container_port": 80, "protocol": "tcp"}]
    env = {v["name"]: v["value"] for v in result.task_info["command"]["environment"]["variables"]}
    assert env["PORT0"] == "80" and env["PORT_80"] == str(result.host_ports[0]) and env["PORT_HTTP"] == "80"
    assert "value" not in result.task_info["command"]


@pytest.mark.parametrize(
    ("app_fields", "the_offer", "label"),
    [
        ({"cpus": 2}, offer(cpus=1.5), "insufficient cpus"),
        ({"mem": 8192}, offer(), "insufficient mem"),
        ({"ports": [0, 0, 0]}, offer(ports=((31000, 31001),)), "insufficient ports"),
        ({"portDefinitions": [{"port": 80}], "requirePorts": True}, offer(), "unavailable ports 80"),
        ({"constraints": [["rack", "CLUSTER", "r9"]]}, offer(), "constraint rack:CLUSTER:r9"),
    ],
)
def test_mismatch_says_why(app_fields, the_offer, label):
    app = normalize_app({"id": "w", "cmd": "x", **app_fields})
    result = match(app, OfferResources.of(the_offer), [])
    assert isinstance(result, Mismatch)
    assert result.label == label


def test_one_offer_is_carved_into_several_tasks():
    app = normalize_app({"id": "w", "cmd": "x", "cpus": 1, "mem": 10, "ports": [0]})
    resources = OfferResources.of(offer(cpus=2.5))
    launches = [match(app, resources, []) for _ in range(3)]
    assert [type(result).__name__ for result in launches] == ["Launch", "Launch", "Mismatch"]
    assert launches[0].host_ports != launches[1].host_ports


def test_decline_summary_reads_like_a_sentence():
    statistics = OfferStatistics()
    for available in (1.5, 1.0, 1.5, 0.5, 1.0, 1.5, 1.0, 0.5):
        statistics.declined("insufficient cpus", need=2, available=available)
    for _ in range(4):
        statistics.declined("constraint hostname:UNIQUE")
    assert statistics.summary() == (
        "12 offers declined: 8 insufficient cpus (need 2, largest 1.5), 4 constraint hostname:UNIQUE"
    )


def test_backoff_grows_and_is_capped():
    queue = LaunchQueue()
    delays = [queue.note_failure("/a", 1, 2.0, 5) for _ in range(5)]
    assert delays == [1, 2, 4, 5, 5]
    queue.set_count("/a", 1)
    assert queue.ready() == []
    queue.reset_delay("/a")
    assert [entry.app_id for entry in queue.ready()] == ["/a"]


def test_environment_includes_named_ports_and_labels():
    app = normalize_app(
        {"id": "/g/web", "cmd": "x", "portDefinitions": [{"name": "http-api"}], "labels": {"team": "a"}}
    )
    env = task_environment(app, "g_web.1", "h", [31001])
    assert env["PORT_HTTP_API"] == "31001" and env["MARATHON_APP_LABEL_TEAM"] == "a"


def test_reject_funnel_follows_marathons_order():
    statistics = OfferStatistics()
    statistics.declined("constraint hostname:UNIQUE", offer={"id": {"value": "o1"}, "hostname": "a"})
    statistics.declined("insufficient cpus", need=2, available=1, offer={"id": {"value": "o2"}, "hostname": "b"})
    statistics.declined("insufficient cpus", need=2, available=1)
    funnel = {
        row["reason"]: (row["processed"], row["declined"]) for row in statistics.to_json()["rejectSummaryLastOffers"]
    }
    assert funnel["UnfulfilledConstraint"] == (3, 1)
    assert funnel["InsufficientCpus"] == (2, 2)
    assert funnel["InsufficientPorts"] == (0, 0)
    unused = statistics.last_unused_offers()
    assert [(u["offer"]["id"], u["reason"]) for u in unused] == [("o1", ["UnfulfilledConstraint"]),
                                                                   ("o2", ["InsufficientCpus"])]  # fmt: skip


def test_accepted_resource_roles_refuse_unreserved_offers():
    app = normalize_app({"id": "w", "cmd": "x", "acceptedResourceRoles": ["web"]})
    result = match(app, OfferResources.of(offer()), [])
    assert isinstance(result, Mismatch) and result.label.startswith("role not accepted")


def test_mesos_health_checks_travel_in_the_task_info():
    app = normalize_app(
        {
            "id": "w",
            "cmd": "x",
            "healthChecks": [{"protocol": "TCP"}, {"protocol": "COMMAND", "command": {"value": "true"}}],
        }
    )
    info = match(app, OfferResources.of(offer()), []).task_info
    assert info["health_check"]["type"] == "COMMAND" and info["health_check"]["command"]["value"] == "true"
    http_app = normalize_app({"id": "w", "cmd": "x", "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/ok"}]})
    launch = match(http_app, OfferResources.of(offer()), [])
    assert launch.task_info["health_check"]["http"] == {"port": launch.host_ports[0], "path": "/ok", "scheme": "http"}


def test_mesos_checks_of_bridge_apps_probe_the_container_port():
    def bridge_app(container_port: int) -> dict:
        return normalize_app(
            {
                "id": "web",
                "container": {
                    "type": "DOCKER",
                    "docker": {"image": "nginx", "network": "BRIDGE"},
                    "portMappings": [
                        {"containerPort": 9000, "hostPort": 0},
                        {"containerPort": container_port, "hostPort": 0},
                    ],
                },
                "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 1}],
            }
        )

    # Mesos probes from inside the container's network namespace: the container port, not the mapped one.
    launch = match(bridge_app(80), OfferResources.of(offer()), [])
    assert launch.task_info["health_check"]["http"]["port"] == 80
    # containerPort 0 means "the same as the host port".
    launch = match(bridge_app(0), OfferResources.of(offer()), [])
    assert launch.task_info["health_check"]["http"]["port"] == launch.host_ports[1]
