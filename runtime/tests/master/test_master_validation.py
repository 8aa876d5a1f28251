"""`mesolite.master.validation`: every field of a v1 call checked as protobuf would parse it, Mesos's id rules.

Pure unit tests, table-driven: a call, and the field path the refusal must name.
"""

from __future__ import annotations

import copy

import pytest

from mesolite.master.validation import (
    CallError,
    id_problem,
    task_problem,
    task_resources,
    validate_agent_call,
    validate_agent_subscription,
    validate_call,
    validate_subscribe,
)
from mesolite.resources import Resources, parse_resources

FRAMEWORK = {"value": "f-0000"}
TASK = {
    "name": "web",
    "task_id": {"value": "web-1"},
    "agent_id": {"value": "a-S0"},
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31000}]}},
    ],
    "command": {"value": "sleep 1", "shell": True, "environment": {"variables": [{"name": "A", "value": "b"}]}},
    "container": {
        "type": "DOCKER",
        "docker": {
            "image": "nginx",
            "network": "BRIDGE",
            "port_mappings": [{"host_port": 31000, "container_port": 80}],
        },
        "volumes": [{"container_path": "/data", "host_path": "/srv", "mode": "RW"}],
    },
    "kill_policy": {"grace_period": {"nanoseconds": 5_000_000_000}},
    "health_check": {"type": "HTTP", "http": {"port": 80, "path": "/"}, "interval_seconds": 1},
    "labels": {"labels": [{"key": "k", "value": "v"}]},
}
ACCEPT = {
    "type": "ACCEPT",
    "framework_id": FRAMEWORK,
    "accept": {
        "offer_ids": [{"value": "o-1"}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [TASK, copy.deepcopy(TASK)]}}],
        "filters": {"refuse_seconds": 5},
    },
}


def changed(call: dict, path: tuple, value) -> dict:
    """A deep copy of `call` with the value at `path` (keys and list indexes) replaced (or deleted if ...)."""
    result = copy.deepcopy(call)
    target = result
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return result


TASK_PATH = ("accept", "operations", 0, "launch", "task_infos", 1)
BAD_CALLS = [
    # (call, what the refusal must say)
    ({"type": []}, "Unknown call type 'an array'"),
    ({"type": "DANCE"}, "Unknown call type 'DANCE'"),
    ({}, "Expecting 'type' to be present"),
    ({"type": "REVIVE"}, "Expecting 'framework_id' to be present"),
    ({"type": "REVIVE", "framework_id": []}, "framework_id: expected an object, got an array"),
    ({"type": "REVIVE", "framework_id": {}}, "framework_id.value: required field missing"),
    ({"type": "ACCEPT", "framework_id": FRAMEWORK}, "Expecting 'accept' to be present"),
    (changed(ACCEPT, ("accept", "offer_ids"), "x"), "accept.offer_ids: expected an array"),
    (changed(ACCEPT, ("accept", "offer_ids", 0), {"value": 1}), "accept.offer_ids[0].value: expected a string"),
    (changed(ACCEPT, ("accept", "operations"), [1]), "accept.operations[0]: expected an object"),
    (changed(ACCEPT, ("accept", "operations", 0, "launch"), [1]), "accept.operations[0].launch: expected an object"),
    (changed(ACCEPT, ("accept", "operations", 0, "type"), "MELT"), "accept.operations[0].type: unknown value 'MELT'"),
    (changed(ACCEPT, ("accept", "operations", 0, "type"), "RESERVE"), "'RESERVE' is not supported"),
    (
        changed(ACCEPT, (*TASK_PATH, "container"), "x"),
        "accept.operations[0].launch.task_infos[1].container: expected an object",
    ),
    (changed(ACCEPT, (*TASK_PATH, "resources"), 5), "task_infos[1].resources: expected an array"),
    (changed(ACCEPT, (*TASK_PATH, "resources", 0), 5), "task_infos[1].resources[0]: expected an object"),
    (
        changed(ACCEPT, (*TASK_PATH, "resources", 0, "scalar", "value"), "1"),
        "resources[0].scalar.value: expected a number",
    ),
    (changed(ACCEPT, (*TASK_PATH, "resources", 0, "type"), "HEAP"), "resources[0].type: unknown value 'HEAP'"),
    (
        changed(ACCEPT, (*TASK_PATH, "resources", 2, "ranges", "range", 0, "begin"), -1),
        "range[0].begin: -1 is out of range",
    ),
    (
        changed(ACCEPT, (*TASK_PATH, "kill_policy", "grace_period", "nanoseconds"), [1]),
        "kill_policy.grace_period.nanoseconds: expected an integer",
    ),
    (
        changed(ACCEPT, (*TASK_PATH, "kill_policy", "grace_period", "nanoseconds"), "1e300"),
        "nanoseconds: expected an integer",
    ),
    (
        changed(ACCEPT, (*TASK_PATH, "kill_policy", "grace_period", "nanoseconds"), 2**64),
        "nanoseconds: 18446744073709551616 is out of range",
    ),
    (changed(ACCEPT, (*TASK_PATH, "command", "shell"), "yes"), "command.shell: expected a boolean"),
    (
        changed(ACCEPT, (*TASK_PATH, "command", "environment", "variables"), {"A": "b"}),
        "environment.variables: expected an array",
    ),
    (
        changed(ACCEPT, (*TASK_PATH, "container", "docker", "port_mappings", 0, "host_port"), "x"),
        "port_mappings[0].host_port: expected an integer",
    ),
    (
        changed(ACCEPT, (*TASK_PATH, "container", "docker", "image"), ...),
        "container.docker.image: required field missing",
    ),
    (changed(ACCEPT, (*TASK_PATH, "container", "volumes", 0, "mode"), "RWX"), "volumes[0].mode: unknown value 'RWX'"),
    (
        changed(ACCEPT, (*TASK_PATH, "health_check", "interval_seconds"), True),
        "health_check.interval_seconds: expected a number",
    ),
    (changed(ACCEPT, (*TASK_PATH, "labels", "labels", 0), "k=v"), "labels.labels[0]: expected an object"),
    (changed(ACCEPT, (*TASK_PATH, "name"), ...), "task_infos[1].name: required field missing"),
    (changed(ACCEPT, (*TASK_PATH, "data"), "!!"), "task_infos[1].data: '!!' is not base64"),
    (
        changed(ACCEPT, ("accept", "filters", "refuse_seconds"), "soon"),
        "accept.filters.refuse_seconds: expected a number",
    ),
    (
        changed(
            ACCEPT,
            ("accept", "operations"),
            [{"type": "LAUNCH_GROUP", "launch_group": {"executor": 1, "task_group": {}}}],
        ),
        "accept.operations[0].launch_group.executor: expected an object",
    ),
    (
        changed(ACCEPT, ("accept", "operations"), [{"type": "LAUNCH_GROUP"}]),
        "accept.operations[0].launch_group: required field missing",
    ),
    ({"type": "KILL", "framework_id": FRAMEWORK, "kill": []}, "kill: expected an object"),
    ({"type": "KILL", "framework_id": FRAMEWORK, "kill": {}}, "kill.task_id: required field missing"),
    ({"type": "DECLINE", "framework_id": FRAMEWORK, "decline": {"filters": 3}}, "decline.filters: expected an object"),
    ({"type": "REVIVE", "framework_id": FRAMEWORK, "revive": {"roles": "web"}}, "revive.roles: expected an array"),
    (
        {"type": "RECONCILE", "framework_id": FRAMEWORK, "reconcile": {"tasks": [{}]}},
        "reconcile.tasks[0].task_id: required field missing",
    ),
    (
        {
            "type": "ACKNOWLEDGE",
            "framework_id": FRAMEWORK,
            "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "!!"},
        },
        "acknowledge.uuid: '!!' is not base64",
    ),
    (
        {
            "type": "MESSAGE",
            "framework_id": FRAMEWORK,
            "message": {"agent_id": {"value": "a"}, "executor_id": {"value": "e"}, "data": 5},
        },
        "message.data",
    ),
    ({"type": "SUBSCRIBE", "subscribe": []}, "subscribe: expected an object"),
    (
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": 3}}},
        "subscribe.framework_info.name: expected a string",
    ),
    (
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n", "failover_timeout": "1w"}}},
        "failover_timeout: expected a number",
    ),
    (
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n", "capabilities": [3]}}},
        "capabilities[0]: expected an object",
    ),
]


@pytest.mark.parametrize(("call", "complaint"), BAD_CALLS)
def test_a_malformed_call_is_refused_naming_the_field(call, complaint):
    with pytest.raises(CallError) as refused:
        validate_call(call)
    assert refused.value.status == 400
    assert complaint in refused.value.message


@pytest.mark.parametrize(
    "call",
    [
        ACCEPT,
        {"type": "TEARDOWN", "framework_id": FRAMEWORK},
        {"type": "REVIVE", "framework_id": FRAMEWORK, "revive": {"roles": ["web"]}},
        {
            "type": "DECLINE",
            "framework_id": FRAMEWORK,
            "decline": {"offer_ids": [], "filters": {"refuse_seconds": 1.5}},
        },
        {"type": "RECONCILE", "framework_id": FRAMEWORK, "reconcile": {"tasks": []}},
        {
            "type": "KILL",
            "framework_id": FRAMEWORK,
            "kill": {"task_id": {"value": "t"}, "kill_policy": {"grace_period": {"nanoseconds": "100"}}},
        },
        # Unknown fields are ignored and null is an unset field, as stout's JSON parser has them.
        {"type": "SUPPRESS", "framework_id": FRAMEWORK, "suppress": None, "future_field": [1, {"x": 2}]},
        changed(ACCEPT, (*TASK_PATH, "kill_policy"), None),
        {
            "type": "SUBSCRIBE",
            "subscribe": {"framework_info": {"user": "u", "name": "n", "capabilities": [{"type": "SOMETHING_NEW"}]}},
        },
    ],
)
def test_well_formed_calls_pass(call):
    assert validate_call(call) == call["type"]


def test_subscribe_rules():
    info = {"user": "u", "name": "n", "id": {"value": "f-1"}}
    assert validate_subscribe({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}) == (info, "f-1")
    for call, complaint in [
        ({"type": "SUBSCRIBE", "framework_id": {"value": "other"}, "subscribe": {"framework_info": info}}, "differs"),
        (
            {"type": "SUBSCRIBE", "subscribe": {"framework_info": {**info, "id": {"value": "a/b"}}}},
            "Invalid framework id",
        ),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {**info, "failover_timeout": -1}}}, "non-negative"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {**info, "roles": ["a"]}}}, "MULTI_ROLE"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {**info, "role": "a b"}}}, "Invalid role"),
    ]:
        with pytest.raises(CallError, match=complaint):
            validate_subscribe(call)


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("", "must not be empty"),
        ("x" * 256, "greater than 255"),
        ("é" * 128, "greater than 255"),
        (".", "is disallowed"),
        ("..", "is disallowed"),
        ("a/b", "invalid characters"),
        ("a\\b", "invalid characters"),
        ("a\tb", "invalid characters"),
        ("a\x00b", "invalid characters"),
        ("a\x7f", "invalid characters"),
        ("a\u0085", "invalid characters"),
    ],
)
def test_ids_follow_mesos_rules(value, complaint):
    assert complaint in (id_problem(value) or "")


@pytest.mark.parametrize("value", ["x" * 255, "é" * 127, "web.1_2-3", "app:task", "ünïcödé"])
def test_good_ids(value):
    assert id_problem(value) is None


def test_task_rules():
    assert task_problem(TASK, "a-S0", known_task=False) is None
    assert "duplicate" in task_problem(TASK, "a-S0", known_task=True)
    assert "offer is for" in task_problem(TASK, "other", known_task=False)
    assert "at least one (but not both)" in task_problem({**TASK, "command": None}, "a-S0", known_task=False)
    executor = {"executor_id": {"value": ".."}, "command": {"value": "x"}}
    assert "Executor ID is invalid" in task_problem({**TASK, "command": None, "executor": executor}, "a-S0", False)
    negative = {**TASK, "kill_policy": {"grace_period": {"nanoseconds": -1}}}
    assert "non-negative" in task_problem(negative, "a-S0", known_task=False)


def test_task_resources():
    offered = parse_resources("cpus:1;mem:128;ports:[31000-31010]")
    used, problem = task_resources(TASK, offered)
    assert problem is None and used == Resources.from_protobuf_json(TASK["resources"])
    nothing = {
        **TASK,
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 0}},
        ],
    }
    assert task_resources(nothing, offered) == (None, "Task uses no resources")
    assert "more resources" in task_resources(TASK, parse_resources("cpus:0.1;mem:128;ports:[31000-31010]"))[1]
    executor = {
        "executor_id": {"value": "e"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
    }
    with_executor, problem = task_resources({**TASK, "command": None, "executor": executor}, offered)
    assert problem is None and with_executor.scalar("cpus") == 1.0


def test_agent_calls():
    update = {
        "framework_id": FRAMEWORK,
        "status": {"task_id": {"value": "t" * 300}, "state": "TASK_RUNNING", "uuid": "AAAA"},
    }
    assert validate_agent_call({"type": "STATUS_UPDATE", "status_update": update}) == "STATUS_UPDATE"
    assert validate_agent_call({"type": "PONG"}) == "PONG"
    for call, complaint in [
        ({"type": 1}, "Unknown agent call type"),
        ({"type": "STATUS_UPDATES", "status_updates": {}}, "status_updates: expected an array"),
        (
            {"type": "STATUS_UPDATE", "status_update": {"status": {"task_id": {"value": "t"}, "state": 3}}},
            "status_update.status.state",
        ),
        (
            {
                "type": "STATUS_UPDATE",
                "status_update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "timestamp": "now"}},
            },
            "timestamp",
        ),
    ]:
        with pytest.raises(CallError, match=complaint):
            validate_agent_call(call)
    info = {"hostname": "h", "port": 5051, "resources": []}
    validate_agent_subscription({"type": "REGISTER", "agent_info": info})
    for body, complaint in [
        ({"type": "REGISTER"}, "agent_info: required field missing"),
        ({"type": "REGISTER", "agent_info": {**info, "resources": 5}}, "agent_info.resources: expected an array"),
        ({"type": "REGISTER", "agent_info": {**info, "port": 2**40}}, "agent_info.port: 1099511627776 is out of range"),
        (
            {"type": "REREGISTER", "agent_info": info, "tasks": [{"task_id": 1}]},
            r"tasks\[0\].task_id: expected an object",
        ),
    ]:
        with pytest.raises(CallError, match=complaint):
            validate_agent_subscription(body)
