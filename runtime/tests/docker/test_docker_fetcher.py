"""A Docker task with `command.uris` on a real agent and dockerd: the fetched files are in the sandbox, which the
container sees at MESOS_SANDBOX (/mnt/mesos/sandbox), and the fetcher's log stays at the head of `stderr`."""

# ruff: noqa: F811 - pytest fixtures imported from docker_testing and the agent helpers are redefined as parameters

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from docker_testing import (  # noqa: F401 - fixtures
    TEST_LABEL,
    TEST_SESSION,
    cleanup_containers,
    docker_api,
    requires_docker,
    rootfs_image,
)

from conftest import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from agent_fake_master import master  # noqa: F401 - a fixture
from agent_testing import agent_tasks, get_json, home, read_sandbox_file  # noqa: F401 - a fixture

pytestmark = [
    pytest.mark.docker,
    pytest.mark.integration,
    requires_docker,
    pytest.mark.usefixtures("cleanup_containers"),
]


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
