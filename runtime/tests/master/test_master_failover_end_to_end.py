"""Three real masters, the real agent, a real framework (SchedulerClient): kill the leader with SIGKILL.

A new leader is elected; the agent and the framework follow it; no task is lost and no status update is
dropped or delivered twice — including an update that happens while there is no leader at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid

import pytest
from master_helpers import elected, start_contending_master

from harness.http import get_json
from harness.processes import free_port
from harness.waiting import wait_for
from mesolite.agent import processes
from mesolite.resources import parse_resources
from mesolite.scheduler.client import SchedulerCallError, SchedulerClient

pytestmark = pytest.mark.integration


class Framework:
    """Launches queued tasks on offers, acknowledges every update, records them in order."""

    def __init__(self, zk_url: str):
        self.updates: dict[str, list[str]] = {}
        self.queued: list[dict] = []
        self.subscriptions = 0
        self.client = SchedulerClient(
            zk_url,
            {"name": "failover-test", "user": "root", "failover_timeout": 600.0},
            self.on_event,
            reconnect_delay=0.2,
        )

    async def on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "SUBSCRIBED":
            self.subscriptions += 1
        elif kind == "OFFERS":
            for offer in event["offers"]["offers"]:
                tasks, self.queued = self.queued, []
                for task in tasks:
                    task["agent_id"] = offer["agent_id"]
                if tasks:
                    await self.client.launch(offer["id"]["value"], tasks, {"refuse_seconds": 0.5})
                else:
                    await self.client.decline([offer["id"]["value"]], {"refuse_seconds": 0.5})
        elif kind == "UPDATE":
            status = event["update"]["status"]
            if "uuid" in status:  # reconciliation answers carry none and are not part of the stream
                self.updates.setdefault(status["task_id"]["value"], []).append(status["state"])
                await self.client.acknowledge(status)

    def launch(self, task_id: str, command: str) -> None:
        self.queued.append(
            {
                "name": task_id,
                "task_id": {"value": task_id},
                "resources": parse_resources("cpus:0.1;mem:32").to_protobuf_json(),
                "command": {"value": command},
            }
        )

    async def until(self, predicate, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; updates: {self.updates}")
            await asyncio.sleep(0.05)


async def test_leader_sigkill_loses_no_task_and_no_update(zookeeper, launcher, tmp_path):
    zk_url = zookeeper.url()
    masters = [start_contending_master(launcher, zk_url, "--allocation_interval=200ms") for _ in range(3)]
    leader = wait_for(lambda: next((m for m in masters if elected(m, timeout=5)), None), 30, what="a leader")
    work_dir = tmp_path / "agent"
    work_dir.mkdir()
    boot_id = tmp_path / "boot_id"
    boot_id.write_text(str(uuid.uuid4()))
    agent_port = free_port()
    agent = launcher.start(
        "agent",
        "agent",
        f"--master={zk_url}",
        "--ip=127.0.0.1",
        "--hostname=127.0.0.1",
        f"--port={agent_port}",
        f"--work_dir={work_dir}",
        f"--boot_id_file={boot_id}",
        "--resources=cpus:2;mem:2048;disk:4096",
        "--registration_backoff_factor=200ms",
        port=agent_port,
    )
    framework = Framework(zk_url)
    runner = asyncio.create_task(framework.client.run())
    try:
        framework.launch("long", "exec sleep 600")
        framework.launch("short", "sleep 4")
        await framework.until(
            lambda: all("TASK_RUNNING" in framework.updates.get(t, []) for t in ("long", "short")), 30, "RUNNING"
        )
        agent_id = get_json(agent.url("/state"))["id"]

        leader.kill(signal.SIGKILL)
        followers = [m for m in masters if m is not leader]
        new_leader = wait_for(
            lambda: next((m for m in followers if elected(m, timeout=5)), None), 30, what="a new leader"
        )

        # "short" finishes around the failover; its update must reach the framework exactly once.
        await framework.until(lambda: "TASK_FINISHED" in framework.updates.get("short", []), 40, "short FINISHED")
        await framework.until(lambda: framework.subscriptions >= 2, 20, "the framework to re-subscribe")
        # A terminal task stays among the framework's tasks until its update is acknowledged, and the
        # acknowledgement is in flight now: poll without blocking the loop that sends it.
        states = []

        def settled() -> bool:
            states.append(get_json(new_leader.url("/master/state")))
            tasks = [task for framework in states[-1]["frameworks"] for task in framework["tasks"]]
            return states[-1]["activated_slaves"] == 1 and [task["id"] for task in tasks] == ["long"]

        await framework.until(settled, 30, "the agent to re-register and the update of short to be acknowledged")
        state = states[-1]
        assert [slave["id"] for slave in state["slaves"]] == [agent_id]
        (framework_state,) = state["frameworks"]
        assert framework_state["id"] == framework.client.framework_id
        assert {task["id"]: task["state"] for task in framework_state["tasks"]} == {"long": "TASK_RUNNING"}
        assert [task["id"] for task in framework_state["completed_tasks"]] == ["short"]

        await kill_when_subscribed(framework, "long")
        await framework.until(lambda: "TASK_KILLED" in framework.updates.get("long", []), 30, "long KILLED")
        assert framework.updates == {
            "long": ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"],
            "short": ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
        }
    finally:
        with contextlib.suppress(Exception):
            await framework.client.teardown()
        await framework.client.stop()
        runner.cancel()
        with contextlib.suppress(BaseException):
            await runner
        for pid_file in work_dir.glob("meta/slaves/*/frameworks/*/executors/*/runs/*/pids/executor.pid"):
            identity = processes.read_identity(pid_file)
            if identity is not None:
                processes.signal_process(identity, signal.SIGKILL)


async def kill_when_subscribed(framework: Framework, task_id: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            await framework.client.kill(task_id, kill_policy={"grace_period": {"nanoseconds": 10**9}})
            return
        except SchedulerCallError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
