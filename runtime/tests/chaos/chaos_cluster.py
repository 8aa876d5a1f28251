"""The chaos tests' cluster: real masters contending in one ZooKeeper chroot, real agents and Marathons, and the
helpers the chaos tests and the reliability benchmark (bench/reliability.py) share.

A plain module rather than part of a test module or conftest, so that the benchmark runs what the tests run
(fixtures built on it are in tests/chaos/conftest.py).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.client import KazooClient

from harness.http import http
from harness.processes import MesoliteProcess, ProcessLauncher, free_port
from harness.waiting import wait_for
from mesolite.zookeeper.url import parse_zookeeper_url

SLEEP = "sleep 600"
MARATHON_FAST_FAILOVER = "--zk_session_timeout=3000"

# Redirects are answers to look at where masters are sampled (which master redirects where, and only the
# leader answers 200), not to follow.
http_without_redirects = functools.partial(http, timeout=5, follow_redirects=False)


@dataclass
class Cluster:
    """Masters contending in one ZooKeeper chroot, real agents, Marathons; all real processes."""

    mesos_zk: str
    marathon_zk: str
    launcher: ProcessLauncher
    directory: Path
    masters: list[MesoliteProcess] = field(default_factory=list)
    agents: list[MesoliteProcess] = field(default_factory=list)
    marathons: list[MesoliteProcess] = field(default_factory=list)

    def start_master(self, *extra: str) -> MesoliteProcess:
        port = free_port()
        master = self.launcher.start(
            "master", "master", f"--zk={self.mesos_zk}", "--ip=127.0.0.1", "--hostname=127.0.0.1",
            f"--port={port}", f"--work_dir={self.directory / f'master-{port}'}", "--zk_session_timeout=2secs",
            "--registry_flush_interval=100ms", "--allocation_interval=100ms", *extra, port=port,
        )  # fmt: skip
        self.masters.append(master)
        return master

    def start_agent(self, *extra: str) -> MesoliteProcess:
        port = free_port()
        work = self.directory / f"agent-{port}"
        work.mkdir()
        boot_id = self.directory / f"boot-{port}"
        boot_id.write_text(str(uuid.uuid4()) + "\n")
        base = 25000 + 100 * len(self.agents)
        agent = self.launcher.start(
            "agent", "agent", f"--master={self.mesos_zk}", "--ip=127.0.0.1", "--hostname=127.0.0.1",
            f"--port={port}", f"--work_dir={work}", f"--boot_id_file={boot_id}",
            f"--resources=cpus:4;mem:4096;disk:4096;ports:[{base}-{base + 99}]",
            "--registration_backoff_factor=200ms", *extra, port=port,
        )  # fmt: skip
        self.agents.append(agent)
        return agent

    def start_marathon(self, *extra: str, wait: bool = True) -> MesoliteProcess:
        port = free_port()
        marathon = self.launcher.start(
            "marathon", "marathon", f"--master={self.mesos_zk}", f"--zk={self.marathon_zk}", f"--http_port={port}",
            "--hostname=127.0.0.1", "--http_address=127.0.0.1", MARATHON_FAST_FAILOVER, *extra, port=port,
            health_path="/v2/apps" if wait else None,
        )  # fmt: skip
        self.marathons.append(marathon)
        return marathon

    def leading_master(self, timeout: float = 40) -> MesoliteProcess:
        def find() -> MesoliteProcess | None:
            for master in self.masters:
                if master.process.poll() is None:
                    status, _, metrics = http("GET", master.url("/metrics/snapshot"), timeout=2)
                    if status == 200 and metrics.get("master/elected") == 1.0:
                        return master
            return None

        return wait_for(find, timeout, interval=0.2, what="an elected master")

    def framework(self, master: MesoliteProcess, framework_id: str) -> dict | None:
        status, _, body = http("GET", master.url("/master/frameworks"), timeout=5)
        if status != 200:
            return None
        return next((f for f in body["frameworks"] if f["id"] == framework_id), None)

    def subscribed_framework_id(self, marathon: MesoliteProcess, timeout: float = 40) -> str:
        """Marathon's framework id, once the leading master reports that framework active."""

        def active() -> str | None:
            status, _, info = http("GET", marathon.url("/v2/info"), timeout=5)
            framework_id = info.get("frameworkId") if status == 200 else None
            if not framework_id:
                return None
            framework = self.framework(self.leading_master(), framework_id)
            return framework_id if framework and framework["active"] else None

        return wait_for(active, timeout, interval=0.2, what="Marathon's framework active on the leading master")


def app(app_id: str, instances: int = 1) -> dict:
    return {"id": app_id, "cmd": SLEEP, "cpus": 0.1, "mem": 16, "instances": instances}


def session_of_member(zk_url: str, label: str) -> int:
    """The session id that owns the lowest election member `label_*` under `zk_url`'s path."""
    url = parse_zookeeper_url(zk_url)
    client = KazooClient(hosts=url.hosts)
    client.start(20)
    try:
        path = url.path
        members = sorted(child for child in client.get_children(path) if child.startswith(f"{label}_"))
        assert members, f"no {label} member under {path}"
        return client.exists(f"{path}/{members[0]}").ephemeralOwner
    finally:
        client.stop()
        client.close()
