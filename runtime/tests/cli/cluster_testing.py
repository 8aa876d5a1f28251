"""A real one-master, one-agent cluster on the shared ZooKeeper, for the CLI tests."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass

import pytest

from harness.processes import ProcessLauncher, free_port
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer

SERVICES_PRESENT = all(
    importlib.util.find_spec(name) is not None for name in ("mesolite.master.service", "mesolite.agent.service")
)
needs_services = pytest.mark.skipif(
    not SERVICES_PRESENT, reason="`mesolite master` / `mesolite agent` are not in this tree yet"
)


@dataclass
class Cluster:
    zk_url: str
    master_port: int


def run_cli(name: str, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a console script (`mesos-execute`, `mesos-resolve`) of this venv as a real process."""
    module = {"mesos-execute": "mesolite.cli.execute", "mesos-resolve": "mesolite.cli.resolve"}[name]
    return subprocess.run([sys.executable, "-m", module, *arguments], capture_output=True, text=True, timeout=timeout)


def start_cluster(launcher: ProcessLauncher, zookeeper: ZooKeeperServer, tmp_path) -> Cluster:
    zk_url = zookeeper.url()
    master_port, agent_port = free_port(), free_port()
    master = launcher.start(
        "master", "master", "--ip=127.0.0.1", f"--port={master_port}", f"--zk={zk_url}", "--quorum=1",
        f"--work_dir={tmp_path / 'master'}", port=master_port,
    )  # fmt: skip
    launcher.start(
        "agent", "agent", "--ip=127.0.0.1", f"--port={agent_port}", f"--master={zk_url}",
        f"--work_dir={tmp_path / 'agent'}", "--resources=cpus:2;mem:1024;disk:1024;ports:[31000-31100]",
        "--containerizers=mesos", port=agent_port,
    )  # fmt: skip

    def agent_active() -> bool:
        import json
        import urllib.request

        with urllib.request.urlopen(master.url("/metrics/snapshot"), timeout=2) as response:
            return json.load(response).get("master/slaves_active", 0) >= 1

    wait_for(agent_active, 30, what="the agent to register with the master")
    return Cluster(zk_url=zk_url, master_port=master_port)
