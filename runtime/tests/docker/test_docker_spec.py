"""From a DOCKER TaskInfo to a container configuration, where health checks go, and the log copy's bookkeeping:
pure logic, no dockerd."""

from __future__ import annotations

import asyncio
import io

import pytest
from docker_testing import docker_task, make_run

from mesolite.agent.containerizers.base import LOOPBACK, AgentOptions
from mesolite.agent.containerizers.docker.containerizer import DockerContainerizer, check_command_argv
from mesolite.agent.containerizers.docker.logs import LogPosition, copy_log_entries, parse_log_timestamp
from mesolite.agent.containerizers.docker.parameters import DockerTaskError, unknown_allowed_parameters
from mesolite.agent.containerizers.docker.spec import (
    LABEL_AGENT_ID,
    LABEL_CONTAINER_ID,
    LABEL_FRAMEWORK_ID,
    LABEL_TASK_ID,
    LABEL_WORK_DIR,
    TaskIdentity,
    container_spec,
)

IDENTITY = TaskIdentity("c-1", "task-1", "framework-1", "agent-1", "task-1")
OPTIONS = AgentOptions(work_dir="/var/lib/mesos")
SANDBOX = "/var/lib/mesos/slaves/agent-1/frameworks/framework-1/executors/task-1/runs/c-1"


def spec_of(task: dict, options: AgentOptions = OPTIONS):
    return container_spec(task, IDENTITY, SANDBOX, options)


def error_of(task: dict, options: AgentOptions = OPTIONS) -> str | None:
    return DockerContainerizer(options).validate(task, options)


def test_shell_command_runs_under_sh_and_replaces_the_entrypoint():
    spec = spec_of(docker_task("busybox", "echo hello && sleep 1"))
    assert spec.create["entrypoint"] == ["/bin/sh", "-c"]
    assert spec.create["command"] == ["echo hello && sleep 1"]


def test_without_shell_value_and_arguments_follow_the_image_entrypoint():
    spec = spec_of(docker_task("busybox", "nginx", shell=False, arguments=["-g", "daemon off;"]))
    assert "entrypoint" not in spec.create
    assert spec.create["command"] == ["nginx", "-g", "daemon off;"]


def test_without_shell_and_only_arguments_they_are_the_image_cmd():
    spec = spec_of(docker_task("busybox", shell=False, arguments=["--port", "80"]))
    assert spec.create["command"] == ["--port", "80"]


def test_an_empty_command_runs_what_the_image_says():
    spec = spec_of(docker_task("nginx", shell=False))
    assert "command" not in spec.create and "entrypoint" not in spec.create


def test_name_labels_environment_and_sandbox_mount():
    spec = spec_of(docker_task("busybox", "true", task_id="task-1"))
    assert spec.name == "mesos-c-1"
    labels = spec.create["labels"]
    assert labels[LABEL_TASK_ID] == "task-1"
    assert labels[LABEL_FRAMEWORK_ID] == "framework-1"
    assert labels[LABEL_AGENT_ID] == "agent-1"
    assert labels[LABEL_CONTAINER_ID] == "c-1"
    assert labels[LABEL_WORK_DIR] == "/var/lib/mesos"
    assert labels["org.mesolite.test"]  # the task's own labels are kept
    assert "MESOS_SANDBOX=/mnt/mesos/sandbox" in spec.create["environment"]
    assert "MESOS_CONTAINER_NAME=mesos-c-1" in spec.create["environment"]
    assert spec.host["binds"] == [f"{SANDBOX}:/mnt/mesos/sandbox:rw"]


def test_task_environment_variables_are_passed():
    task = docker_task("busybox", "env")
    task["command"]["environment"] = {"variables": [{"name": "GREETING", "value": "hi there"}]}
    assert "GREETING=hi there" in spec_of(task).create["environment"]
    task["command"]["environment"]["variables"].append({"name": "TOKEN", "type": "SECRET", "secret": {}})
    assert "only VALUE variables" in error_of(task)


@pytest.mark.parametrize(
    ("cpus", "mem", "cfs", "expected"),
    [
        (0.5, 128, False, {"cpu_shares": 512, "mem_limit": 128 * 2**20}),
        (0.001, 4, False, {"cpu_shares": 2, "mem_limit": 32 * 2**20}),  # Mesos's floors
        (1.5, 256, True, {"cpu_shares": 1536, "cpu_period": 100_000, "cpu_quota": 150_000, "mem_limit": 256 * 2**20}),
    ],
)
def test_cpu_and_memory_limits_come_from_the_task_resources(cpus, mem, cfs, expected):
    task = docker_task("busybox", "true")
    task["resources"] = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
    ]
    host = spec_of(task, AgentOptions(cgroups_enable_cfs=cfs)).host
    assert {key: host[key] for key in expected} == expected
    if not cfs:
        assert "cpu_quota" not in host


@pytest.mark.parametrize(
    ("network", "mode"), [("HOST", "host"), ("BRIDGE", "bridge"), ("NONE", "none"), (None, "host")]
)
def test_network_modes(network, mode):
    task = docker_task("busybox", "true")
    task["container"]["docker"]["network"] = network
    assert spec_of(task).host["network_mode"] == mode


def test_user_network_is_the_named_network():
    task = docker_task("busybox", "true", network="USER")
    assert "network_infos[0].name" in error_of(task)
    task["container"]["network_infos"] = [{"name": "lab-net"}]
    assert spec_of(task).host["network_mode"] == "lab-net"


def test_port_mappings_inside_the_ports_resource():
    task = docker_task(
        "nginx",
        network="BRIDGE",
        ports=(31000, 31010),
        port_mappings=[
            {"host_port": 31000, "container_port": 80},
            {"host_port": 31005, "container_port": 53, "protocol": "UDP"},
        ],
    )
    spec = spec_of(task)
    assert spec.host["port_bindings"] == {"80/tcp": 31000, "53/udp": 31005}
    assert spec.create["ports"] == [80, (53, "udp")]
    assert spec.port_mappings[1] == {"host_port": 31005, "container_port": 53, "protocol": "udp"}


@pytest.mark.parametrize(
    ("mappings", "network", "message"),
    [
        ([{"host_port": 32001, "container_port": 80}], "BRIDGE", "host_port 32001 is not in the task's ports resource"),
        ([{"host_port": 31000, "container_port": 80}], "HOST", "need network BRIDGE or USER, not HOST"),
        ([{"host_port": 31000, "container_port": 80, "protocol": "sctp"}], "BRIDGE", "'sctp' is not tcp or udp"),
        ([{"host_port": 31000, "container_port": 0}], "BRIDGE", "container_port 0 is not a port number"),
        ([{"host_port": "x", "container_port": 80}], "BRIDGE", "needs integer host_port"),
        (
            [{"host_port": 31000, "container_port": 80}, {"host_port": 31000, "container_port": 81}],
            "BRIDGE",
            "host port 31000/tcp is mapped twice",
        ),
    ],
)
def test_bad_port_mappings_are_task_errors_naming_the_field(mappings, network, message):
    task = docker_task("nginx", network=network, ports=(31000, 31010), port_mappings=mappings)
    error = error_of(task)
    assert error is not None and message in error
    assert "port_mappings" in error


def test_a_port_mapping_without_any_ports_resource_is_refused():
    task = docker_task("nginx", network="BRIDGE", port_mappings=[{"host_port": 31000, "container_port": 80}])
    assert "(none)" in error_of(task)


def test_privileged_needs_the_agent_to_allow_it():
    task = docker_task("busybox", "true", privileged=True)
    assert "privileged is not allowed" in error_of(task)
    allowing = AgentOptions(docker_allow_privileged=True)
    assert error_of(task, allowing) is None
    assert spec_of(task, allowing).host["privileged"] is True


def test_parameters_from_the_allowlist_become_docker_options():
    task = docker_task(
        "busybox",
        "true",
        parameters=[
            {"key": "label", "value": "team=web"},
            {"key": "env", "value": "A=1"},
            {"key": "--add-host", "value": "db:10.0.0.5"},
            {"key": "ulimit", "value": "nofile=1024:2048"},
            {"key": "init", "value": "true"},
            {"key": "user", "value": "nobody"},
            {"key": "log-opt", "value": "max-size=10m"},
        ],
    )
    spec = spec_of(task)
    assert spec.create["labels"]["team"] == "web"
    assert "A=1" in spec.create["environment"]
    assert spec.host["extra_hosts"] == {"db": "10.0.0.5"}
    assert spec.host["ulimits"][0]["Name"] == "nofile" and spec.host["ulimits"][0]["Hard"] == 2048
    assert spec.host["init"] is True
    assert spec.create["user"] == "nobody"
    assert spec.host["log_config"]["Config"] == {"max-size": "10m"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cap-add", "SYS_ADMIN", "not allowed on this agent"),
        ("publish", "80:80", "use container.docker.port_mappings"),
        ("privileged", "true", "use container.docker.privileged"),
        ("memory", "1g", "the task's mem resource"),
        ("frobnicate", "1", "not a docker run option this agent knows"),
        ("init", "maybe", "takes true or false"),
        ("label", "novalue", "takes NAME=VALUE"),
    ],
)
def test_parameters_outside_the_allowlist_or_malformed_are_task_errors(key, value, message):
    error = error_of(docker_task("busybox", "true", parameters=[{"key": key, "value": value}]))
    assert error is not None and message in error and key in error


def test_the_operator_can_extend_the_allowlist():
    task = docker_task("busybox", "true", parameters=[{"key": "cap-add", "value": "NET_ADMIN"}])
    options = AgentOptions(docker_allowed_parameters=("cap-add",))
    assert error_of(task, options) is None
    assert spec_of(task, options).host["cap_add"] == ["NET_ADMIN"]
    assert unknown_allowed_parameters(AgentOptions(docker_allowed_parameters=("cap-add", "bogus"))) == ["bogus"]


def test_volumes_host_paths_sandbox_relative_paths_and_named_volumes():
    task = docker_task("busybox", "true")
    task["container"]["volumes"] = [
        {"container_path": "/data", "host_path": "/srv/data", "mode": "RO"},
        {"container_path": "cache", "host_path": "cache", "mode": "RW"},
        {"container_path": "/var/lib/x", "source": {"type": "DOCKER_VOLUME", "docker_volume": {"name": "x"}}},
    ]
    binds = spec_of(task).host["binds"]
    assert binds[1:] == [
        "/srv/data:/data:ro",
        f"{SANDBOX}/cache:/mnt/mesos/sandbox/cache:rw",
        "x:/var/lib/x:rw",
    ]
    task["container"]["volumes"] = [{"container_path": "/data", "host_path": "/srv", "mode": "RX"}]
    assert "container.volumes[0].mode 'RX'" in error_of(task)


def test_missing_image_or_wrong_type_is_refused():
    task = docker_task("busybox", "true")
    task["container"]["docker"]["image"] = " "
    assert error_of(task) == "container.docker.image is missing"
    with pytest.raises(DockerTaskError, match=r"container\.type must be DOCKER"):
        spec_of({"task_id": {"value": "x"}, "command": {"value": "true"}})


def test_supports_only_docker_tasks():
    containerizer = DockerContainerizer(OPTIONS)
    assert containerizer.supports(docker_task("busybox", "true"))
    assert not containerizer.supports({"command": {"value": "true"}})
    assert not containerizer.supports({"container": {"type": "MESOS"}})


# -- health checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ({"value": "test -f /ready"}, ["sh", "-c", "test -f /ready"]),
        ({"shell": True, "value": "exit 3"}, ["sh", "-c", "exit 3"]),
        ({"shell": False, "value": "/bin/test", "arguments": ["test", "-f", "/ready"]}, ["/bin/test", "-f", "/ready"]),
        ({"shell": False, "value": "/bin/true"}, ["/bin/true"]),
    ],
)
def test_check_commands_run_in_the_container_in_shell_or_argv_form(command, argv):
    assert check_command_argv(command) == argv


@pytest.mark.parametrize("network", ["HOST", None, "NONE"])
def test_http_and_tcp_checks_of_tasks_in_the_host_namespace_stay_on_the_host(tmp_path, network):
    options = AgentOptions(work_dir=str(tmp_path), docker_socket=str(tmp_path / "no-dockerd.sock"))  # not asked
    task = docker_task("nginx", ports=(31000, 31010))
    task["container"]["docker"]["network"] = network
    run = make_run(tmp_path, task, options)
    assert asyncio.run(DockerContainerizer(options).check_address(run, 8080)) == LOOPBACK


# -- the log copy ----------------------------------------------------------------------------------


def test_docker_log_timestamps_are_parsed_to_nanoseconds():
    assert parse_log_timestamp(b"2026-11-25T20:51:22.123456789Z hello\n") == (1795639882123456789, b"hello\n")
    assert parse_log_timestamp(b"2026-11-25T20:51:22.5Z x") == (1795639882500000000, b"x")
    assert parse_log_timestamp(b"2026-11-25T21:51:22+01:00 x") == (1795639882000000000, b"x")
    assert parse_log_timestamp(b"no timestamp here") is None


def test_a_copy_resumed_from_its_position_writes_no_line_twice(tmp_path):
    entries = [
        b"2026-11-25T20:51:22.1Z one\n",
        b"2026-11-25T20:51:22.2Z two\n",
        b"2026-11-25T20:51:22.2Z two again, same nanosecond\n",
        b"2026-11-25T20:51:23Z three\n",
    ]
    output = io.BytesIO()
    position = LogPosition(tmp_path / "position")
    copy_log_entries(iter(entries[:3]), output, position)
    position.close()
    # A new executor reads the position back; dockerd replays from the second (`since` is whole seconds).
    resumed = LogPosition(tmp_path / "position")
    assert (resumed.nanoseconds, resumed.count) == (1795639882200000000, 2)
    copy_log_entries(iter(entries), output, resumed)
    resumed.close()
    assert output.getvalue() == b"one\ntwo\ntwo again, same nanosecond\nthree\n"
