"""A real one-master, one-agent cluster on the shared ZooKeeper, for the CLI tests."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass

import pytest

from harness.cluster import start_master_and_agent
from harness.processes import ProcessLauncher
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
    started = start_master_and_agent(launcher, zookeeper, tmp_path)
    return Cluster(zk_url=started.zk_url, master_port=started.master.port)
