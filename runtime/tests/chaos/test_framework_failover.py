"""Chaos: failover semantics between the masters, the scheduler client and Marathon, with real processes.

A master that steps down (SIGTERM) or dies (SIGKILL) is not a framework error: Marathon follows the new
leader with the same framework id and launches what it is asked to. A framework the master removed gets
ERROR, and Marathon then exits non-zero (systemd restarts it; a standby takes over) instead of accepting
work it cannot launch. Also: deleting a group of running apps finishes its deployment, an unreachable
agent does not start a kill loop, and an unacknowledged TASK_STARTING does not hide that the task runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from http.client import HTTPConnection

import pytest

from chaos.chaos_cluster import SLEEP, app
from harness.http import http
from harness.processes import MesoliteProcess
from harness.waiting import wait_for
from mesolite.resources import parse_resources
from mesolite.scheduler.client import SchedulerClient

pytestmark = pytest.mark.integration


def running_tasks(marathon: MesoliteProcess, app_id: str) -> list[dict]:
    status, _, body = http("GET", marathon.url(f"/v2/apps{app_id}/tasks"), timeout=5)
    return [t for t in body["tasks"] if t["state"] == "TASK_RUNNING"] if status == 200 else []


def deployments(marathon: MesoliteProcess) -> list | None:
    status, _, body = http("GET", marathon.url("/v2/deployments"), timeout=5)
    return body if status == 200 else None


# --- defect 1: a master failover is not a framework error ------------------------------------------------


@pytest.mark.parametrize("fault", [signal.SIGTERM, signal.SIGKILL], ids=["master-steps-down", "master-dies"])
def test_marathon_follows_a_new_leading_master_and_launches_apps(cluster, fault):
    cluster.start_master()
    cluster.leading_master()
    cluster.start_master()
    cluster.start_agent()
    marathon = cluster.start_marathon()
    framework_id = cluster.subscribed_framework_id(marathon)
    assert http("POST", marathon.url("/v2/apps"), app("/before"))[0] == 201
    wait_for(lambda: running_tasks(marathon, "/before"), 60, what="the first app running")

    old_leader = cluster.leading_master()
    old_leader.kill(fault)  # SIGTERM: the master steps down and exits cleanly, as `systemctl restart` does
    new_leader = cluster.leading_master()
    assert new_leader is not old_leader

    status, _, body = http("POST", marathon.url("/v2/apps"), app("/after"))
    assert status == 201, body
    wait_for(lambda: running_tasks(marathon, "/after"), 60, what="an app posted after the failover running")
    framework = cluster.framework(new_leader, framework_id)
    assert framework is not None and framework["active"], "the same framework id, active on the new leader"
    assert running_tasks(marathon, "/before"), "the first app still runs"
    assert marathon.process.poll() is None
    assert "Master is no longer the leader" not in marathon.log()


def test_mesos_execute_finishes_its_task_across_a_master_step_down(cluster, tmp_path):
    cluster.start_master()
    cluster.leading_master()
    cluster.start_master()
    cluster.start_agent()
    output = tmp_path / "mesos-execute.out"
    command = [sys.executable, "-m", "mesolite.cli.execute", f"--master={cluster.mesos_zk}", "--name=survivor"]
    with output.open("wb") as sink:
        execute = subprocess.Popen([*command, "--command=sleep 6"], stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "TASK_RUNNING" in output.read_text(), 60, what="the task running")
        cluster.leading_master().kill(signal.SIGTERM)
        execute.wait(90)
    finally:
        if execute.poll() is None:
            execute.kill()
            execute.wait()
    text = output.read_text()
    assert execute.returncode == 0, text
    assert "TASK_FINISHED" in text and "ERROR" not in text


# --- defect 1: a removed framework is final, and Marathon exits ------------------------------------------


def take_over_and_tear_down(master: MesoliteProcess, framework_id: str) -> None:
    """Subscribe as `framework_id` (a failover: the current scheduler gets ERROR) and TEARDOWN the framework."""
    connection = HTTPConnection("127.0.0.1", master.port, timeout=10)
    info = {"user": "root", "name": "marathon", "id": {"value": framework_id}}
    connection.request(
        "POST",
        "/api/v1/scheduler",
        json.dumps(
            {"type": "SUBSCRIBE", "framework_id": {"value": framework_id}, "subscribe": {"framework_info": info}}
        ),
        {"Content-Type": "application/json", "Accept": "application/json"},
    )
    response = connection.getresponse()
    assert response.status == 200, response.read()
    stream_id = response.getheader("Mesos-Stream-Id")
    try:
        request = urllib.request.Request(
            master.url("/api/v1/scheduler"),
            data=json.dumps({"type": "TEARDOWN", "framework_id": {"value": framework_id}}).encode(),
            headers={"Content-Type": "application/json", "Mesos-Stream-Id": stream_id},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
    finally:
        connection.close()


def test_marathon_exits_non_zero_when_its_framework_is_removed(cluster):
    master = cluster.start_master()
    cluster.leading_master()
    cluster.start_agent()
    marathon = cluster.start_marathon()
    framework_id = cluster.subscribed_framework_id(marathon)

    take_over_and_tear_down(master, framework_id)
    wait_for(lambda: marathon.process.poll() is not None, 30, what="Marathon to exit after ERROR")
    assert marathon.process.returncode != 0, marathon.log()[-3000:]

    # Restarted (as systemd does), it subscribes with the stored framework id, is told it was removed, and
    # exits again: never a leader that accepts apps it cannot launch.
    restarted = cluster.start_marathon(wait=False)
    wait_for(lambda: restarted.process.poll() is not None, 40, what="the restarted Marathon to exit")
    assert restarted.process.returncode != 0
    assert "has been removed" in restarted.log()


# --- defect 6: deleting a group of running apps ends its deployment --------------------------------------


def test_deleting_a_group_of_running_apps_finishes_its_deployment(cluster):
    cluster.start_master()
    cluster.start_agent()
    marathon = cluster.start_marathon()
    group = {"id": "/grp", "apps": [app(f"/grp/app-{n}", instances=2) for n in range(3)]}
    status, _, body = http("POST", marathon.url("/v2/groups"), group)
    assert status == 201, body
    for n in range(3):
        wait_for(lambda n=n: len(running_tasks(marathon, f"/grp/app-{n}")) == 2, 60, what=f"app-{n} running")
    wait_for(lambda: deployments(marathon) == [], 30, what="the group's deployment")

    status, _, body = http("DELETE", marathon.url("/v2/groups/grp"))
    assert status == 200, body
    wait_for(lambda: deployments(marathon) == [], 60, what="the deletion's deployment to finish")
    status, _, apps = http("GET", marathon.url("/v2/apps"))
    assert status == 200 and apps["apps"] == []


# --- defect 9: an unreachable agent does not start a kill loop -------------------------------------------


def kill_calls(master: MesoliteProcess) -> float:
    status, _, metrics = http("GET", master.url("/metrics/snapshot"), timeout=5)
    assert status == 200
    return metrics.get("master/messages_kill_task", 0.0)


def test_an_unreachable_agent_with_marathon_tasks_starts_no_kill_loop(cluster):
    master = cluster.start_master("--agent_ping_timeout=1secs", "--max_agent_ping_timeouts=2")
    agent = cluster.start_agent()
    marathon = cluster.start_marathon()
    assert http("POST", marathon.url("/v2/apps"), app("/web", instances=3))[0] == 201
    wait_for(lambda: len(running_tasks(marathon, "/web")) == 3, 60, what="three running tasks")
    wait_for(lambda: deployments(marathon) == [], 30, what="the deployment")

    agent.process.send_signal(signal.SIGSTOP)  # frozen: misses its pings, the master marks it unreachable

    def unreachable() -> bool:
        status, _, metrics = http("GET", master.url("/metrics/snapshot"), timeout=5)
        return status == 200 and metrics.get("master/slaves_unreachable", 0) >= 1

    wait_for(unreachable, 30, what="the agent marked unreachable")
    # Marathon writes the unreachable tasks off (expungeAfterSeconds 0) and kills them: a handful of KILLs,
    # not one for every answer of the master (which answers a kill of an unreachable task with its state).
    kills_logged_before = len(re.findall(r"killing task", marathon.log()))
    time.sleep(10)
    kills = kill_calls(master)
    kills_logged = len(re.findall(r"killing task", marathon.log())) - kills_logged_before
    assert kills <= 20, f"{kills:.0f} KILL calls reached the master"
    assert kills_logged <= 10, f"Marathon logged {kills_logged} kills in 10 s"
    assert marathon.process.poll() is None and master.process.poll() is None


# --- defect 7: the agent's latest state is the task's state at the master ---------------------------------


async def until(predicate, seconds: float, what: str) -> None:
    """Wait (without blocking the loop) until `predicate()` is truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        if await asyncio.to_thread(predicate):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_an_unacknowledged_starting_does_not_hide_a_running_task(cluster):
    master = cluster.start_master()
    cluster.start_agent("--status_update_retry_interval=1secs")
    updates: list[dict] = []
    unacknowledged: list[dict] = []
    launched = asyncio.Event()
    task_id = f"sleeper-{uuid.uuid4().hex[:8]}"
    client: SchedulerClient

    async def on_event(event: dict) -> None:
        if event["type"] == "OFFERS":
            for offer in event["offers"]["offers"]:
                if launched.is_set():
                    await client.decline([offer["id"]["value"]], {"refuse_seconds": 60})
                    continue
                launched.set()
                task = {
                    "name": task_id,
                    "task_id": {"value": task_id},
                    "agent_id": offer["agent_id"],
                    "resources": parse_resources("cpus:0.1;mem:32").to_protobuf_json(),
                    "command": {"value": SLEEP},
                }
                await client.launch(offer["id"]["value"], [task])
        elif event["type"] == "UPDATE":
            status = event["update"]["status"]
            updates.append(status)
            # A scheduler that failed over before acknowledging TASK_STARTING: the agent keeps re-sending it.
            if status["state"] == "TASK_STARTING" and "uuid" in status:
                unacknowledged.append(status)
            else:
                await client.acknowledge(status)

    client = SchedulerClient(
        cluster.mesos_zk, {"user": "root", "name": "no-ack", "failover_timeout": 600.0}, on_event, reconnect_delay=0.2
    )
    running = asyncio.create_task(client.run())
    try:
        await until(lambda: unacknowledged, 60, "TASK_STARTING")

        def master_state() -> str | None:
            status, _, body = http("GET", master.url("/master/tasks"), timeout=5)
            states = [t["state"] for t in body.get("tasks", []) if t["id"] == task_id] if status == 200 else []
            return states[0] if states else None

        await until(lambda: master_state() == "TASK_RUNNING", 20, "TASK_RUNNING at the master")
        assert {u["state"] for u in updates if "uuid" in u} == {"TASK_STARTING"}, "RUNNING waits for the ack"
        # Reconciliation reports the real state at once too.
        updates.clear()
        await client.reconcile([(task_id, None)])
        await until(lambda: any(u.get("reason") == "REASON_RECONCILIATION" for u in updates), 10, "the answer")
        answer = next(u for u in updates if u.get("reason") == "REASON_RECONCILIATION")
        assert answer["state"] == "TASK_RUNNING"
        # Once TASK_STARTING is acknowledged, TASK_RUNNING follows, in order.
        await client.acknowledge(unacknowledged[-1])
        await until(lambda: any(u["state"] == "TASK_RUNNING" and "uuid" in u for u in updates), 20, "RUNNING")
    finally:
        await client.stop()
        await asyncio.wait_for(running, 10)


def master_task(master: MesoliteProcess, prefix: str) -> dict | None:
    status, _, body = http("GET", master.url("/master/tasks"), timeout=5)
    tasks = [t for t in body.get("tasks", []) if t["id"].startswith(prefix)] if status == 200 else []
    return tasks[0] if tasks else None


def test_after_a_marathon_failover_an_unacknowledged_starting_task_shows_running_at_once(cluster):
    master = cluster.start_master()
    # A long retry interval: without the fix the new Marathon would see TASK_RUNNING only after it.
    cluster.start_agent("--status_update_retry_interval=60secs")
    first = cluster.start_marathon()
    framework_id = cluster.subscribed_framework_id(first)
    second = cluster.start_marathon()
    assert http("POST", first.url("/v2/apps"), app("/starting"))[0] == 201
    wait_for(lambda: master_task(master, "starting."), 60, interval=0.02, what="the task launched")
    first.process.send_signal(signal.SIGSTOP)  # frozen before it can acknowledge TASK_STARTING
    wait_for(
        lambda: any(s["state"] == "TASK_STARTING" for s in master_task(master, "starting.")["statuses"]),
        20,
        what="TASK_STARTING forwarded to the frozen Marathon",
    )
    forwarded = [s["state"] for s in master_task(master, "starting.")["statuses"]]
    if "TASK_RUNNING" in forwarded:
        pytest.skip(f"Marathon acknowledged TASK_STARTING before it was frozen ({forwarded}): nothing to test")

    # The standby leads once the frozen instance's ZooKeeper session expires, and subscribes as the framework.
    def second_leads() -> bool:
        status, _, info = http("GET", second.url("/v2/info"), timeout=5)
        framework = cluster.framework(master, framework_id)
        return status == 200 and info.get("elected") and framework is not None and framework["active"]

    wait_for(second_leads, 40, interval=0.1, what="the standby Marathon subscribed as the framework")
    wait_for(lambda: running_tasks(second, "/starting"), 8, interval=0.1, what="TASK_RUNNING at the new Marathon")
    assert master_task(master, "starting.")["state"] == "TASK_RUNNING"
