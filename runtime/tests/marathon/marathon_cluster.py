"""The end-to-end Marathon cluster of the Marathon tests: real ZooKeeper, a real master and agents, Marathons as
real processes (the `cluster` fixture of tests/marathon/conftest.py builds one per test)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from marathon_testing import start_marathon

from harness.processes import free_port
from mesolite.agent import processes

SERVE = "exec python3 -m http.server --bind 127.0.0.1 $PORT0"


@dataclass
class Cluster:
    mesos_zk: str
    marathon_zk: str
    launcher: object
    directory: Path
    agents: list = field(default_factory=list)
    masters: list = field(default_factory=list)
    marathons: list = field(default_factory=list)

    def start_master(self):
        port = free_port()
        master = self.launcher.start(
            "master", "master", f"--zk={self.mesos_zk}", "--ip=127.0.0.1", "--hostname=127.0.0.1",
            f"--port={port}", f"--work_dir={self.directory / f'master-{port}'}", "--quorum=1",
            "--allocation_interval=100ms", port=port,
        )  # fmt: skip
        self.masters.append(master)
        return master

    def start_agent(
        self,
        hostname: str,
        attributes: str = "",
        resources: str = "cpus:2;mem:2048;disk:4096",
        extra: tuple = (),
        port_base: int = 24000,
    ):
        """An agent offering 100 ports from `port_base` (24000: below the kernel's ephemeral range and away from
        the 31000-32000 that other tests' agents use on a shared machine; the reference tests use 31000)."""
        port = free_port()
        work = self.directory / f"agent-{port}"
        work.mkdir()
        boot_id = self.directory / f"boot-{port}"
        boot_id.write_text(str(uuid.uuid4()) + "\n")
        base = port_base + 100 * len(self.agents)
        ports = f"ports:[{base}-{base + 99}]"
        agent = self.launcher.start(
            f"agent-{hostname}", "agent", f"--master={self.mesos_zk}", "--ip=127.0.0.1", f"--hostname={hostname}",
            f"--port={port}", f"--work_dir={work}", f"--boot_id_file={boot_id}", f"--resources={resources};{ports}",
            f"--attributes={attributes}", "--registration_backoff_factor=200ms", *extra, port=port,
        )  # fmt: skip
        agent.work_dir = work
        self.agents.append(agent)
        return agent

    def start_marathon(self, *extra: str):
        started = start_marathon(self.launcher, self.mesos_zk, self.marathon_zk, *extra, name="marathon")
        self.marathons.append(started)
        return started

    def kill_tasks(self) -> None:
        """Executors (and Docker containers) outlive agents by design: tests leave none behind."""
        for agent in self.agents:
            if shutil.which("docker"):
                for line in subprocess.run(
                    ["docker", "ps", "-aq", "--filter", f"label=mesos.work_dir={agent.work_dir}"],
                    capture_output=True, text=True, check=False,
                ).stdout.split():  # fmt: skip
                    subprocess.run(["docker", "rm", "-f", line], capture_output=True, check=False)
            for pid_file in agent.work_dir.glob("meta/slaves/*/frameworks/*/executors/*/runs/*/pids/executor.pid"):
                identity = processes.read_identity(pid_file)
                if identity is not None:
                    processes.signal_process(identity, signal.SIGKILL)
