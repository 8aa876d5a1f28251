"""End to end: a framework launches an nginx container through the real master and agent (with ZooKeeper),
on a host port taken from its offer, reaches it, and kills it."""

# ruff: noqa: F811 - pytest fixtures imported from docker_testing are redefined as parameters

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from pathlib import Path

import pytest
from agent_testing import AgentHome, home  # noqa: F401 - a fixture
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

from harness.processes import free_port
from mesolite.agent.containerizers.docker.spec import LABEL_TASK_ID

pytestmark = DOCKER_INTEGRATION


def start_cluster(launcher, zookeeper, home: AgentHome, tmp_path: Path) -> str:
    """One master and one agent with `--containerizers=docker,mesos`; returns the zk URL frameworks use."""
    zk = zookeeper.url()
    master_port = free_port()
    launcher.start(
        "master",
        "master",
        f"--zk={zk}",
        "--ip=127.0.0.1",
        "--hostname=127.0.0.1",
        f"--port={master_port}",
        "--quorum=1",
        f"--work_dir={tmp_path / 'master'}",
        port=master_port,
    )
    launcher.start("agent", *home.arguments(zk, "--containerizers=docker,mesos"), port=home.port)
    return zk


def nginx_task(offer: dict, host_port: int) -> dict:
    return {
        "name": "nginx",
        "task_id": {"value": "nginx-e2e"},
        "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": host_port, "end": host_port}]}},
        ],
        "command": {"shell": False},
        "container": {
            "type": "DOCKER",
            "docker": {
                "image": "nginx",
                "network": "BRIDGE",
                "port_mappings": [{"host_port": host_port, "container_port": 80, "protocol": "tcp"}],
            },
        },
        "labels": {"labels": [{"key": TEST_LABEL, "value": TEST_SESSION}]},
    }


def offered_free_port(offer: dict) -> int | None:
    for resource in offer["resources"]:
        if resource["name"] == "ports":
            for port_range in resource["ranges"]["range"]:
                for port in range(port_range["begin"], port_range["end"] + 1):
                    if port_is_free(port):
                        return port
    return None


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


async def test_framework_runs_nginx_on_an_offered_host_port(
    launcher, zookeeper, home, tmp_path, nginx_image, docker_api
):
    from mesolite.scheduler.client import SchedulerClient

    zk = start_cluster(launcher, zookeeper, home, tmp_path)
    offers: asyncio.Queue = asyncio.Queue()
    updates: asyncio.Queue = asyncio.Queue()

    def on_event(event: dict) -> None:
        if event["type"] == "OFFERS":
            for offer in event["offers"]["offers"]:
                offers.put_nowait(offer)
        elif event["type"] == "UPDATE":
            updates.put_nowait(event["update"]["status"])

    client = SchedulerClient(zk, {"user": "root", "name": "docker-e2e"}, on_event)
    running_client = asyncio.create_task(client.run())
    try:
        offer = await asyncio.wait_for(offers.get(), 30)
        host_port = offered_free_port(offer)
        assert host_port is not None, f"no free port in the offer {offer['resources']}"
        await client.launch(offer["id"]["value"], [nginx_task(offer, host_port)])

        async def next_state(wanted: str) -> dict:
            while True:
                status = await asyncio.wait_for(updates.get(), 60)
                if status.get("uuid"):
                    await client.acknowledge(status)
                assert status["state"] in ("TASK_STARTING", "TASK_RUNNING", wanted), status
                if status["state"] == wanted:
                    return status

        running = await next_state("TASK_RUNNING")
        network = running["container_status"]["network_infos"][0]
        assert network["port_mappings"] == [{"host_port": host_port, "container_port": 80, "protocol": "tcp"}]
        page = await _eventually(lambda: fetch(f"http://127.0.0.1:{host_port}/"), 15)
        assert "Welcome to nginx!" in page
        assert docker_api.containers(filters={"label": f"{LABEL_TASK_ID}=nginx-e2e"})

        await client.kill("nginx-e2e", offer["agent_id"]["value"])
        killed = await next_state("TASK_KILLED")
        assert killed["task_id"]["value"] == "nginx-e2e"
        assert docker_api.containers(all=True, filters={"label": f"{LABEL_TASK_ID}=nginx-e2e"}) == []
    finally:
        with contextlib.suppress(Exception):
            await client.teardown()
        await client.stop()
        await asyncio.wait_for(running_client, 10)


async def _eventually(probe, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(probe)
        if result:
            return result
        await asyncio.sleep(0.2)
    pytest.fail(f"nothing after {seconds:.0f}s")
