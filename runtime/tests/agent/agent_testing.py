"""Helpers for the agent's tests: start an agent as a real process, read its HTTP API, clean up tasks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from conftest import free_port
from mesolite.agent import processes


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

    def kill_tasks(self) -> None:
        """Tests leave no task behind: executors outlive the agent by design."""
        for kill_request in self.work_dir.glob("meta/slaves/*/frameworks/*/executors/*/runs/*"):
            with contextlib.suppress(OSError):
                (kill_request / "kill.request").write_text('{"grace_period_seconds": 0}')
        identities = self.executor_identities()
        for identity in identities:
            processes.signal_process(identity, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(processes.is_alive(i) for i in identities):
            time.sleep(0.05)
        for identity in identities:
            processes.signal_process(identity, signal.SIGKILL)


def get_json(url: str, **query) -> dict | list:
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def agent_tasks(agent_url: str) -> dict[str, dict]:
    """task id -> task of the agent's /state (live and completed)."""
    state = get_json(f"{agent_url}/state")
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
