"""Agent restarts: tasks survive a SIGKILL of the agent, and the agent picks up exactly where it stopped.

Driven by the test-only fake master (agent_fake_master.py) so that every update the agent sends is
visible; the same scenario against the real master is in test_agent_with_master.py.
"""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing and agent_fake_master are redefined as parameters

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from agent_fake_master import FakeMaster, master  # noqa: F401 - a fixture
from agent_testing import AgentHome, agent_tasks, home, process_exists, start_agent  # noqa: F401 - a fixture

from harness.http import get_json
from harness.waiting import wait_for

pytestmark = pytest.mark.integration


def task_pid(agent_url: str, task_id: str) -> int:
    directory = agent_tasks(agent_url)[task_id]["directory"]
    return int(wait_for(lambda: Path(directory, "pid").read_text().strip(), 10, what=f"{task_id}'s pid file"))


def test_agent_sigkill_and_restart_keeps_tasks_running(launcher, home, master):
    agent = start_agent(launcher, home, master)
    agent_id = master.agent_ids[-1]
    for name in ("one", "two"):
        master.run_task(name, {"value": "echo $$ > pid; exec sleep 600"})
        master.wait_for_state(name, "TASK_RUNNING")
    pids = {name: task_pid(agent.url(), name) for name in ("one", "two")}
    sent_before = len(master.updates())

    agent.kill(signal.SIGKILL)
    restarted = start_agent(launcher, home, master)

    assert master.subscriptions[-1]["type"] == "REREGISTER"
    assert master.agent_ids[-1] == agent_id
    reregistered = {task["task_id"]["value"]: task["state"] for task in master.subscriptions[-1]["tasks"]}
    assert reregistered == {"one": "TASK_RUNNING", "two": "TASK_RUNNING"}
    tasks = agent_tasks(restarted.url())
    assert {name: tasks[name]["state"] for name in ("one", "two")} == {"one": "TASK_RUNNING", "two": "TASK_RUNNING"}
    for name, pid in pids.items():
        assert process_exists(pid), f"task {name} (pid {pid}) died with the agent"
        assert task_pid(restarted.url(), name) == pid
    # Everything was acknowledged before the restart: nothing may be delivered again as new.
    assert len(master.updates()) == sent_before

    # The restarted agent still controls its tasks.
    master.kill_task("one", grace_seconds=2)
    master.wait_for_state("one", "TASK_KILLED")
    assert not process_exists(pids["one"])


def test_task_that_ends_while_the_agent_is_down_is_reported(launcher, home, master):
    agent = start_agent(launcher, home, master)
    master.run_task("short", {"value": "echo $$ > pid; exec sleep 600"})
    master.run_task("crash", {"value": "echo $$ > pid; exec sleep 600"})
    for name in ("short", "crash"):
        master.wait_for_state(name, "TASK_RUNNING")
    short_pid = task_pid(agent.url(), "short")
    crash_directory = Path(agent_tasks(agent.url())["crash"]["directory"])
    agent.kill(signal.SIGKILL)

    os.kill(short_pid, signal.SIGKILL)  # the task dies: its executor reports it
    executor = next(i for i in home.executor_identities() if str(crash_directory.name) in _run_of(home, i))
    os.kill(executor[0], signal.SIGKILL)  # the executor itself dies: the agent must notice
    start_agent(launcher, home, master)

    failed = master.wait_for_state("short", "TASK_FAILED")
    assert "signal SIGKILL" in failed["status"]["message"]
    lost_executor = master.wait_for_state("crash", "TASK_FAILED")
    assert "executor" in lost_executor["status"]["message"]
    assert lost_executor["status"]["reason"] == "REASON_EXECUTOR_TERMINATED"
    # The task of the dead executor was cleaned up with its container.
    crash_pid = int((crash_directory / "pid").read_text())
    wait_for(lambda: not process_exists(crash_pid), 10, what="the orphaned task to be killed")


def _run_of(home: AgentHome, identity: tuple[int, int]) -> str:
    for pid_file in home.work_dir.glob("meta/slaves/*/frameworks/*/executors/*/runs/*/pids/executor.pid"):
        if pid_file.read_text().split()[0] == str(identity[0]):
            return str(pid_file)
    return ""


def test_unacknowledged_updates_are_resent_after_a_restart(launcher, home, master):
    master.auto_acknowledge = False
    agent = start_agent(launcher, home, master, "--status_update_retry_interval=1hrs")
    master.run_task("pending", {"value": "true"})
    starting = master.wait_for_state("pending", "TASK_STARTING")
    agent.kill(signal.SIGKILL)
    start_agent(launcher, home, master, "--status_update_retry_interval=1hrs")
    wait_for(lambda: len(master.updates("pending")) >= 2, 10, what="the re-sent update")
    resent = master.updates("pending")[1]
    assert resent["status"]["uuid"] == starting["status"]["uuid"]
    assert resent["status"]["state"] == "TASK_STARTING"
    master.acknowledge(resent)
    # The executor finished long ago; its RUNNING and FINISHED follow in order, once each is acknowledged.
    master.acknowledge(master.wait_for_state("pending", "TASK_RUNNING"))
    master.acknowledge(master.wait_for_state("pending", "TASK_FINISHED"))
    assert master.states("pending") == ["TASK_STARTING", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]


def test_reboot_registers_a_new_agent(launcher, home, master):
    agent = start_agent(launcher, home, master)
    first_id = master.agent_ids[-1]
    agent.kill(signal.SIGKILL)
    home.reboot()
    restarted = start_agent(launcher, home, master)
    assert master.subscriptions[-1]["type"] == "REGISTER"
    assert master.agent_ids[-1] != first_id
    assert get_json(restarted.url("/state"))["id"] == master.agent_ids[-1]


def test_refused_reregistration_registers_as_new_agent_and_kills_tasks(launcher, home, master):
    agent = start_agent(launcher, home, master)
    first_id = master.agent_ids[-1]
    master.run_task("doomed", {"value": "echo $$ > pid; exec sleep 600"})
    master.wait_for_state("doomed", "TASK_RUNNING")
    pid = task_pid(agent.url(), "doomed")
    agent.kill(signal.SIGKILL)
    master.refuse_reregistration = "agent was removed"
    restarted = start_agent(launcher, home, master)
    assert master.agent_ids[-1] != first_id
    assert get_json(restarted.url("/state"))["id"] == master.agent_ids[-1]
    wait_for(lambda: not process_exists(pid), 15, what="the removed agent's task to be killed")
