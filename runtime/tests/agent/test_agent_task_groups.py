"""Task groups (LAUNCH_GROUP) end to end: real ZooKeeper, the real master, a real agent.

Each task of a group runs like a command task under the group's executor id; a task of the group that fails or
is killed takes the others with it (Mesos's default executor).
"""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing are redefined as parameters

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from agent_framework import ThreadedFramework
from agent_testing import agent_tasks, home, process_exists, start_registered_agent  # noqa: F401 - a fixture

from harness.http import get_json
from harness.processes import free_port
from harness.waiting import wait_for
from mesolite.resources import Resources, parse_resources

pytestmark = pytest.mark.integration

TASK_RESOURCES = "cpus:0.1;mem:32"


class GroupFramework(ThreadedFramework):
    """Launches queued task groups, each with one LAUNCH_GROUP, on the first offer that fits it."""

    def __init__(self, master: str):
        self._groups: list[tuple[str, list[dict]]] = []
        super().__init__(master, name="task-group-tests")

    def launch_group(self, executor_id: str, commands: dict[str, str]) -> None:
        tasks = [
            {
                "name": task_id,
                "task_id": {"value": task_id},
                "resources": parse_resources(TASK_RESOURCES).to_protobuf_json(),
                "command": {"value": command},
            }
            for task_id, command in commands.items()
        ]
        with self._lock:
            self._groups.append((executor_id, tasks))
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.client.revive()))

    async def _use(self, offer: dict) -> None:
        available = Resources.from_protobuf_json(offer["resources"])
        operations = []
        with self._lock:
            for executor_id, tasks in list(self._groups):
                wanted = Resources()
                for task in tasks:
                    wanted = wanted + Resources.from_protobuf_json(task["resources"])
                if available.contains(wanted):
                    available = available - wanted
                    self._groups.remove((executor_id, tasks))
                    executor = {
                        "type": "DEFAULT",
                        "executor_id": {"value": executor_id},
                        "framework_id": {"value": self.client.framework_id},
                        "resources": [],
                    }
                    group = [{**task, "agent_id": offer["agent_id"]} for task in tasks]
                    operations.append(
                        {"type": "LAUNCH_GROUP", "launch_group": {"executor": executor, "task_group": {"tasks": group}}}
                    )
        if operations:
            await self.client.accept([offer["id"]["value"]], operations)
        else:
            await self.client.decline([offer["id"]["value"]], {"refuse_seconds": 1.0})


@pytest.fixture
def cluster(zookeeper, launcher, home, tmp_path):
    url = zookeeper.url()
    master_port = free_port()
    master = launcher.start(
        "master", "master", f"--zk={url}", "--ip=127.0.0.1", "--hostname=127.0.0.1", f"--port={master_port}",
        f"--work_dir={tmp_path / 'master'}", "--quorum=1", port=master_port,
    )  # fmt: skip
    framework = GroupFramework(url)
    yield url, home, framework, master
    framework.stop()


def test_a_task_group_runs_each_task_to_finished(launcher, cluster):
    url, home, framework, master = cluster
    agent = start_registered_agent(launcher, home, url)
    framework.launch_group("pod", {"sleeper": "sleep 1", "quick": "exit 0"})
    for name in ("sleeper", "quick"):
        wait_for(lambda name=name: "TASK_FINISHED" in framework.states(name), 30, what=f"{name} FINISHED")
        assert framework.states(name) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    tasks = agent_tasks(agent.url())
    assert {tasks[name]["executor_id"] for name in ("sleeper", "quick")} == {"pod"}
    assert tasks["sleeper"]["directory"] != tasks["quick"]["directory"]
    assert all("/executors/pod/runs/" in tasks[name]["directory"] for name in ("sleeper", "quick"))
    master_state = get_json(master.url("/master/state"))
    executors = {t["id"]: t["executor_id"] for f in master_state["completed_frameworks"] + master_state["frameworks"]
                 for t in f["tasks"] + f["completed_tasks"]}  # fmt: skip
    assert executors == {"sleeper": "pod", "quick": "pod"}


def test_a_failing_task_kills_the_rest_of_its_group(launcher, cluster):
    url, home, framework, _ = cluster
    agent = start_registered_agent(launcher, home, url)
    framework.launch_group("doomed", {"survivor": "echo $$ > pid; exec sleep 600", "failing": "sleep 1; exit 3"})
    wait_for(lambda: "TASK_RUNNING" in framework.states("survivor"), 30, what="survivor RUNNING")
    directory = agent_tasks(agent.url())["survivor"]["directory"]
    pid = int(wait_for(lambda: Path(directory, "pid").read_text().strip(), 10, what="pid"))
    wait_for(lambda: "TASK_FAILED" in framework.states("failing"), 30, what="failing FAILED")
    wait_for(lambda: "TASK_KILLED" in framework.states("survivor"), 30, what="survivor KILLED")
    assert framework.states("survivor")[-1] == "TASK_KILLED"
    assert not process_exists(pid)


def test_a_task_group_survives_an_agent_restart_and_is_killed_whole(launcher, cluster):
    url, home, framework, _ = cluster
    agent = start_registered_agent(launcher, home, url)
    names = ("first", "second")
    framework.launch_group("long", {name: "echo $$ > pid; exec sleep 600" for name in names})
    for name in names:
        wait_for(lambda name=name: "TASK_RUNNING" in framework.states(name), 30, what=f"{name} RUNNING")
    tasks = agent_tasks(agent.url())
    pids = {
        name: int(wait_for(lambda d=tasks[name]["directory"]: Path(d, "pid").read_text().strip(), 10, what="pid"))
        for name in names
    }

    agent.kill(signal.SIGKILL)
    restarted = start_registered_agent(launcher, home, url)
    tasks = agent_tasks(restarted.url())
    assert {name: (tasks[name]["state"], tasks[name]["executor_id"]) for name in names} == {
        name: ("TASK_RUNNING", "long") for name in names
    }
    assert all(process_exists(pid) for pid in pids.values())

    framework.kill("first", grace_seconds=1)
    for name in names:
        wait_for(lambda name=name: "TASK_KILLED" in framework.states(name), 30, what=f"{name} KILLED")
    wait_for(lambda: not any(process_exists(pid) for pid in pids.values()), 10, what="the group's processes gone")
