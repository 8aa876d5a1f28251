"""Three real masters on a real ZooKeeper: election as Mesos does it, redirects, failover, the registry.

Agents here are the TEST-ONLY `FakeAgent` (see master_helpers): the point is the master's half of
failover — ids kept, tasks kept, agents that never come back reported.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
from kazoo.client import KazooClient
from master_helpers import FakeAgent, Scheduler, command_task, elected, get_json, start_contending_master

from harness.waiting import wait_for
from mesolite.zookeeper.url import parse_zookeeper_url

pytestmark = pytest.mark.integration

# Offers every 100 ms, and an agent that stops answering is noticed within seconds: the tests wait less.
QUICK_MASTER_FLAGS = ("--allocation_interval=100ms", "--agent_ping_timeout=1secs")


def leader_of(masters) -> object:
    def exactly_one():
        leaders = [master for master in masters if master.process.poll() is None and elected(master)]
        return leaders[0] if len(leaders) == 1 else None

    return wait_for(exactly_one, timeout=30, what="exactly one elected master")


async def test_election_redirects_and_failover(zookeeper, launcher, http):
    zk_url = zookeeper.url()
    masters = [
        start_contending_master(launcher, zk_url, *QUICK_MASTER_FLAGS, "--agent_reregister_timeout=6secs")
        for _ in range(3)
    ]
    leader = leader_of(masters)
    followers = [master for master in masters if master is not leader]

    # The znodes are Mesos's: json.info_<10 digits>, MasterInfo JSON, lowest sequence leads.
    url = parse_zookeeper_url(zk_url)
    client = KazooClient(hosts=url.hosts)
    client.start()
    try:

        def members():
            found = sorted(child for child in client.get_children(url.path) if child.startswith("json.info_"))
            return found if len(found) == 3 else None

        children = wait_for(members, timeout=10, what="three json.info_ members")
        assert all(len(child) == len("json.info_") + 10 for child in children)
        info = json.loads(client.get(f"{url.path}/{children[0]}")[0])
    finally:
        client.stop()
        client.close()
    assert info["pid"] == f"master@127.0.0.1:{leader.port}" and info["version"] == "1.11.0"
    assert info["address"] == {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": leader.port}

    # Followers send API and state requests to the leader, Mesos style.
    for follower in followers:
        async with http.get(follower.url("/master/state?x=1"), allow_redirects=False) as response:
            assert response.status == 307
            assert response.headers["Location"] == f"//127.0.0.1:{leader.port}/master/state?x=1"
        async with http.post(follower.url("/api/v1/scheduler"), json={"type": "SUBSCRIBE"}, allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (307, f"//127.0.0.1:{leader.port}/api/v1/scheduler")
        async with http.get(follower.url("/redirect"), allow_redirects=False) as response:
            assert response.headers["Location"] == f"//127.0.0.1:{leader.port}"
        async with http.get(follower.url("/health")) as response:
            assert response.status == 200

    # Two agents and a framework with a task on each.
    agents = [FakeAgent(http, leader.url(), port=6000 + index) for index in range(2)]
    for agent in agents:
        await agent.subscribe()
    scheduler = Scheduler(http, leader.url())
    await scheduler.subscribe({"failover_timeout": 300})
    launched = {}
    while len(launched) < 2:
        for offer in await scheduler.offers():
            if offer["agent_id"]["value"] in launched.values():
                continue
            task_id = f"task-{len(launched)}"
            await scheduler.launch(offer, command_task(offer, task_id))
            launched[task_id] = offer["agent_id"]["value"]
    for agent in agents:
        task_id = (await agent.next("RUN_TASK"))["run_task"]["task"]["task_id"]["value"]
        await agent.send_status(scheduler.framework_id, task_id, "TASK_RUNNING")
    await scheduler.close()
    await asyncio.sleep(0.5)  # let the registry flush (every 100 ms here)

    # Kill the leader outright: another master takes over.
    leader.kill(signal.SIGKILL)
    new_leader = leader_of(followers)
    for agent in agents:
        await agent.disconnect()
        agent.base_url = new_leader.url()

    # The first agent comes back with its id and its task; the second never does.
    survivor, _gone = agents
    survivor_task = next(task for task, agent_id in launched.items() if agent_id == survivor.agent_id)
    lost_task = next(task for task in launched if task != survivor_task)
    reported = {
        "task_id": {"value": survivor_task},
        "framework_id": {"value": scheduler.framework_id},
        "agent_id": {"value": survivor.agent_id},
        "name": survivor_task,
        "state": "TASK_RUNNING",
        "resources": command_task({"agent_id": {}}, "x")["resources"],
    }
    framework_info = {
        "id": {"value": scheduler.framework_id},
        "user": "root",
        "name": "test-framework",
        "failover_timeout": 300,
    }
    old_id = survivor.agent_id
    await survivor.subscribe(tasks=[reported], frameworks=[framework_info])
    assert survivor.agent_id == old_id

    again = Scheduler(http, new_leader.url())
    await again.subscribe({"failover_timeout": 300}, framework_id=scheduler.framework_id)
    state = await get_json(http, new_leader.url("/master/state"))
    assert state["leader"] == f"master@127.0.0.1:{new_leader.port}"
    assert [slave["id"] for slave in state["slaves"] if slave["active"]] == [old_id]
    assert [task["id"] for task in state["frameworks"][0]["tasks"]] == [survivor_task]

    # While the missing agent may still re-register, the master says nothing definite about its task (as
    # Mesos does): reconciling or killing it gets no answer, while an unknown agent's task is reported lost.
    gone_agent = {"value": launched[lost_task]}
    explicit = [{"task_id": {"value": lost_task}, "agent_id": gone_agent}, {"task_id": {"value": "ghost"}}]
    await again.call({"type": "RECONCILE", "reconcile": {"tasks": explicit}})
    await again.call({"type": "KILL", "kill": {"task_id": {"value": lost_task}, "agent_id": gone_agent}})
    ghost = (await again.reader.next("UPDATE", skip=("HEARTBEAT", "OFFERS")))["update"]["status"]
    assert (ghost["task_id"]["value"], ghost["state"]) == ("ghost", "TASK_LOST")

    # After the re-registration timeout the missing agent's task is reported lost.
    status = (await again.reader.next("UPDATE", within=15, skip=("HEARTBEAT", "OFFERS")))["update"]["status"]
    assert (status["task_id"]["value"], status["state"], status["reason"]) == (
        lost_task,
        "TASK_LOST",
        "REASON_AGENT_REMOVED",
    )
    await again.call({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": lost_task}}]}})
    reconciled = (await again.reader.next("UPDATE", skip=("HEARTBEAT", "OFFERS")))["update"]["status"]
    assert reconciled["state"] == "TASK_LOST"
    state = await get_json(http, new_leader.url("/master/state"))
    assert state["unreachable_slaves"] == 1
    await again.close()
    await survivor.disconnect()


async def test_a_master_that_loses_its_session_stops_leading(zookeeper, launcher, http):
    zk_url = zookeeper.url()
    masters = [start_contending_master(launcher, zk_url, *QUICK_MASTER_FLAGS) for _ in range(2)]
    leader = leader_of(masters)
    (other,) = [master for master in masters if master is not leader]
    # Freeze the leader for longer than its session timeout: ZooKeeper expires it and the other takes over.
    leader.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: elected(other), timeout=20, what="the other master to be elected")
    finally:
        leader.process.send_signal(signal.SIGCONT)
    # Thawed, the old leader must not act as one: it redirects to the new leader, never two leaders.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = [elected(master) for master in masters]
        assert states.count(True) <= 1, "two masters acting as leader"
        if not elected(leader):
            break
        await asyncio.sleep(0.1)
    assert not elected(leader)
    # Until its new session has read who leads it answers 503; then it redirects to the leader.
    location = None
    deadline = time.monotonic() + 10
    while location is None and time.monotonic() < deadline:
        async with http.get(leader.url("/master/state"), allow_redirects=False) as response:
            assert response.status in (307, 503)
            location = response.headers.get("Location")
        await asyncio.sleep(0.1)
    assert location == f"//127.0.0.1:{other.port}/master/state"


async def test_a_master_restarted_on_the_same_address_never_redirects_to_itself(zookeeper, launcher, http):
    """Defect 5: the killed process's znode still leads until its session expires; the new process on the same
    address must answer 503 meanwhile, not a 307 to itself ("more than 3 redirects"), then lead."""
    zk_url = zookeeper.url()
    first = start_contending_master(launcher, zk_url, *QUICK_MASTER_FLAGS, "--zk_session_timeout=4secs")
    wait_for(lambda: elected(first), timeout=30, what="the first master to lead")
    first.kill(signal.SIGKILL)
    again = launcher.start(
        "master", *first.arguments[3:], port=first.port
    )  # the same command line: same address, a new master id
    answers = []
    deadline = time.monotonic() + 30
    while not elected(again) and time.monotonic() < deadline:
        async with http.get(again.url("/master/state"), allow_redirects=False) as response:
            answers.append((response.status, response.headers.get("Location"), await response.text()))
        await asyncio.sleep(0.2)
    assert elected(again), "the restarted master never led"
    redirects = [answer for answer in answers if answer[0] == 307]
    assert not redirects, f"redirected to itself: {redirects[:3]}"
    assert any("has not expired yet" in text for status, _, text in answers if status == 503), answers[:5]
