"""App definitions the Marathon tests share: the reference nginx.json, a Docker container, and a table of invalid
definitions with the field each error must name."""

from __future__ import annotations

REFERENCE_NGINX = {
    "id": "nginx",
    "cpus": 0.2,
    "mem": 32.0,
    "instances": 1,
    "constraints": [["hostname", "UNIQUE", ""]],
    "container": {
        "type": "DOCKER",
        "docker": {
            "image": "nginx",
            "network": "BRIDGE",
            "portMappings": [{"containerPort": 80, "hostPort": 0, "servicePort": 0, "protocol": "tcp"}],
        },
    },
}

DOCKER = {"type": "DOCKER", "docker": {"image": "nginx", "network": "BRIDGE"}}

INVALID_DEFINITIONS = [
    ("not an object", ["id", "x"], "/"),
    ("missing id", {"cmd": "x"}, "/id"),
    ("uppercase id", {"id": "Web", "cmd": "x"}, "/id"),
    ("underscore id", {"id": "my_app", "cmd": "x"}, "/id"),
    ("id ending in hyphen", {"id": "web-", "cmd": "x"}, "/id"),
    ("id is the root", {"id": "/", "cmd": "x"}, "/id"),
    ("id is a number", {"id": 12, "cmd": "x"}, "/id"),
    ("id above the root", {"id": "../../x", "cmd": "x"}, "/id"),
    ("no cmd, args or container", {"id": "web"}, "/"),
    ("cmd and args", {"id": "web", "cmd": "x", "args": ["y"]}, "/"),
    ("empty cmd", {"id": "web", "cmd": "  "}, "/cmd"),
    ("args not strings", {"id": "web", "args": ["a", 1]}, "/args(1)"),
    ("negative instances", {"id": "web", "cmd": "x", "instances": -1}, "/instances"),
    ("fractional instances", {"id": "web", "cmd": "x", "instances": 1.5}, "/instances"),
    ("string instances", {"id": "web", "cmd": "x", "instances": "3"}, "/instances"),
    ("boolean instances", {"id": "web", "cmd": "x", "instances": True}, "/instances"),
    ("negative cpus", {"id": "web", "cmd": "x", "cpus": -0.5}, "/cpus"),
    ("string mem", {"id": "web", "cmd": "x", "mem": "lots"}, "/mem"),
    ("negative disk", {"id": "web", "cmd": "x", "disk": -1}, "/disk"),
    ("fractional gpus", {"id": "web", "cmd": "x", "gpus": 0.5}, "/gpus"),
    ("env value not a string", {"id": "web", "cmd": "x", "env": {"A": 1}}, "/env/A"),
    ("env not an object", {"id": "web", "cmd": "x", "env": ["A=1"]}, "/env"),
    ("label value not a string", {"id": "web", "cmd": "x", "labels": {"a": True}}, "/labels/a"),
    ("unknown operator", {"id": "web", "cmd": "x", "constraints": [["hostname", "SPREAD"]]}, "/constraints(0)"),
    ("UNIQUE with a value", {"id": "web", "cmd": "x", "constraints": [["hostname", "UNIQUE", "x"]]}, "/constraints(0)"),
    ("LIKE with a bad regex", {"id": "web", "cmd": "x", "constraints": [["rack", "LIKE", "["]]}, "/constraints(0)"),
    ("LIKE without a value", {"id": "web", "cmd": "x", "constraints": [["rack", "LIKE"]]}, "/constraints(0)"),
    ("MAX_PER not a number", {"id": "web", "cmd": "x", "constraints": [["rack", "MAX_PER", "two"]]}, "/constraints(0)"),
    ("GROUP_BY not a number", {"id": "web", "cmd": "x", "constraints": [["rack", "GROUP_BY", "x"]]}, "/constraints(0)"),
    ("IS without a value", {"id": "web", "cmd": "x", "constraints": [["rack", "IS"]]}, "/constraints(0)"),
    ("constraint too short", {"id": "web", "cmd": "x", "constraints": [["hostname"]]}, "/constraints(0)"),
    ("constraints not a list", {"id": "web", "cmd": "x", "constraints": "hostname:UNIQUE"}, "/constraints"),
    ("docker without image", {"id": "web", "container": {"type": "DOCKER", "docker": {}}}, "/container/docker/image"),
    ("docker missing", {"id": "web", "container": {"type": "DOCKER"}}, "/container/docker"),
    ("unknown container type", {"id": "web", "cmd": "x", "container": {"type": "RKT"}}, "/container/type"),
    (
        "unknown network",
        {"id": "web", "container": {"type": "DOCKER", "docker": {"image": "n", "network": "OVERLAY"}}},
        "/container/docker/network",
    ),
    (
        "port mappings with host networking",
        {
            "id": "web",
            "container": {"type": "DOCKER", "docker": {"image": "n", "network": "HOST"}, "portMappings": [{}]},
        },
        "/container/portMappings",
    ),
    (
        "container port out of range",
        {"id": "web", "container": {**DOCKER, "portMappings": [{"containerPort": 70000}]}},
        "/container/portMappings(0)/containerPort",
    ),
    (
        "negative host port",
        {"id": "web", "container": {**DOCKER, "portMappings": [{"containerPort": 80, "hostPort": -1}]}},
        "/container/portMappings(0)/hostPort",
    ),
    (
        "bad port mapping protocol",
        {"id": "web", "container": {**DOCKER, "portMappings": [{"containerPort": 80, "protocol": "sctp"}]}},
        "/container/portMappings(0)/protocol",
    ),
    (
        "duplicate service ports",
        {"id": "web", "container": {**DOCKER, "portMappings": [{"servicePort": 10001}, {"servicePort": 10001}]}},
        "/container/portMappings(1)/servicePort",
    ),
    (
        "privileged not a boolean",
        {"id": "web", "container": {"type": "DOCKER", "docker": {"image": "n", "privileged": "yes"}}},
        "/container/docker/privileged",
    ),
    ("port out of range", {"id": "web", "cmd": "x", "portDefinitions": [{"port": 65536}]}, "/portDefinitions(0)/port"),
    (
        "bad port name",
        {"id": "web", "cmd": "x", "portDefinitions": [{"port": 0, "name": "HTTP_1"}]},
        "/portDefinitions(0)/name",
    ),
    (
        "duplicate port names",
        {"id": "web", "cmd": "x", "portDefinitions": [{"name": "a"}, {"name": "a"}]},
        "/portDefinitions(1)/name",
    ),
    ("ports not a list", {"id": "web", "cmd": "x", "ports": 8080}, "/ports"),
    (
        "portDefinitions not a list, with ports",
        {"id": "web", "cmd": "x", "portDefinitions": 1, "ports": [80]},
        "/portDefinitions",
    ),
    ("requirePorts with port 0", {"id": "web", "cmd": "x", "requirePorts": True}, "/requirePorts"),
    (
        "unknown health check protocol",
        {"id": "web", "cmd": "x", "healthChecks": [{"protocol": "UDP"}]},
        "/healthChecks(0)/protocol",
    ),
    (
        "health check portIndex out of range",
        {"id": "web", "cmd": "x", "healthChecks": [{"protocol": "TCP", "portIndex": 3}]},
        "/healthChecks(0)/portIndex",
    ),
    (
        "zero interval",
        {"id": "web", "cmd": "x", "healthChecks": [{"intervalSeconds": 0}]},
        "/healthChecks(0)/intervalSeconds",
    ),
    (
        "negative max failures",
        {"id": "web", "cmd": "x", "healthChecks": [{"maxConsecutiveFailures": -1}]},
        "/healthChecks(0)/maxConsecutiveFailures",
    ),
    (
        "path on a TCP check",
        {"id": "web", "cmd": "x", "healthChecks": [{"protocol": "TCP", "path": "/"}]},
        "/healthChecks(0)/path",
    ),
    (
        "COMMAND check without command",
        {"id": "web", "cmd": "x", "healthChecks": [{"protocol": "COMMAND"}]},
        "/healthChecks(0)/command",
    ),
    (
        "negative grace period",
        {"id": "web", "cmd": "x", "healthChecks": [{"gracePeriodSeconds": -5}]},
        "/healthChecks(0)/gracePeriodSeconds",
    ),
    (
        "minimumHealthCapacity above 1",
        {"id": "web", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 1.5}},
        "/upgradeStrategy/minimumHealthCapacity",
    ),
    (
        "negative maximumOverCapacity",
        {"id": "web", "cmd": "x", "upgradeStrategy": {"maximumOverCapacity": -0.1}},
        "/upgradeStrategy/maximumOverCapacity",
    ),
    ("negative backoff", {"id": "web", "cmd": "x", "backoffSeconds": -1}, "/backoffSeconds"),
    ("backoff factor below 1", {"id": "web", "cmd": "x", "backoffFactor": 0.5}, "/backoffFactor"),
    (
        "max launch delay below backoff",
        {"id": "web", "cmd": "x", "backoffSeconds": 10, "maxLaunchDelaySeconds": 5},
        "/maxLaunchDelaySeconds",
    ),
    ("unknown kill selection", {"id": "web", "cmd": "x", "killSelection": "RANDOM"}, "/killSelection"),
    (
        "expunge before inactive",
        {"id": "web", "cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 10}},
        "/unreachableStrategy/expungeAfterSeconds",
    ),
    ("bad dependency", {"id": "web", "cmd": "x", "dependencies": ["Bad_Dep"]}, "/dependencies(0)"),
    ("fetch without uri", {"id": "web", "cmd": "x", "fetch": [{"extract": True}]}, "/fetch(0)/uri"),
    ("uris not strings", {"id": "web", "cmd": "x", "uris": [1]}, "/uris(0)"),
    ("misspelled field", {"id": "web", "cmd": "x", "instance": 2}, "/instance"),
    ("empty accepted roles", {"id": "web", "cmd": "x", "acceptedResourceRoles": []}, "/acceptedResourceRoles"),
    ("requirePorts not a boolean", {"id": "web", "cmd": "x", "requirePorts": "true"}, "/requirePorts"),
]
