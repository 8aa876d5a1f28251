"""A real master and one real agent on a fresh chroot of the shared ZooKeeper: what the CLI, DNS and client
compatibility tests need before they can do anything."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from harness.http import get_json
from harness.processes import MesoliteProcess, ProcessLauncher, free_port
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer

AGENT_RESOURCES = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]"


@dataclass
class MasterAndAgent:
    zk_url: str
    master: MesoliteProcess
    agent: MesoliteProcess


def start_master_and_agent(
    launcher: ProcessLauncher,
    zookeeper: ZooKeeperServer,
    directory: Path,
    master_flags: tuple[str, ...] = (),
    timeout: float = 30,
) -> MasterAndAgent:
    """Start both, on 127.0.0.1, and wait until the agent has registered (a command-task agent with ports
    31000-31100); `master_flags` are added to the master's command line."""
    zk_url = zookeeper.url()
    master_port, agent_port = free_port(), free_port()
    master = launcher.start(
        "master", "master", "--ip=127.0.0.1", "--hostname=127.0.0.1", f"--port={master_port}", f"--zk={zk_url}",
        f"--work_dir={directory / 'master'}", *master_flags, port=master_port,
    )  # fmt: skip
    (directory / "agent").mkdir(parents=True, exist_ok=True)
    boot_id = directory / "boot_id"
    boot_id.write_text(f"{uuid.uuid4()}\n")
    agent = launcher.start(
        "agent", "agent", f"--master={zk_url}", "--ip=127.0.0.1", "--hostname=127.0.0.1", f"--port={agent_port}",
        f"--work_dir={directory / 'agent'}", f"--boot_id_file={boot_id}", "--containerizers=mesos",
        f"--resources={AGENT_RESOURCES}", port=agent_port,
    )  # fmt: skip
    wait_for(
        lambda: get_json(master.url("/metrics/snapshot")).get("master/slaves_active", 0) >= 1,
        timeout,
        what="the agent to register with the master",
    )
    return MasterAndAgent(zk_url, master, agent)
