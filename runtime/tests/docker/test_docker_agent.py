"""Docker tasks on a real `mesolite agent` process with `--containerizers=docker,mesos` and the real dockerd.

The master is the agent tests' fake (tests/agent/agent_fake_master.py), which shows every status update
the agent sends and acknowledges them; the same tasks through the real master are in
test_docker_cluster.py.
"""

# ruff: noqa: F811 - pytest fixtures imported from docker_testing are redefined as parameters

from __future__ import annotations

import os
import random
import signal
import urllib.request
import uuid

import pytest

# The agent engineer's helpers: an agent process in a private work dir, and the fake master.
from agent_fake_master import FakeMaster, master  # noqa: F401 - a fixture
from agent_testing import AgentHome, agent_tasks, home, read_sandbox_file  # noqa: F401 - a fixture
from docker_testing import (  # noqa: F401 - fixtures
    DOCKER_INTEGRATION,
    TEST_LABEL,
    TEST_SESSION,
    cleanup_containers,
    docker_api,
    nginx_image,
    port_is_free,
    rootfs_image,
)

from harness.http import get_json
from harness.waiting import wait_for
from mesolite.agent import processes
from mesolite.agent.containerizers.docker.spec import LABEL_TASK_ID, LABEL_WORK_DIR

pytestmark = DOCKER_INTEGRATION

PORTS = (31000, 32000)  # AgentHome's --resources


def start_agent(launcher, home: AgentHome, master: FakeMaster, *extra: str):
    arguments = home.arguments(master.address(), "--containerizers=docker,mesos", *extra)
    agent = launcher.start("agent", *arguments, port=home.port)
    wait_for(lambda: get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0, 20, what="registration")
    return agent


def run_docker_task(master: FakeMaster, task_id: str, docker_info: dict, command: dict, resources: str) -> None:
    master.run_task(
        task_id,
        command,
        resources=resources,
        container={"type": "DOCKER", "docker": docker_info},
        labels={"labels": [{"key": TEST_LABEL, "value": TEST_SESSION}]},
    )


def container_of(docker_api, task_id: str) -> dict:
    found = docker_api.containers(all=True, filters={"label": f"{LABEL_TASK_ID}={task_id}"})
    assert len(found) == 1, f"{len(found)} containers for task {task_id}"
    return docker_api.inspect_container(found[0]["Id"])


def free_port_in_agent_range() -> int:
    """A port of the agent's ports resource that nothing listens on (tried from a random start)."""
    start = PORTS[0] + random.randrange(PORTS[1] - PORTS[0])
    for offset in range(PORTS[1] - PORTS[0]):
        port = PORTS[0] + (start - PORTS[0] + offset) % (PORTS[1] - PORTS[0])
        if port_is_free(port) and port_is_free(port + 1):
            return port
    pytest.fail(f"no free port in the agent's ports range {PORTS}")


def test_bridge_nginx_through_the_agent(launcher, home, master, nginx_image, docker_api):
    agent = start_agent(launcher, home, master)
    host_port = free_port_in_agent_range()
    run_docker_task(
        master,
        "web",
        {
            "image": "nginx",  # as the reference nginx.json names it
            "network": "BRIDGE",
            "port_mappings": [{"host_port": host_port, "container_port": 80, "protocol": "tcp"}],
        },
        {"shell": False},
        f"cpus:0.1;mem:64;ports:[{host_port}-{host_port}]",
    )
    running = master.wait_for_state("web", "TASK_RUNNING", timeout=30)
    assert master.states("web") == ["TASK_STARTING", "TASK_RUNNING"]
    network = running["status"]["container_status"]["network_infos"][0]
    assert network["port_mappings"] == [{"host_port": host_port, "container_port": 80, "protocol": "tcp"}]
    assert network["ip_addresses"][0]["ip_address"]

    container = container_of(docker_api, "web")
    assert container["Name"].startswith("/mesos-")
    assert container["Config"]["Labels"][LABEL_WORK_DIR] == str(home.work_dir)

    def page() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=2) as response:
                return response.read().decode()
        except OSError:
            return None

    assert "Welcome to nginx!" in wait_for(page, 15, what="nginx at the mapped host port")
    directory = agent_tasks(agent.url())["web"]["directory"]
    wait_for(
        lambda: "GET / HTTP" in read_sandbox_file(agent.url(), directory, "stdout"),
        10,
        what="nginx's access log through /files/read",
    )

    master.kill_task("web", grace_seconds=3)
    master.wait_for_state("web", "TASK_KILLED", timeout=3 + 10)


def test_refused_and_failed_docker_tasks(launcher, home, master, rootfs_image):
    start_agent(launcher, home, master)
    host_port = free_port_in_agent_range()
    run_docker_task(
        master,
        "outside",
        {
            "image": rootfs_image,
            "network": "BRIDGE",
            "port_mappings": [{"host_port": host_port + 1, "container_port": 80}],
        },
        {"value": "sleep 60"},
        f"cpus:0.1;mem:64;ports:[{host_port}-{host_port}]",
    )
    error = master.wait_for_state("outside", "TASK_ERROR", timeout=30)["status"]
    assert f"host_port {host_port + 1} is not in the task's ports resource" in error["message"]

    run_docker_task(master, "privileged", {"image": rootfs_image, "privileged": True}, {"value": "true"}, "cpus:0.1")
    error = master.wait_for_state("privileged", "TASK_ERROR", timeout=30)["status"]
    assert "privileged is not allowed" in error["message"]

    missing = f"mesolite-test/missing-{uuid.uuid4().hex[:8]}:1"
    run_docker_task(master, "missing", {"image": missing}, {"value": "true"}, "cpus:0.1;mem:32")
    failed = master.wait_for_state("missing", "TASK_FAILED", timeout=30)["status"]
    assert f"Image '{missing}'" in failed["message"]
    assert "TASK_RUNNING" not in master.states("missing")


def test_agent_sigkill_and_restart_with_three_containers_and_two_command_tasks(
    launcher, home, master, rootfs_image, docker_api
):
    agent = start_agent(launcher, home, master)
    agent_id = master.agent_ids[-1]
    containers = ("docker-a", "docker-b", "docker-c")
    for name in containers:
        run_docker_task(
            master, name, {"image": rootfs_image}, {"value": "echo started; exec sleep 600"}, "cpus:0.1;mem:32"
        )
    for name in ("command-a", "command-b"):
        master.run_task(name, {"value": "exec sleep 600"})
    for name in (*containers, "command-a", "command-b"):
        master.wait_for_state(name, "TASK_RUNNING", timeout=30)
    started = {name: container_of(docker_api, name)["State"]["StartedAt"] for name in containers}
    sent_before = len(master.updates())

    agent.kill(signal.SIGKILL)
    restarted = start_agent(launcher, home, master)

    assert master.subscriptions[-1]["type"] == "REREGISTER"
    assert master.agent_ids[-1] == agent_id
    tasks = agent_tasks(restarted.url())
    everything = (*containers, "command-a", "command-b")
    assert {name: tasks[name]["state"] for name in everything} == dict.fromkeys(everything, "TASK_RUNNING")
    for name in containers:
        container = container_of(docker_api, name)
        assert container["State"]["Running"], f"{name}'s container stopped"
        assert container["State"]["StartedAt"] == started[name], f"{name}'s container was restarted"
        assert container["RestartCount"] == 0
    # All was acknowledged before the restart: nothing may be delivered again as new.
    assert len(master.updates()) == sent_before

    # The restarted agent still controls its containers.
    master.kill_task("docker-b", grace_seconds=1)
    master.wait_for_state("docker-b", "TASK_KILLED", timeout=30)
    assert docker_api.containers(all=True, filters={"label": f"{LABEL_TASK_ID}=docker-b"}) == []


def test_an_orphaned_container_is_removed_and_logged_when_the_agent_starts(
    launcher, home, master, rootfs_image, docker_api
):
    name = f"mesos-{uuid.uuid4()}"
    docker_api.create_container(
        rootfs_image,
        command=["sleep", "600"],
        name=name,
        labels={TEST_LABEL: TEST_SESSION, LABEL_WORK_DIR: str(home.work_dir), LABEL_TASK_ID: "left-behind"},
    )
    docker_api.start(name)

    agent = start_agent(launcher, home, master)

    # The agent cleans orphans in the background (a slow dockerd must not delay its registration).
    wait_for(lambda: docker_api.containers(all=True, filters={"name": name}) == [], 30, what=f"{name} to be removed")
    log = wait_for(lambda: name in agent.log() and agent.log(), 10, what="the orphan in the agent's log")
    line = next(line for line in log.splitlines() if name in line)
    assert "orphan" in line and "left-behind" in line


def test_a_dead_executor_is_replaced_and_its_running_container_kept(launcher, home, master, rootfs_image, docker_api):
    agent = start_agent(launcher, home, master)
    command = "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.1; done"
    run_docker_task(master, "steady", {"image": rootfs_image}, {"value": command}, "cpus:0.1;mem:32")
    master.wait_for_state("steady", "TASK_RUNNING", timeout=30)
    started_at = container_of(docker_api, "steady")["State"]["StartedAt"]
    directory = agent_tasks(agent.url())["steady"]["directory"]
    wait_for(lambda: "line 3\n" in read_sandbox_file(agent.url(), directory, "stdout"), 10, what="the first lines")
    [first] = home.executor_identities()

    os.kill(first[0], signal.SIGKILL)

    wait_for(
        lambda: any(i != first and processes.is_alive(i) for i in home.executor_identities()),
        15,
        what="a new executor for the run",
    )
    copied = len(read_sandbox_file(agent.url(), directory, "stdout").splitlines())
    wait_for(
        lambda: len(read_sandbox_file(agent.url(), directory, "stdout").splitlines()) > copied + 3,
        15,
        what="the new executor to copy the container's output",
    )
    container = container_of(docker_api, "steady")
    assert container["State"]["Running"] and container["State"]["StartedAt"] == started_at, "container restarted"
    assert master.states("steady") == ["TASK_STARTING", "TASK_RUNNING"], "the task must neither fail nor restart"
    assert "starting a new executor" in agent.log()

    # The new executor controls the container.
    master.kill_task("steady", grace_seconds=1)
    master.wait_for_state("steady", "TASK_KILLED", timeout=30)
    assert docker_api.containers(all=True, filters={"label": f"{LABEL_TASK_ID}=steady"}) == []
    lines = read_sandbox_file(agent.url(), directory, "stdout").splitlines()
    assert lines == [f"line {i}" for i in range(1, len(lines) + 1)], "a line was lost or copied twice"


# A Docker task with `command.uris`: the fetched files are in the sandbox, which the container sees at
# MESOS_SANDBOX (/mnt/mesos/sandbox), and the fetcher's log stays at the head of `stderr`.
def test_a_docker_task_runs_what_was_fetched_into_its_mounted_sandbox(launcher, home, master, rootfs_image, tmp_path):
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho fetched tool runs in $PWD\necho from the container >&2\n")
    arguments = home.arguments(master.address(), "--containerizers=docker,mesos")
    agent = launcher.start("agent", *arguments, port=home.port)
    wait_for(lambda: get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0, 20, what="registration")
    master.run_task(
        "fetched",
        {"value": 'cd "$MESOS_SANDBOX" && ./tool.sh', "uris": [{"value": str(tool), "executable": True}]},
        resources="cpus:0.1;mem:64",
        container={"type": "DOCKER", "docker": {"image": rootfs_image}},
        labels={"labels": [{"key": TEST_LABEL, "value": TEST_SESSION}]},
    )

    def finished():
        return next((u for u in master.updates("fetched") if u["status"]["state"] == "TASK_FINISHED"), None)

    wait_for(finished, 60, what=f"the task to finish (so far {master.states('fetched')})")
    directory = agent_tasks(agent.url())["fetched"]["directory"]
    assert read_sandbox_file(agent.url(), directory, "stdout") == "fetched tool runs in /mnt/mesos/sandbox\n"
    log = read_sandbox_file(agent.url(), directory, "stderr")
    assert f"Fetched '{tool}' to 'tool.sh'" in log
    assert log.endswith("from the container\n"), "the container's stderr follows the fetcher's log"
