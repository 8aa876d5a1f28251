"""Command tasks on a real agent process, driven by a test-only fake master (see agent_fake_master.py)."""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing and agent_fake_master are redefined as parameters

from __future__ import annotations

import time

import pytest
from agent_fake_master import FakeMaster, master  # noqa: F401 - a fixture
from agent_testing import AgentHome, agent_tasks, home, read_sandbox_file, start_agent  # noqa: F401 - a fixture

from harness.http import get_json
from harness.waiting import wait_for

pytestmark = pytest.mark.integration


def test_command_task_finishes_with_stdout_readable_through_files_api(launcher, home, master):
    agent = start_agent(launcher, home, master)
    master.run_task("hello", {"value": "echo hello from $MESOS_TASK_ID; echo oops >&2"})
    finished = master.wait_for_state("hello", "TASK_FINISHED")
    assert master.states("hello") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    status = finished["status"]
    assert status["agent_id"]["value"] == master.agent_ids[-1]
    assert status["message"] == "Command exited with status 0"
    assert isinstance(status["timestamp"], float)
    running = master.updates("hello")[1]["status"]
    assert running["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"] == "127.0.0.1"
    directory = wait_for(lambda: agent_tasks(agent.url()).get("hello"), 10, what="the task in /state")["directory"]
    assert read_sandbox_file(agent.url(), directory, "stdout") == "hello from hello\n"
    assert read_sandbox_file(agent.url(), directory, "stderr") == "oops\n"
    listing = {entry["path"].rsplit("/", 1)[1] for entry in get_json(agent.url("/files/browse"), path=directory)}
    assert {"stdout", "stderr"} <= listing


def test_shell_false_runs_the_executable_with_arguments_and_environment(launcher, home, master):
    agent = start_agent(launcher, home, master)
    master.run_task(
        "direct",
        {
            "shell": False,
            "value": "/usr/bin/env",
            "arguments": ["env"],
            "environment": {"variables": [{"name": "GREETING", "value": "hi there"}]},
        },
    )
    master.wait_for_state("direct", "TASK_FINISHED")
    directory = agent_tasks(agent.url())["direct"]["directory"]
    output = read_sandbox_file(agent.url(), directory, "stdout")
    assert "GREETING=hi there\n" in output
    assert f"MESOS_SANDBOX={directory}\n" in output
    assert "MESOS_TASK_ID=direct\n" in output


def test_exit_code_is_in_the_failed_message(launcher, home, master):
    start_agent(launcher, home, master)
    master.run_task("three", {"value": "exit 3"})
    failed = master.wait_for_state("three", "TASK_FAILED")
    assert "status 3" in failed["status"]["message"]
    assert master.states("three")[-1] == "TASK_FAILED"


def test_kill_stops_a_task_that_ignores_sigterm_after_the_grace_period(launcher, home, master):
    start_agent(launcher, home, master)
    master.run_task("polite", {"value": "sleep 600"})
    master.run_task("stubborn", {"value": "trap '' TERM; sleep 600"})
    master.wait_for_state("polite", "TASK_RUNNING")
    master.wait_for_state("stubborn", "TASK_RUNNING")
    asked = time.monotonic()
    master.kill_task("polite", grace_seconds=10)
    master.kill_task("stubborn", grace_seconds=1.5)
    polite = master.wait_for_state("polite", "TASK_KILLED", timeout=10)
    polite_after = time.monotonic() - asked
    master.wait_for_state("stubborn", "TASK_KILLED", timeout=15)
    stubborn_after = time.monotonic() - asked
    assert "SIGTERM" in polite["status"]["message"]
    assert polite_after < 5, "a task that obeys SIGTERM must not wait for the grace period"
    assert 1.5 <= stubborn_after < 10, "SIGKILL comes after the grace period, not before and not much later"


def test_unacknowledged_updates_are_resent_in_order(launcher, home, master):
    master.auto_acknowledge = False
    start_agent(launcher, home, master, "--status_update_retry_interval=300ms")
    master.run_task("quick", {"value": "true"})
    wait_for(lambda: len(master.updates("quick")) >= 3, 20, what="three sends of the first update")
    # Without an acknowledgement only the first update (STARTING) is ever sent, again and again.
    assert set(master.states("quick")) == {"TASK_STARTING"}
    first = master.updates("quick")
    assert len({u["status"]["uuid"] for u in first}) == 1
    master.acknowledge(first[0])
    running = master.wait_for_state("quick", "TASK_RUNNING")
    master.acknowledge(running)
    finished = master.wait_for_state("quick", "TASK_FINISHED")
    master.acknowledge(finished)
    sent_states = [s for i, s in enumerate(master.states("quick")) if i == 0 or s != master.states("quick")[i - 1]]
    assert sent_states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]


def test_cpu_and_memory_limits_cover_the_task_and_its_executor(launcher, home, master):
    from mesolite.agent.cgroups import hierarchy_problem

    problem = hierarchy_problem("memory", "/sys/fs/cgroup", "mesos")
    if problem:
        pytest.skip(f"this machine cannot enforce limits: {problem}")
    agent = start_agent(launcher, home, master)
    master.run_task(
        "limited",
        {"value": "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory/mesos/$MESOS_CONTAINER_ID/memory.limit_in_bytes "
         "/sys/fs/cgroup/cpu/mesos/$MESOS_CONTAINER_ID/cpu.shares"},
        resources="cpus:0.5;mem:64",
    )  # fmt: skip
    master.wait_for_state("limited", "TASK_FINISHED")
    output = read_sandbox_file(agent.url(), agent_tasks(agent.url())["limited"]["directory"], "stdout").splitlines()
    # The task's own 0.5 cpus and 64 MB plus the executor's allowance (0.1 cpus, 32 MB), as Mesos sizes them.
    assert str((64 + 32) * 1024 * 1024) in output
    assert str(int(0.6 * 1024)) in output
    assert any(line.endswith(":memory:/mesos/" + line.rsplit("/", 1)[-1]) for line in output if ":memory:" in line)


def test_memory_hog_fails_with_the_memory_limitation_reason(launcher, home, master):
    from mesolite.agent.cgroups import hierarchy_problem

    if hierarchy_problem("memory", "/sys/fs/cgroup", "mesos"):
        pytest.skip("no cgroup v1 memory hierarchy here")
    start_agent(launcher, home, master)
    master.run_task("hog", {"value": "python3 -c 'x = bytearray(200 * 2**20); import time; time.sleep(5)'"},
                    resources="cpus:0.1;mem:40")  # fmt: skip
    failed = master.wait_for_state("hog", "TASK_FAILED")
    assert failed["status"]["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert "Memory limit exceeded" in failed["status"]["message"]


def test_docker_tasks_fail_clearly_when_dockerd_is_absent(launcher, home, master, tmp_path):
    socket_path = tmp_path / "no-docker.sock"
    start_agent(launcher, home, master, "--containerizers=docker,mesos", f"--docker_socket={socket_path}")
    master.run_task("web", {"value": "nginx"}, container={"type": "DOCKER", "docker": {"image": "nginx"}})
    master.run_task("plain", {"value": "true"})
    # No socket file is no dockerd: the task fails at once, not after the wait for a restarting dockerd (60 s).
    failed = master.wait_for_state("web", "TASK_FAILED", timeout=15)["status"]
    assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert f"dockerd is not running: its socket {socket_path} does not exist" in failed["message"]
    assert master.states("web") == ["TASK_STARTING", "TASK_FAILED"]
    master.wait_for_state("plain", "TASK_FINISHED")
