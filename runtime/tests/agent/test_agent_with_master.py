"""The agent end to end: real ZooKeeper, the real master, a framework through the v1 scheduler API."""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing and agent_fake_master are redefined as parameters

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from agent_framework import ThreadedFramework
from agent_testing import agent_tasks, home, process_exists, read_sandbox_file, start_registered_agent  # noqa: F401 - a fixture

from harness.http import get_json
from harness.processes import free_port
from harness.waiting import wait_for

pytestmark = pytest.mark.integration

# A killed leader leads until its ZooKeeper session expires: 3 s instead of the default 10 s keeps the failover
# test short (the test ZooKeeper allows sessions from 1 s).
FAST_FAILOVER = "--zk_session_timeout=3secs"


@pytest.fixture
def cluster(zookeeper, launcher, home, tmp_path):
    """One master and one agent (not started) on a fresh ZooKeeper path; a framework."""
    url = zookeeper.url()
    master_port = free_port()
    launcher.start(
        "master", "master", f"--zk={url}", "--ip=127.0.0.1", "--hostname=127.0.0.1", f"--port={master_port}",
        f"--work_dir={tmp_path / 'master'}", "--quorum=1", FAST_FAILOVER, port=master_port,
    )  # fmt: skip
    framework = ThreadedFramework(url)
    yield url, home, framework
    framework.stop()


def test_command_task_runs_to_finished_through_the_master(launcher, cluster):
    url, home, framework = cluster
    agent = start_registered_agent(launcher, home, url)
    framework.launch("greeting", "echo hello; sleep 0.5")
    wait_for(lambda: "TASK_FINISHED" in framework.states("greeting"), 30, what="TASK_FINISHED")
    assert framework.states("greeting") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    directory = agent_tasks(agent.url())["greeting"]["directory"]
    assert read_sandbox_file(agent.url(), directory, "stdout") == "hello\n"
    framework.launch("failing", "exit 3")
    wait_for(lambda: "TASK_FAILED" in framework.states("failing"), 30, what="TASK_FAILED")


def test_agent_sigkill_and_restart_keeps_tasks_with_the_real_master(launcher, cluster):
    url, home, framework = cluster
    agent = start_registered_agent(launcher, home, url)
    agent_id = get_json(agent.url("/state"))["id"]
    for name in ("one", "two"):
        framework.launch(name, "echo $$ > pid; exec sleep 600")
    for name in ("one", "two"):
        wait_for(lambda name=name: "TASK_RUNNING" in framework.states(name), 30, what=f"{name} RUNNING")
    directories = {name: agent_tasks(agent.url())[name]["directory"] for name in ("one", "two")}
    pids = {
        name: int(wait_for(lambda d=d: Path(d, "pid").read_text().strip(), 10, what="pid"))
        for name, d in directories.items()
    }
    seen = {name: list(framework.states(name)) for name in ("one", "two")}

    agent.kill(signal.SIGKILL)
    restarted = start_registered_agent(launcher, home, url)

    assert get_json(restarted.url("/state"))["id"] == agent_id
    tasks = agent_tasks(restarted.url())
    assert {name: tasks[name]["state"] for name in ("one", "two")} == {"one": "TASK_RUNNING", "two": "TASK_RUNNING"}
    assert all(process_exists(pid) for pid in pids.values())
    master_state = get_json(f"http://{get_json(restarted.url('/state'))['master_hostname']}:"
                            f"{launcher.started[0].port}/master/state")  # fmt: skip
    running = {t["id"]: t["state"] for f in master_state["frameworks"] for t in f["tasks"]}
    assert running == {"one": "TASK_RUNNING", "two": "TASK_RUNNING"}
    assert {name: framework.states(name) for name in ("one", "two")} == seen, "no update may be delivered again"

    framework.kill("two", grace_seconds=2)
    wait_for(lambda: "TASK_KILLED" in framework.states("two"), 20, what="TASK_KILLED")
    assert not process_exists(pids["two"])


def test_agent_follows_a_master_failover_without_disturbing_tasks(launcher, cluster, tmp_path):
    url, home, framework = cluster
    standby_port = free_port()
    launcher.start(
        "standby", "master", f"--zk={url}", "--ip=127.0.0.1", "--hostname=127.0.0.1", f"--port={standby_port}",
        f"--work_dir={tmp_path / 'standby'}", "--quorum=1", FAST_FAILOVER, port=standby_port,
    )  # fmt: skip
    agent = start_registered_agent(launcher, home, url)
    agent_id = get_json(agent.url("/state"))["id"]
    framework.launch("steady", "echo $$ > pid; exec sleep 600")
    wait_for(lambda: "TASK_RUNNING" in framework.states("steady"), 30, what="steady RUNNING")
    directory = agent_tasks(agent.url())["steady"]["directory"]
    pid = int(wait_for(lambda: Path(directory, "pid").read_text().strip(), 10, what="pid"))

    launcher.started[0].kill(signal.SIGKILL)  # the leader
    wait_for(
        lambda: (
            get_json(agent.url("/state"))["registered"]
            and get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0
            and get_json(f"http://127.0.0.1:{standby_port}/master/state").get("activated_slaves") == 1
        ),
        60,
        what="the agent to re-register with the new leader",
    )
    assert get_json(agent.url("/state"))["id"] == agent_id
    assert process_exists(pid)
    assert framework.states("steady") == ["TASK_STARTING", "TASK_RUNNING"]
    framework.kill("steady", grace_seconds=2)
    wait_for(lambda: "TASK_KILLED" in framework.states("steady"), 30, what="TASK_KILLED through the new leader")
