"""Maintenance as Mesos does it (master/maintenance.py), on real masters over HTTP, with real ZooKeeper for failover.

The schedule (`/maintenance/schedule`, the v1 operator calls), machines going DOWN and UP, offers that carry
`unavailability`, inverse offers and their answers in `/maintenance/status`, and Mesos 1.9's agent calls:
DRAIN_AGENT, REACTIVATE_AGENT, MARK_AGENT_GONE. Agents are the TEST-ONLY `FakeAgent` of master_helpers.
"""

from __future__ import annotations

import json
import signal

import pytest
from master_helpers import (
    FakeAgent,
    Scheduler,
    command_task,
    elected,
    get_json,
    start_contending_master,
    start_master,
)

from harness.waiting import wait_for
from mesolite.security.authentication import basic_authorization

pytestmark = pytest.mark.integration

# The FakeAgent's machine: its hostname and the address it connects from.
THIS_MACHINE = {"hostname": "127.0.0.1", "ip": "127.0.0.1"}
OTHER_MACHINE = {"hostname": "other.example", "ip": "10.0.0.2"}
START = {"nanoseconds": 1_900_000_000_000_000_000}
HOUR = {"nanoseconds": 3600 * 1_000_000_000}
SKIP = ("HEARTBEAT", "UPDATE")


@pytest.fixture
def master(launcher):
    return start_master(launcher, "--allocation_interval=100ms", "--agent_ping_timeout=1secs")


def schedule(*windows: tuple[list[dict], dict]) -> dict:
    return {"windows": [{"machine_ids": machines, "unavailability": when} for machines, when in windows]}


async def post(http, url: str, body: object) -> tuple[int, str]:
    async with http.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}) as response:
        return response.status, await response.text()


async def operator(http, master, call: dict) -> tuple[int, str]:
    return await post(http, master.url("/api/v1"), call)


async def running_task(scheduler: Scheduler, agent: FakeAgent, task_id: str, **task_fields) -> dict:
    """Launch a task on the framework's offer and report it running; returns the offer of what is left (unused
    resources come back at once, and may be offered before or after the framework hears that the task runs)."""
    (offer,) = await scheduler.offers()
    task = {**command_task(offer, task_id), **task_fields}
    await scheduler.launch(offer, task, refuse_seconds=0)
    await agent.next("RUN_TASK")
    await agent.send_status(scheduler.framework_id, task_id, "TASK_RUNNING")
    spare = None
    running = False
    while spare is None or not running:
        event = await scheduler.reader.next("UPDATE", "OFFERS")
        if event["type"] == "OFFERS":
            (spare,) = event["offers"]["offers"]
        else:
            running = running or event["update"]["status"]["state"] == "TASK_RUNNING"
    return spare


async def test_schedule_validation_names_the_field_and_the_reason(master, http):
    bad = {
        "windows[0].machine_ids[0]: Both 'hostname' and 'ip' for a machine are empty": schedule(
            ([{}], {"start": START})
        ),
        'windows[1].machine_ids[0]: Machine \'{"hostname":"127.0.0.1","ip":"127.0.0.1"}\' appears more than '
        "once in the schedule": schedule(([THIS_MACHINE], {"start": START}), ([THIS_MACHINE], {"start": START})),
        "windows[0].unavailability.duration: Unavailability 'duration' is negative": schedule(
            ([THIS_MACHINE], {"start": START, "duration": {"nanoseconds": -1}})
        ),
        "windows[0].machine_ids[0].hostname: Machine hostname must be lowercase": schedule(
            ([{"hostname": "Agent1"}], {"start": START})
        ),
        "windows[0].machine_ids[0].ip: 'not-an-ip' is not an IPv4 address": schedule(
            ([{"ip": "not-an-ip"}], {"start": START})
        ),
        "windows[0].machine_ids: List of machines in the maintenance window is empty": schedule(([], {"start": START})),
        "windows[0].unavailability.start: expecting": schedule(([THIS_MACHINE], {})),
    }
    for message, body in bad.items():
        status, text = await post(http, master.url("/maintenance/schedule"), body)
        assert (status, f"schedule.{message}" in text) == (400, True), (message, status, text)
    # The v1 call names its own path.
    status, text = await operator(
        http,
        master,
        {"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {"schedule": schedule(([{}], {}))}},
    )
    assert status == 400 and "update_maintenance_schedule.schedule.windows[0].machine_ids[0]: Both" in text
    # Nothing was stored by the refused requests.
    assert await get_json(http, master.url("/maintenance/schedule")) == {"windows": []}

    # /machine/down only for scheduled machines, /machine/up only for DOWN ones.
    status, text = await post(http, master.url("/machine/down"), [OTHER_MACHINE])
    assert status == 400 and "[0]: Machine" in text and "is not part of a maintenance schedule" in text
    status, text = await post(http, master.url("/machine/down"), [])
    assert status == 400 and "List of machines is empty" in text
    assert (await post(http, master.url("/maintenance/schedule"), schedule(([OTHER_MACHINE], {"start": START}))))[
        0
    ] == 200
    status, text = await post(http, master.url("/machine/up"), [OTHER_MACHINE])
    assert status == 400 and "is not in DOWN mode and cannot be brought up" in text
    assert (await post(http, master.url("/machine/down"), [OTHER_MACHINE]))[0] == 200
    status, text = await post(http, master.url("/machine/down"), [OTHER_MACHINE])
    assert status == 400 and "is not in DRAINING mode and cannot be brought down" in text
    # A DOWN machine cannot leave the schedule but by /machine/up.
    status, text = await post(http, master.url("/maintenance/schedule"), {"windows": []})
    assert status == 400 and "is deactivated and cannot be removed from the schedule" in text
    status, text = await operator(http, master, {"type": "GET_FLAGS"})
    assert status == 400 and "Unsupported operator call type 'GET_FLAGS'" in text


async def test_schedule_round_trip_unavailability_and_inverse_offers(cluster, http):
    master, agent, scheduler = cluster
    before = await running_task(scheduler, agent, "web-1")
    assert "unavailability" not in before

    wanted = schedule(([THIS_MACHINE, OTHER_MACHINE], {"start": START, "duration": HOUR}))
    status, text = await post(http, master.url("/maintenance/schedule"), wanted)
    assert status == 200, text
    assert await get_json(http, master.url("/maintenance/schedule")) == wanted
    status, text = await operator(http, master, {"type": "GET_MAINTENANCE_SCHEDULE"})
    assert json.loads(text) == {
        "type": "GET_MAINTENANCE_SCHEDULE",
        "get_maintenance_schedule": {"schedule": wanted},
    }

    # The framework running a task there gets an inverse offer for the agent, with the window's unavailability.
    inverse = (await scheduler.reader.next("OFFERS", skip=SKIP))["offers"]
    assert inverse["offers"] == []
    (inverse_offer,) = inverse["inverse_offers"]
    assert inverse_offer["agent_id"]["value"] == agent.agent_id
    assert inverse_offer["framework_id"]["value"] == scheduler.framework_id
    assert inverse_offer["unavailability"] == {"start": START, "duration": HOUR}
    status_view = await get_json(http, master.url("/maintenance/status"))
    assert status_view["down_machines"] == []
    draining = {json.dumps(item["id"], sort_keys=True): item for item in status_view["draining_machines"]}
    (unknown,) = draining[json.dumps(THIS_MACHINE, sort_keys=True)]["statuses"]
    assert (unknown["status"], unknown["framework_id"]["value"]) == ("UNKNOWN", scheduler.framework_id)

    # Offers from the draining machine carry the unavailability.
    await scheduler.call(
        {"type": "DECLINE", "decline": {"offer_ids": [before["id"]], "filters": {"refuse_seconds": 0}}}
    )
    (after,) = (await scheduler.reader.next("OFFERS", skip=SKIP))["offers"]["offers"]
    assert after["unavailability"] == {"start": START, "duration": HOUR}

    # The framework's answer shows in /maintenance/status (and in the v1 call).
    result = await scheduler.call(
        {"type": "ACCEPT_INVERSE_OFFERS", "accept_inverse_offers": {"inverse_offer_ids": [inverse_offer["id"]]}}
    )
    assert result.status == 202, result.text
    status, text = await operator(http, master, {"type": "GET_MAINTENANCE_STATUS"})
    view = json.loads(text)["get_maintenance_status"]["status"]
    draining = {json.dumps(item["id"], sort_keys=True): item for item in view["draining_machines"]}
    (accepted,) = draining[json.dumps(THIS_MACHINE, sort_keys=True)]["statuses"]
    assert (accepted["status"], accepted["framework_id"]["value"]) == ("ACCEPT", scheduler.framework_id)

    # An empty schedule puts every machine back UP: offers without unavailability again.
    assert (await post(http, master.url("/maintenance/schedule"), {"windows": []}))[0] == 200
    assert await get_json(http, master.url("/maintenance/status")) == {"draining_machines": [], "down_machines": []}
    await scheduler.call({"type": "DECLINE", "decline": {"offer_ids": [after["id"]], "filters": {"refuse_seconds": 0}}})
    event = await scheduler.reader.next("OFFERS", skip=(*SKIP, "RESCIND_INVERSE_OFFER"))
    assert "unavailability" not in event["offers"]["offers"][0]


async def test_machine_down_removes_its_agents_and_refuses_them_until_up(cluster, http):
    master, agent, scheduler = cluster
    await running_task(scheduler, agent, "web-1")
    assert (await post(http, master.url("/maintenance/schedule"), schedule(([THIS_MACHINE], {"start": START}))))[
        0
    ] == 200

    status, text = await operator(
        http, master, {"type": "START_MAINTENANCE", "start_maintenance": {"machines": [THIS_MACHINE]}}
    )
    assert status == 200, text
    # As Mesos: the agent is told to shut down and removed; its task is lost to the (not partition-aware) framework.
    assert "Machine DOWN" in (await agent.next("SHUTDOWN"))["shutdown"]["message"]
    lost = (await scheduler.reader.next("UPDATE", skip=("HEARTBEAT", "OFFERS", "RESCIND")))["update"]["status"]
    assert (lost["task_id"]["value"], lost["state"], lost["reason"]) == ("web-1", "TASK_LOST", "REASON_AGENT_REMOVED")
    assert "Operator initiated 'Machine DOWN'" in lost["message"]
    state = await get_json(http, master.url("/master/state"))
    assert state["slaves"] == []
    assert await get_json(http, master.url("/maintenance/status")) == {
        "draining_machines": [],
        "down_machines": [THIS_MACHINE],
    }

    # No agent registers from a DOWN machine: neither the old one with its id nor a new one.
    await agent.disconnect()
    response = await agent.subscribe(expect_status=403)
    assert "DOWN for maintenance" in await response.text()
    newcomer = FakeAgent(http, master.url(), port=5052)
    response = await newcomer.subscribe(expect_status=403)
    assert "DOWN for maintenance" in await response.text()

    # STOP_MAINTENANCE: the machine is UP and out of the schedule; an agent there registers (a new agent).
    status, text = await operator(
        http, master, {"type": "STOP_MAINTENANCE", "stop_maintenance": {"machines": [THIS_MACHINE]}}
    )
    assert status == 200, text
    assert await get_json(http, master.url("/maintenance/schedule")) == {"windows": []}
    assert await get_json(http, master.url("/maintenance/status")) == {"draining_machines": [], "down_machines": []}
    await newcomer.subscribe()
    assert newcomer.agent_id != agent.agent_id
    status, text = await post(http, master.url("/machine/up"), [THIS_MACHINE])
    assert status == 400 and "is not part of a maintenance schedule" in text
    await newcomer.disconnect()


async def test_schedule_and_modes_survive_a_master_failover(zookeeper, launcher, http):
    zk_url = zookeeper.url()
    masters = [start_contending_master(launcher, zk_url, "--allocation_interval=100ms") for _ in range(2)]
    leader = wait_for(lambda: next((m for m in masters if elected(m)), None), timeout=30, what="a leader")
    wanted = schedule(([THIS_MACHINE], {"start": START, "duration": HOUR}), ([OTHER_MACHINE], {"start": START}))
    assert (await post(http, leader.url("/maintenance/schedule"), wanted))[0] == 200
    assert (await post(http, leader.url("/machine/down"), [THIS_MACHINE]))[0] == 200

    leader.kill(signal.SIGKILL)
    (follower,) = [m for m in masters if m is not leader]
    wait_for(lambda: elected(follower), timeout=30, what="the other master to lead")

    assert await get_json(http, follower.url("/maintenance/schedule")) == wanted
    assert await get_json(http, follower.url("/maintenance/status")) == {
        "draining_machines": [{"id": OTHER_MACHINE, "statuses": []}],
        "down_machines": [THIS_MACHINE],
    }
    # The new leader refuses an agent of the DOWN machine too.
    response = await FakeAgent(http, follower.url()).subscribe(expect_status=403)
    assert "DOWN for maintenance" in await response.text()


async def test_mark_agent_gone_removes_the_agent_for_good(master, http):
    agent = FakeAgent(http, master.url())
    await agent.subscribe()
    scheduler = Scheduler(http, master.url())
    await scheduler.subscribe({"capabilities": [{"type": "PARTITION_AWARE"}]})
    await running_task(scheduler, agent, "db-1")

    status, text = await operator(
        http, master, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent.agent_id}}}
    )
    assert status == 200, text
    await agent.next("SHUTDOWN")
    gone = (await scheduler.reader.next("UPDATE", skip=("HEARTBEAT", "OFFERS", "RESCIND")))["update"]["status"]
    assert (gone["task_id"]["value"], gone["state"], gone["reason"]) == (
        "db-1",
        "TASK_GONE_BY_OPERATOR",
        "REASON_AGENT_REMOVED_BY_OPERATOR",
    )
    assert (await get_json(http, master.url("/master/slaves")))["slaves"] == []
    # It can never come back with that id (it may register as a new agent).
    await agent.disconnect()
    response = await agent.subscribe(expect_status=403)
    assert "was removed" in await response.text()
    # Marking it gone again is fine; an unknown agent is not.
    status, _ = await operator(
        http, master, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent.agent_id}}}
    )
    assert status == 200
    status, text = await operator(
        http, master, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "no-such-agent"}}}
    )
    assert status == 404 and "Unknown agent no-such-agent" in text
    await scheduler.close()


async def test_drain_agent_kills_tasks_stops_offers_and_reactivates(cluster, http):
    master, agent, scheduler = cluster
    ten_seconds = {"grace_period": {"nanoseconds": 10_000_000_000}}
    spare = await running_task(scheduler, agent, "web-1", kill_policy=ten_seconds)

    drain = {"agent_id": {"value": agent.agent_id}, "max_grace_period": {"nanoseconds": 1_000_000_000}}
    status, text = await operator(http, master, {"type": "DRAIN_AGENT", "drain_agent": drain})
    assert status == 200, text
    # Its offer is rescinded, its task killed with the grace period capped at max_grace_period.
    rescind = await scheduler.reader.next("RESCIND", skip=SKIP)
    assert rescind["rescind"]["offer_id"] == spare["id"]
    kill = (await agent.next("KILL_TASK"))["kill_task"]
    assert kill["task_id"]["value"] == "web-1"
    assert kill["kill_policy"] == {"grace_period": {"nanoseconds": 1_000_000_000}}
    (slave,) = (await get_json(http, master.url("/master/slaves")))["slaves"]
    assert slave["deactivated"] is True
    assert slave["drain_info"] == {
        "state": "DRAINING",
        "config": {"mark_gone": False, "max_grace_period": {"nanoseconds": 1_000_000_000}},
    }

    # Once its last task ends it is DRAINED, and still offers nothing.
    await agent.send_status(scheduler.framework_id, "web-1", "TASK_KILLED")
    (slave,) = (await get_json(http, master.url("/master/slaves")))["slaves"]
    assert slave["drain_info"]["state"] == "DRAINED"
    await scheduler.reader.nothing(1.5, "OFFERS")

    # REACTIVATE_AGENT: offered again.
    status, text = await operator(
        http, master, {"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": agent.agent_id}}}
    )
    assert status == 200, text
    (offer,) = (await scheduler.reader.next("OFFERS", skip=SKIP))["offers"]["offers"]
    assert offer["agent_id"]["value"] == agent.agent_id
    (slave,) = (await get_json(http, master.url("/master/slaves")))["slaves"]
    assert slave["deactivated"] is False and "drain_info" not in slave
    status, text = await operator(
        http, master, {"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": agent.agent_id}}}
    )
    assert status == 400 and "is not deactivated or draining" in text


async def test_drain_agent_with_mark_gone_removes_it_once_drained(cluster, http):
    master, agent, scheduler = cluster
    await running_task(scheduler, agent, "web-1")
    drain = {"agent_id": {"value": agent.agent_id}, "mark_gone": True}
    status, text = await operator(http, master, {"type": "DRAIN_AGENT", "drain_agent": drain})
    assert status == 200, text
    kill = (await agent.next("KILL_TASK"))["kill_task"]
    assert kill["kill_policy"] == {"grace_period": {"nanoseconds": 3_000_000_000}}  # Mesos's default
    assert len((await get_json(http, master.url("/master/slaves")))["slaves"]) == 1
    await agent.send_status(scheduler.framework_id, "web-1", "TASK_KILLED")
    await agent.next("SHUTDOWN")
    assert (await get_json(http, master.url("/master/slaves")))["slaves"] == []
    await agent.disconnect()
    await agent.subscribe(expect_status=403)


async def test_maintenance_endpoints_need_credentials_and_follow_the_acls(launcher, tmp_path, http):
    credentials = tmp_path / "credentials.json"
    principals = [{"principal": "ops", "secret": "ops-secret"}, {"principal": "dev", "secret": "dev-secret"}]
    credentials.write_text(json.dumps({"credentials": principals}))
    only_ops = [{"principals": {"values": ["ops"]}, "machines": {"type": "ANY"}}]
    acls = {
        "update_maintenance_schedules": only_ops,
        "start_maintenances": only_ops,
        "drain_agents": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
        "permissive": False,
    }
    master = start_master(
        launcher, f"--credentials={credentials}", "--authenticate_http_readwrite", f"--acls={json.dumps(acls)}"
    )
    body = json.dumps(schedule(([THIS_MACHINE], {"start": START})))
    headers = {"Content-Type": "application/json"}
    for path in ("/maintenance/schedule", "/machine/down", "/machine/up", "/api/v1"):
        async with http.post(master.url(path), data=body, headers=headers) as response:
            assert response.status == 401, path
    async with http.post(
        master.url("/maintenance/schedule"),
        data=body,
        headers={**headers, "Authorization": basic_authorization("ops", "ops-secret")},
    ) as response:
        assert response.status == 200, await response.text()
    # Another principal is refused by the ACLs (the schedule, machine down, DRAIN_AGENT), naming the action.
    dev = {**headers, "Authorization": basic_authorization("dev", "dev-secret")}
    for path, body_of_request, action in (
        ("/maintenance/schedule", body, "update_maintenance_schedules"),
        ("/machine/down", json.dumps([THIS_MACHINE]), "start_maintenances"),
        ("/api/v1", json.dumps({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": "x"}}}), "drain_agents"),
    ):
        async with http.post(master.url(path), data=body_of_request, headers=dev) as response:
            assert (response.status, action in await response.text()) == (403, True), path
    # Reading the status needs no credentials (a read-only endpoint, without --authenticate_http_readonly), but
    # with "permissive": false an action the ACLs do not grant (get_maintenance_statuses) is refused.
    async with http.get(master.url("/maintenance/status")) as response:
        assert response.status == 403


async def test_a_draining_agent_stays_draining_across_a_master_failover(zookeeper, launcher, http):
    zk_url = zookeeper.url()
    masters = [start_contending_master(launcher, zk_url, "--allocation_interval=100ms") for _ in range(2)]
    leader = wait_for(lambda: next((m for m in masters if elected(m)), None), timeout=30, what="a leader")
    agent = FakeAgent(http, leader.url())
    await agent.subscribe()
    scheduler = Scheduler(http, leader.url())
    await scheduler.subscribe({"failover_timeout": 300})
    offer = await running_task(scheduler, agent, "web-1")
    drain = {"agent_id": {"value": agent.agent_id}, "max_grace_period": {"nanoseconds": 0}}
    status, text = await operator(http, leader, {"type": "DRAIN_AGENT", "drain_agent": drain})
    assert status == 200, text
    await agent.next("KILL_TASK")
    await scheduler.close()

    leader.kill(signal.SIGKILL)
    (follower,) = [m for m in masters if m is not leader]
    wait_for(lambda: elected(follower), timeout=30, what="the other master to lead")
    await agent.disconnect()
    agent.base_url = follower.url()
    reported = {
        "task_id": {"value": "web-1"},
        "framework_id": {"value": scheduler.framework_id},
        "agent_id": {"value": agent.agent_id},
        "name": "web-1",
        "state": "TASK_RUNNING",
        "resources": command_task(offer, "x")["resources"],
    }
    framework_info = {"id": {"value": scheduler.framework_id}, "user": "root", "name": "test-framework"}
    await agent.subscribe(tasks=[reported], frameworks=[framework_info])
    # The new leader knows the drain: the agent is told again to kill what still runs, and offers nothing.
    kill = (await agent.next("KILL_TASK"))["kill_task"]
    assert (kill["task_id"]["value"], kill["kill_policy"]) == ("web-1", {"grace_period": {"nanoseconds": 0}})
    (slave,) = (await get_json(http, follower.url("/master/slaves")))["slaves"]
    assert (slave["deactivated"], slave["drain_info"]["state"]) == (True, "DRAINING")
    await agent.send_status(scheduler.framework_id, "web-1", "TASK_KILLED")
    (slave,) = (await get_json(http, follower.url("/master/slaves")))["slaves"]
    assert slave["drain_info"]["state"] == "DRAINED"
    await agent.disconnect()
