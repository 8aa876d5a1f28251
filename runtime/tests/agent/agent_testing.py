"""Helpers for the agent's tests: an agent's home (the `home` fixture), its HTTP API, leaving nothing behind."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from agent_fake_master import FakeMaster

from harness.http import get_json
from harness.processes import MesoliteProcess, ProcessLauncher, free_port, kill_processes_under
from harness.waiting import wait_for
from mesolite.agent import cgroups, processes
from mesolite.agent.containerizers.base import DEFAULT_CGROUPS_ROOT, DEFAULT_DOCKER_SOCKET


@dataclass
class AgentHome:
    """A private work directory and boot id for one test's agent(s)."""

    work_dir: Path
    boot_id_file: Path
    port: int

    @classmethod
    def create(cls, directory: Path) -> AgentHome:
        home = cls(directory / "work", directory / "boot_id", free_port())
        home.work_dir.mkdir()
        home.boot_id_file.write_text(str(uuid.uuid4()) + "\n")
        return home

    def reboot(self) -> None:
        """What a reboot looks like to the agent: a new boot id."""
        self.boot_id_file.write_text(str(uuid.uuid4()) + "\n")

    def arguments(self, master: str, *extra: str) -> list[str]:
        return [
            "agent",
            f"--master={master}",
            "--ip=127.0.0.1",
            "--hostname=127.0.0.1",
            f"--port={self.port}",
            f"--work_dir={self.work_dir}",
            f"--boot_id_file={self.boot_id_file}",
            "--resources=cpus:2;mem:2048;disk:4096;ports:[31000-32000]",
            "--registration_backoff_factor=200ms",
            *extra,
        ]

    def run_directories(self) -> list[Path]:
        """The meta directory of every run, of every agent id this home had (`meta/slaves/latest` is a link)."""
        return [
            run for run in self.work_dir.glob("meta/slaves/*/frameworks/*/executors/*/runs/*")
            if run.parts[-7] != "latest"
        ]  # fmt: skip

    def executor_identities(self) -> list[tuple[int, int]]:
        found = []
        for run in self.run_directories():
            identity = processes.read_identity(run / "pids" / "executor.pid")
            if identity is not None:
                found.append(identity)
        return found

    def remove_tasks(self) -> None:
        """Leave nothing behind. Executors outlive their agent by design, so once the agents are stopped:
        SIGKILL every process working in this home (executors, tasks), remove its agents' containers and
        the cgroups of its command tasks."""
        kill_processes_under(self.work_dir)
        remove_containers_of(self.work_dir)
        for run in self.run_directories():
            leftovers = cgroups.existing_container_cgroups(run.name, DEFAULT_CGROUPS_ROOT)
            leftovers.kill_all()
            leftovers.remove()


def remove_containers_of(work_dir: Path) -> None:
    """Remove the containers that agents with this work_dir started (their `mesos.work_dir` label)."""
    if not Path(DEFAULT_DOCKER_SOCKET).exists():
        return
    import docker  # only where there is a dockerd: the agent's tests run without one too

    from mesolite.agent.containerizers.docker.spec import LABEL_WORK_DIR

    with docker.APIClient(base_url=f"unix://{DEFAULT_DOCKER_SOCKET}", version="auto") as api:
        for container in api.containers(all=True, filters={"label": f"{LABEL_WORK_DIR}={work_dir}"}):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(container["Id"], force=True, v=True)


@pytest.fixture
def home(tmp_path, launcher) -> Iterator[AgentHome]:
    """A private agent home; at the end the agents are stopped first (an agent would start new executors for
    the ones killed here), then everything the test ran in the home is removed."""
    agent_home = AgentHome.create(tmp_path)
    yield agent_home
    launcher.stop_all()
    agent_home.remove_tasks()


def start_registered_agent(launcher: ProcessLauncher, home: AgentHome, master: str) -> MesoliteProcess:
    """The real agent for the master(s) at `master` (a zk:// URL), once it has registered with the leader."""
    agent = launcher.start("agent", *home.arguments(master), port=home.port)
    wait_for(lambda: get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0, 30, what="registration")
    return agent


def agent_tasks(agent_url: str) -> dict[str, dict]:
    """task id -> task of the agent's /state (live and completed)."""
    return tasks_of_state(get_json(f"{agent_url}/state"))


def tasks_of_state(state: dict) -> dict[str, dict]:
    """task id -> task (with its sandbox `directory`) of an agent's /state, live and completed."""
    found = {}
    for framework in state["frameworks"] + state["completed_frameworks"]:
        for executor in framework["executors"] + framework["completed_executors"]:
            for task in executor["tasks"] + executor["completed_tasks"]:
                found[task["id"]] = {**task, "directory": executor["directory"]}
    return found


def read_sandbox_file(agent_url: str, directory: str, name: str) -> str:
    return get_json(f"{agent_url}/files/read", path=f"{directory}/{name}", offset=0)["data"]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return processes.start_time(pid) is not None


def start_agent(launcher: ProcessLauncher, home: AgentHome, master: FakeMaster, *extra: str) -> MesoliteProcess:
    """The real agent for a test's `FakeMaster`, once it has registered."""
    agent = launcher.start("agent", *home.arguments(master.address(), *extra), port=home.port)
    wait_for(lambda: get_json(agent.url("/metrics/snapshot"))["slave/registered"] == 1.0, 20, what="registration")
    return agent
