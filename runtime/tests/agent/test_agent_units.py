"""The agent's pure logic: flags, resource detection, the files API's limits, checkpoint logs, kill policies."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mesolite.agent.agent import kill_grace_seconds
from mesolite.agent.checkpoint import append_json_line, read_json_lines
from mesolite.agent.containerizers import (
    UnavailableContainerizer,
    load_containerizer,
    parse_containerizer_names,
    pick_containerizer,
)
from mesolite.agent.containerizers.base import AgentOptions
from mesolite.agent.containerizers.mesos import MesosContainerizer, command_argv
from mesolite.agent.files import FilesError, SandboxFiles
from mesolite.agent.resources_detection import agent_resources, detected_disk, detected_memory
from mesolite.agent.service import FLAGS, build_agent, check_docker_allowed_parameters
from mesolite.agent.status_updates import read_stream
from mesolite.flags import FlagError


@pytest.mark.parametrize(
    ("total", "expected"),
    [(24 * 1024, 23 * 1024), (2048, 1024), (1500, 750)],
)
def test_memory_leaves_one_gib_or_takes_half(total, expected):
    assert detected_memory(total) == expected


@pytest.mark.parametrize(("total", "expected"), [(100 * 1024, 95 * 1024), (10 * 1024, 5 * 1024), (8000, 4000)])
def test_disk_leaves_five_gib_or_takes_half(total, expected):
    assert detected_disk(total) == expected


def test_given_resources_are_kept_and_the_missing_ones_detected(tmp_path):
    resources = agent_resources("cpus:3;gpus:1", str(tmp_path))
    assert resources.scalar("cpus") == 3
    assert resources.scalar("gpus") == 1
    assert resources.scalar("mem") > 0 and resources.scalar("disk") > 0
    assert resources.ranges("ports") == ((31000, 32000),)


def test_config_files_are_flags(tmp_path):
    (tmp_path / "etc/mesos-slave").mkdir(parents=True)
    (tmp_path / "etc/mesos").mkdir(parents=True)
    (tmp_path / "etc/mesos/zk").write_text("zk://10.0.0.1:2181,10.0.0.1:2182/mesos\n")
    (tmp_path / "etc/mesos-slave/containerizers").write_text("docker,mesos\n")
    (tmp_path / "etc/mesos-slave/executor_registration_timeout").write_text("5mins\n")
    (tmp_path / "etc/mesos-slave/?no-switch_user").write_text("")
    flags = FLAGS.parse([], environ={"MESOLITE_CONFIG_ROOT": str(tmp_path)})
    assert str(flags.master.zookeeper) == "zk://10.0.0.1:2181,10.0.0.1:2182/mesos"
    assert flags.containerizers == ("docker", "mesos")
    assert flags.executor_registration_timeout == 300
    assert flags.switch_user is False
    assert flags.port == 5051 and flags.work_dir == "/var/lib/mesos"


def test_an_unknown_containerizer_is_named():
    with pytest.raises(FlagError, match="unknown containerizer lxc"):
        FLAGS.parse(["--containerizers=mesos,lxc"], environ={})
    with pytest.raises(ValueError, match="no containerizer"):
        parse_containerizer_names(" , ")


def test_unknown_flag_file_is_an_error(tmp_path):
    (tmp_path / "etc/mesos-slave").mkdir(parents=True)
    (tmp_path / "etc/mesos-slave/no_such_flag").write_text("1")
    with pytest.raises(FlagError, match="no_such_flag"):
        FLAGS.parse([], environ={"MESOLITE_CONFIG_ROOT": str(tmp_path)})


def test_docker_allowed_parameters_the_containerizer_cannot_apply_are_refused_at_start(tmp_path):
    flags = FLAGS.parse(
        ["--master=127.0.0.1:5050", f"--work_dir={tmp_path}", "--docker_allowed_parameters=cap-add,bogus,--net"],
        environ={"MESOLITE_CONFIG_ROOT": str(tmp_path)},
    )
    with pytest.raises(FlagError) as refused:
        build_agent(flags)
    message = str(refused.value)
    assert message.startswith("--docker_allowed_parameters:")
    assert "'bogus' (not a docker run option it can apply)" in message
    assert "'net' (use container.docker.network)" in message
    assert "'cap-add'" not in message  # known, so allowed
    check_docker_allowed_parameters(AgentOptions(docker_allowed_parameters=("cap-add", "--device", "v")))


def test_the_agent_exits_with_a_flag_error_for_docker_parameters_it_cannot_apply(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mesolite.cli", "agent", "--master=127.0.0.1:5050", f"--work_dir={tmp_path}",
         "--docker_allowed_parameters=no-such-option"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "MESOLITE_CONFIG_ROOT": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "--docker_allowed_parameters" in result.stderr and "'no-such-option'" in result.stderr


def test_docker_tasks_go_to_an_unavailable_docker_containerizer_with_its_reason(monkeypatch):
    options = AgentOptions(containerizers=("docker", "mesos"))
    monkeypatch.setitem(
        __import__("mesolite.agent.containerizers", fromlist=["CONTAINERIZERS"]).CONTAINERIZERS,
        "docker",
        ("mesolite.agent.no_such_module", "DockerContainerizer"),
    )
    containerizers = [load_containerizer(name, options) for name in options.containerizers]
    docker_task = {"container": {"type": "DOCKER", "docker": {"image": "nginx"}}, "command": {"value": "x"}}
    chosen = pick_containerizer(containerizers, docker_task)
    assert isinstance(chosen, UnavailableContainerizer)
    assert "docker containerizer is not available" in chosen.reason
    assert isinstance(pick_containerizer(containerizers, {"command": {"value": "true"}}), MesosContainerizer)


def test_command_argv_follows_shell_and_arguments():
    assert command_argv({"value": "echo hi"}) == ("/bin/sh", ["/bin/sh", "-c", "echo hi"])
    assert command_argv({"shell": False, "value": "/bin/echo", "arguments": ["echo", "hi"]}) == (
        "/bin/echo",
        ["echo", "hi"],
    )
    assert command_argv({"shell": False, "value": "/bin/true"}) == ("/bin/true", ["/bin/true"])


def test_mesos_containerizer_validation_names_the_field():
    mesos = MesosContainerizer(AgentOptions())
    assert "command" in mesos.validate({}, AgentOptions())
    assert "command.value" in mesos.validate({"command": {"value": ""}}, AgentOptions())
    secret = {"command": {"value": "true", "environment": {"variables": [{"name": "A", "type": "SECRET"}]}}}
    assert "SECRET" in mesos.validate(secret, AgentOptions())
    # A user unknown here is a failed launch (TASK_FAILED naming it), not an invalid task, as in Mesos.
    assert mesos.validate({"command": {"value": "true", "user": "no-such-user-here"}}, AgentOptions()) is None


def test_kill_grace_comes_from_the_kill_then_the_task_then_the_default():
    task = {"kill_policy": {"grace_period": {"nanoseconds": 7_000_000_000}}}
    assert kill_grace_seconds({"grace_period": {"nanoseconds": 500_000_000}}, task) == 0.5
    assert kill_grace_seconds(None, task) == 7
    assert kill_grace_seconds(None, {}) == 3


def test_files_api_serves_only_sandboxes(tmp_path):
    sandbox = tmp_path / "slaves/A-S0/frameworks/F/executors/T/runs/C"
    sandbox.mkdir(parents=True)
    (sandbox / "stdout").write_text("hello world\n")
    (tmp_path / "slaves/A-S0/frameworks/F/executors/T/runs/latest").symlink_to("C")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/secret").write_text("no")
    files = SandboxFiles(tmp_path, "A-S0")
    assert files.read(f"{sandbox}/stdout", "6", None) == {"data": "world\n", "offset": 6}
    assert files.read(f"{sandbox}/stdout", None, None) == {"data": "", "offset": 12}
    assert files.read(f"{sandbox}/stdout", "0", "5")["data"] == "hello"
    assert files.read("/frameworks/F/executors/T/runs/latest/stdout", "0", None)["data"] == "hello world\n"
    assert [entry["path"] for entry in files.browse(str(sandbox))] == [f"{sandbox}/stdout"]
    for outside in (str(tmp_path / "meta/secret"), f"{sandbox}/../../../../../../../meta/secret", "/etc/passwd"):
        with pytest.raises(FilesError) as refused:
            files.read(outside, "0", None)
        assert refused.value.status == 404
    with pytest.raises(FilesError, match="offset"):
        files.read(f"{sandbox}/stdout", "x", None)


def test_json_lines_skip_a_torn_last_line(tmp_path):
    log = tmp_path / "events.jsonl"
    append_json_line(log, {"state": "TASK_STARTING"})
    with open(log, "a") as file:
        file.write('{"state": "TASK_RUN')
    records = read_json_lines(log)
    assert [record for record, _ in records] == [{"state": "TASK_STARTING"}]
    assert records[-1][1] == len('{"state":"TASK_STARTING"}\n')


def test_update_stream_is_what_was_not_acknowledged(tmp_path):
    path = tmp_path / "updates.jsonl"

    def update(state: str, uuid: str) -> dict:
        return {"framework_id": {"value": "F"}, "status": {"state": state, "uuid": uuid, "task_id": {"value": "T"}}}

    append_json_line(path, {"update": update("TASK_STARTING", "a"), "events_offset": 10})
    append_json_line(path, {"ack": "a"})
    append_json_line(path, {"update": update("TASK_RUNNING", "b"), "events_offset": 20})
    append_json_line(path, {"update": update("TASK_FINISHED", "c"), "events_offset": 30})
    stream = read_stream("F", "T", path)
    assert [u["status"]["uuid"] for u in stream.pending] == ["b", "c"]
    assert stream.events_offset == 30
    assert stream.latest_state == "TASK_FINISHED"


@pytest.mark.parametrize(
    ("arguments", "advertised"),
    [
        (["--advertise_ip=10.1.2.3", "--ip=127.0.0.1"], "10.1.2.3"),
        (["--ip=127.0.0.1"], "127.0.0.1"),
        (["--ip=0.0.0.0"], None),  # nothing configured: the master takes the address the agent connects from
        ([], None),
    ],
)
def test_agent_info_carries_the_configured_ip_only(tmp_path, arguments, advertised):
    flags = FLAGS.parse(
        ["--master=127.0.0.1:5050", f"--work_dir={tmp_path}", "--containerizers=mesos", *arguments],
        environ={"MESOLITE_CONFIG_ROOT": str(tmp_path)},
    )
    assert build_agent(flags).agent_info().get("ip") == advertised


def test_kill_grace_seconds_ignores_malformed_policies():
    task = {"kill_policy": {"grace_period": {"nanoseconds": 7_000_000_000}}}
    assert kill_grace_seconds({"grace_period": {"nanoseconds": [1]}}, task) == 7
    assert kill_grace_seconds("x", {"kill_policy": {"grace_period": "y"}}) == 3
    assert kill_grace_seconds({"grace_period": {"nanoseconds": "2000000000"}}, {}) == 2  # int64 as JSON string


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ({"task_id": {"value": "x" * 256}}, "task_id.value"),
        ({"task_id": {"value": "é" * 128}}, "task_id.value"),  # 256 bytes: ids are file names
        ({"task_id": {"value": ".."}}, "task_id.value"),
        ({"task_id": {"value": "a/b"}}, "task_id.value"),
        ({"task_id": {"value": "a\nb"}}, "task_id.value"),
        ({"task_id": "t"}, "task_id"),
        ({"task_id": {"value": "t"}, "container": "x"}, "container"),
        ({"task_id": {"value": "t"}, "kill_policy": {"grace_period": {"nanoseconds": -1}}}, "nanoseconds"),
        ({"task_id": {"value": "t"}, "health_check": {"type": "HTTP"}}, "health_check.http.port"),
        ({"task_id": {"value": "t"}, "command": {"environment": {"variables": [{"name": 5}]}}}, "variables[0].name"),
    ],
)
def test_task_validation_names_the_field(task, field):
    from mesolite.agent.task_validation import task_problem

    assert field in (task_problem(task) or "")


def test_task_validation_accepts_a_full_task():
    from mesolite.agent.task_validation import task_problem

    task = {
        "name": "web", "task_id": {"value": "web.1-" + "x" * 249}, "agent_id": {"value": "S0"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
        "command": {"value": "true", "shell": True, "uris": [{"value": "http://x/y.tgz", "extract": True}],
                    "environment": {"variables": [{"name": "A", "value": "b"}]}},
        "container": {"type": "DOCKER", "docker": {"image": "nginx"}, "volumes": []},
        "kill_policy": {"grace_period": {"nanoseconds": 5_000_000_000}},
        "health_check": {"type": "TCP", "tcp": {"port": 80}, "interval_seconds": 10, "consecutive_failures": 3},
        "labels": {"labels": [{"key": "a", "value": "b"}]},
    }  # fmt: skip
    assert task_problem(task) is None


def test_files_api_refuses_fifos_nul_paths_and_odd_numbers(tmp_path):
    import os

    sandbox = tmp_path / "slaves" / "A-S0" / "frameworks" / "F" / "executors" / "T" / "runs" / "C"
    sandbox.mkdir(parents=True)
    os.mkfifo(sandbox / "pipe")
    (sandbox / "out").write_text("hello\n")
    files = SandboxFiles(tmp_path, "A-S0")
    for call in (lambda: files.read(f"{sandbox}/pipe", "0", None), lambda: files.download(f"{sandbox}/pipe")):
        with pytest.raises(FilesError, match="FIFO") as refused:
            call()
        assert refused.value.status == 400
    for path in ("\0", f"{sandbox}/\0", "a" * 5000):
        with pytest.raises(FilesError) as refused:
            files.read(path, None, None)
        assert refused.value.status == 400
    for offset in ("1.5", str(2**64), "-2", "٣", " 1"):
        with pytest.raises(FilesError) as refused:
            files.read(f"{sandbox}/out", offset, None)
        assert refused.value.status == 400
    assert files.read(f"{sandbox}/out", "1", "2") == {"data": "el", "offset": 1}
