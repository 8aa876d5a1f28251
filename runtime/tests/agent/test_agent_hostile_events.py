"""The real agent never dies on what the master sends (issue 11, hostile input).

A KILL with `kill_policy.grace_period.nanoseconds: [1]` or a task with `"container": "x"` used to end the
agent process (exit status 0: the unit's Restart=on-failure left it down), and a task id over 255
characters dropped its master connection. Events of every kind with fields of the wrong type go through
the fake master (agent_fake_master.py): the agent answers TASK_ERROR where a task is named, ignores the
rest, keeps its one master stream, and still runs tasks afterwards.
"""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing and agent_fake_master are redefined as parameters

from __future__ import annotations

import pytest
from agent_fake_master import FakeMaster, master  # noqa: F401 - a fixture
from agent_testing import AgentHome, home  # noqa: F401 - a fixture

from harness.http import get_json
from harness.processes import MesoliteProcess
from harness.waiting import wait_for

pytestmark = pytest.mark.integration

FRAMEWORK = {"id": {"value": "fake-framework-0000"}, "name": "fake", "user": "root"}


def start_agent(launcher, home: AgentHome, master: FakeMaster) -> MesoliteProcess:
    agent = launcher.start("agent", *home.arguments(master.address()), port=home.port)
    wait_for(lambda: get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0, 20, what="registration")
    return agent


def assert_alive_on_one_stream(agent: MesoliteProcess, master: FakeMaster) -> None:
    assert agent.process.poll() is None, f"the agent exited with {agent.process.returncode}:\n{agent.log()[-3000:]}"
    assert get_json(agent.url("/state"))["id"] == master.agent_ids[-1]
    assert master.connected() == 1
    assert len(master.subscriptions) == 1, "the agent dropped its master stream and subscribed again"
    # Handled as input, not caught as a defect by the last-resort handler of the event loop.
    assert "Traceback" not in agent.log(), agent.log()[-3000:]


def task(task_id: str, **fields) -> dict:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
        "command": {"value": "sleep 600"},
        **fields,
    }


# task id -> (the TaskInfo's bad fields, a word the TASK_ERROR message must contain)
INVALID_TASKS = {
    "container-string": ({"container": "x"}, "container"),
    "container-type-number": ({"container": {"type": 5}}, "container.type"),
    "command-string": ({"command": "x"}, "command"),
    "command-value-number": ({"command": {"value": 5}}, "command.value"),
    "command-shell-string": ({"command": {"value": "true", "shell": "no"}}, "command.shell"),
    "arguments-string": ({"command": {"value": "/bin/true", "shell": False, "arguments": "x"}}, "arguments"),
    "variables-numbers": ({"command": {"value": "true", "environment": {"variables": [5]}}}, "variables[0]"),
    "uris-string": ({"command": {"value": "true", "uris": "x"}}, "uris"),
    "resources-string": ({"resources": "x"}, "resources"),
    "resources-numbers": ({"resources": [5]}, "resources"),
    "kill-policy-list": ({"kill_policy": {"grace_period": {"nanoseconds": [1]}}}, "nanoseconds"),
    "kill-policy-huge": ({"kill_policy": {"grace_period": {"nanoseconds": 10**19}}}, "nanoseconds"),
    "health-check-string": ({"health_check": "x"}, "health_check"),
    "health-check-port": ({"health_check": {"type": "TCP", "tcp": {"port": "x"}}}, "health_check.tcp.port"),
    "labels-string": ({"labels": {"labels": "x"}}, "labels"),
    "name-number": ({"name": 5}, "name"),
}


def test_malformed_tasks_get_task_error_naming_the_field(launcher, home, master):
    agent = start_agent(launcher, home, master)
    for task_id, (fields, _) in INVALID_TASKS.items():
        master.send({"type": "RUN_TASK", "run_task": {"framework": FRAMEWORK, "task": task(task_id, **fields)}})
    long_id = "x" * 300
    master.send({"type": "RUN_TASK", "run_task": {"framework": FRAMEWORK, "task": task(long_id)}})
    for task_id, (_, field) in INVALID_TASKS.items():
        status = master.wait_for_state(task_id, "TASK_ERROR")["status"]
        assert status["reason"] == "REASON_TASK_INVALID"
        assert field in status["message"], (task_id, status["message"])
    status = master.wait_for_state(long_id, "TASK_ERROR")["status"]
    assert "task_id" in status["message"] and "255" in status["message"]
    assert_alive_on_one_stream(agent, master)

    master.run_task("after", {"value": "true"})
    master.wait_for_state("after", "TASK_FINISHED")
    assert_alive_on_one_stream(agent, master)


def test_events_with_fields_of_the_wrong_type_are_ignored(launcher, home, master):
    agent = start_agent(launcher, home, master)
    master.run_task("running", {"value": "sleep 600"})
    master.wait_for_state("running", "TASK_RUNNING")
    ids = {"framework_id": FRAMEWORK["id"], "task_id": {"value": "running"}}
    hostile = [
        {"type": "KILL_TASK", "kill_task": {**ids, "kill_policy": {"grace_period": {"nanoseconds": [1]}}}},
        {"type": "KILL_TASK", "kill_task": {**ids, "kill_policy": "x"}},
        {"type": "KILL_TASK", "kill_task": {"framework_id": 5, "task_id": [1]}},
        {"type": "KILL_TASK", "kill_task": "x"},
        {"type": "RUN_TASK", "run_task": "x"},
        {"type": "RUN_TASK", "run_task": {"framework": [], "task": 5}},
        {"type": "RUN_TASK", "run_task": {"framework": {"id": {"value": "../.."}}, "task": task("dots")}},
        {"type": "RUN_TASK", "run_task": {"framework": FRAMEWORK, "task": task("..")}},
        {"type": "RUN_TASK", "run_task": {"framework": FRAMEWORK, "task": task("a/b")}},
        {"type": "RUN_TASK_GROUP", "run_task_group": {"framework": FRAMEWORK, "executor": [], "task_group": "x"}},
        {"type": "RUN_TASK_GROUP", "run_task_group": {"framework": FRAMEWORK, "task_group": {"tasks": [1, "x"]}}},
        {
            "type": "RUN_TASK_GROUP",
            "run_task_group": {
                "framework": FRAMEWORK,
                "executor": {"executor_id": 5},
                "task_group": {"tasks": [task("grouped")]},
            },
        },
        {"type": "ACKNOWLEDGE", "acknowledge": {**ids, "uuid": 5}},
        {"type": "ACKNOWLEDGE", "acknowledge": {**ids, "uuid": ["x"]}},
        {"type": "RECONCILE", "reconcile": {"framework_id": FRAMEWORK["id"], "tasks": 5}},
        {"type": "RECONCILE", "reconcile": {"framework_id": FRAMEWORK["id"], "tasks": [5, "x", {"task_id": 5}]}},
        {"type": "SHUTDOWN_FRAMEWORK", "shutdown_framework": {"framework_id": []}},
        {"type": "SHUTDOWN_FRAMEWORK", "shutdown_framework": 5},
        {"type": []},
        {"type": None, "x": 1},
        {"type": "PING", "ping": "x"},
        b"[1, 2, 3]",
        b"not json at all",
        b'{"type": "KILL_TASK", "kill_task": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"type": "ACKNOWLEDGE", "acknowledge": {"uuid": ' + b"9" * 400 + b"}}",
        b"\xff\xfe",
    ]
    for event in hostile:
        master.send(event)
    # The events are handled in order: a valid kill after them is carried out only if the agent got past them.
    master.kill_task("running", grace_seconds=1)
    master.wait_for_state("running", "TASK_KILLED")
    for task_id in ("dots", "..", "a/b", "grouped"):
        assert "TASK_RUNNING" not in master.states(task_id)
    assert_alive_on_one_stream(agent, master)
    assert not list(home.work_dir.parent.glob("*/dots")), "an id that climbs out of the work directory"
