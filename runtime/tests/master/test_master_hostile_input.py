"""Hostile input against a real master: every malformed request gets a 4xx naming what is wrong, never a 500,
and never costs the cluster anything (no offer leaked, no agent connection dropped).

The master runs as a real process; agents are the TEST-ONLY `FakeAgent` of master_helpers.
"""

from __future__ import annotations

import aiohttp
import pytest
from master_helpers import Scheduler, command_task, get_json, start_master

pytestmark = pytest.mark.integration


@pytest.fixture
def master(launcher):
    return start_master(launcher, "--allocation_interval=100ms", "--framework_heartbeat_interval=1secs")


async def post(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict | None = None) -> tuple[int, str]:
    async with http.post(url, data=body, headers={"Content-Type": "application/json", **(headers or {})}) as response:
        return response.status, await response.text()


# (body, expected status, what the answer must say): bodies any client can send without being subscribed.
HOSTILE_BODIES = [
    (b'{"type": "SUBSCRIBE", "x": "\xff\xfe"}', 400, "not valid UTF-8"),
    (b"[" * 10_000 + b"]" * 10_000, 400, "nested deeper"),
    (b'{"type": "SUBSCRIBE", "n": ' + b"9" * 400 + b"}", 400, "digits"),
    (b'{"type": []}', 400, "type"),
    (b'{"type": {"a": 1}}', 400, "type"),
    (b'{"type": 7}', 400, "type"),
    (b'{"type": "SUBSCRIBE", "subscribe": []}', 400, "subscribe: expected an object"),
    (b'{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": 1, "name": "x"}}}', 400, "user"),
    (
        b'{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "x", "capabilities": 5}}}',
        400,
        "subscribe.framework_info.capabilities",
    ),
    (b'{"type": "REVIVE", "framework_id": "abc"}', 400, "framework_id: expected an object"),
    (b'{"type": "REVIVE", "framework_id": {"value": 5}}', 400, "framework_id.value: expected a string"),
    (b'{"type": "KILL", "framework_id": {"value": "f"}, "kill": []}', 400, "kill: expected an object"),
]


@pytest.mark.parametrize(("body", "status", "complaint"), HOSTILE_BODIES)
async def test_hostile_bodies_get_a_4xx_that_says_why(master, http, body, status, complaint):
    code, text = await post(http, master.url("/api/v1/scheduler"), body)
    assert (code, complaint in text) == (status, True), text


async def test_an_unknown_charset_is_415(master, http):
    headers = {"Content-Type": "application/json; charset=klingon"}
    async with http.post(master.url("/api/v1/scheduler"), data=b"{}", headers=headers) as response:
        assert response.status == 415, await response.text()


def accept_with(offer: dict, **accept_fields) -> dict:
    return {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], **accept_fields}}


def launch(task: dict) -> list[dict]:
    return [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]


# Malformed ACCEPTs of a subscribed framework: (a function of the offer -> the call, a path the answer names).
BAD_ACCEPTS = [
    (lambda offer: accept_with(offer, operations=launch({**command_task(offer, "t"), "resources": 5})), "resources"),
    (lambda offer: accept_with(offer, operations=[{"type": "LAUNCH", "launch": [1]}]), "accept.operations[0].launch"),
    (
        lambda offer: accept_with(offer, operations=launch({**command_task(offer, "t"), "container": "x"})),
        "accept.operations[0].launch.task_infos[0].container: expected an object",
    ),
    (
        lambda offer: accept_with(
            offer,
            operations=launch({**command_task(offer, "t"), "kill_policy": {"grace_period": {"nanoseconds": [1]}}}),
        ),
        "kill_policy.grace_period.nanoseconds",
    ),
    (lambda offer: accept_with(offer, operations=[1]), "accept.operations[0]: expected an object"),
    (lambda offer: accept_with(offer, operations=launch(7)), "task_infos[0]: expected an object"),
    (lambda offer: accept_with(offer, operations={"type": "LAUNCH"}), "accept.operations: expected an array"),
    (
        lambda offer: accept_with(offer, operations=launch({**command_task(offer, "t"), "resources": [{"name": 3}]})),
        "resources[0].name",
    ),
    (
        lambda offer: accept_with(offer, operations=launch({**command_task(offer, "t"), "command": {"value": []}})),
        "command.value: expected a string",
    ),
    (lambda offer: accept_with(offer, filters={"refuse_seconds": "soon"}), "accept.filters.refuse_seconds"),
    (lambda offer: accept_with(offer, filters=[]), "accept.filters: expected an object"),
    (
        lambda offer: accept_with(
            offer, operations=[{"type": "LAUNCH_GROUP", "launch_group": {"executor": 1, "task_group": {"tasks": []}}}]
        ),
        "launch_group.executor: expected an object",
    ),
]


async def offered_cpus_after_declining(
    scheduler: Scheduler, agent_id: str, first: list[dict] | None = None
) -> tuple[float, dict]:
    """Decline what is offered, without a filter: the next offer holds every idle resource of the agent."""
    offers = first if first is not None else await scheduler.offers()
    for offer in offers:
        assert offer["agent_id"]["value"] == agent_id
    decline = {"offer_ids": [offer["id"] for offer in offers], "filters": {"refuse_seconds": 0}}
    assert (await scheduler.call({"type": "DECLINE", "decline": decline})).status == 202
    (offer,) = await scheduler.offers()
    return {item["name"]: item for item in offer["resources"]}["cpus"]["scalar"]["value"], offer


async def test_malformed_accepts_are_refused_whole_and_leak_nothing(cluster):
    master, agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    # One task runs, so that idle = total - used is not simply total.
    assert (await scheduler.launch(offer, command_task(offer, "running", cpus=1))).status == 202
    await agent.next("RUN_TASK")
    (offer,) = await scheduler.offers()
    for make_call, complaint in BAD_ACCEPTS:
        response = await scheduler.call(make_call(offer))
        assert response.status == 400, (make_call(offer), response.text)
        assert complaint in response.text, (complaint, response.text)
    # The offer survived every refused call; its resources, and everything else, are all accounted for:
    # total = offered + used + idle, where idle comes back when the offer is declined.
    state = await get_json(scheduler.session, master.url("/master/state"))
    (slave,) = state["slaves"]
    assert slave["used_resources"]["cpus"] == 1.0
    assert slave["offered_resources"]["cpus"] + slave["used_resources"]["cpus"] == slave["resources"]["cpus"] == 4.0
    cpus, offer = await offered_cpus_after_declining(scheduler, agent.agent_id, [offer])
    assert cpus == 3.0
    # And a correct ACCEPT still works.
    assert (await scheduler.launch(offer, command_task(offer, "after-bad-accepts"))).status == 202
    assert (await agent.next("RUN_TASK"))["run_task"]["task"]["task_id"]["value"] == "after-bad-accepts"


async def test_an_accept_refused_after_its_offers_were_claimed_returns_them_all(cluster):
    """An ACCEPT naming a valid and an unknown offer: its tasks are dropped and the valid offer goes back."""
    _master, _agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    call = accept_with(offer, operations=launch(command_task(offer, "dropped")))
    call["accept"]["offer_ids"].append({"value": "no-such-offer"})
    assert (await scheduler.call(call)).status == 202
    status = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (status["state"], status["reason"]) == ("TASK_LOST", "REASON_INVALID_OFFERS")
    (offer,) = await scheduler.offers()
    assert {item["name"]: item for item in offer["resources"]}["cpus"]["scalar"]["value"] == 4.0


TASK_ID_CASES = [
    ("x" * 256, "greater than 255"),
    ("é" * 128, "greater than 255"),  # 256 bytes in UTF-8: the agent's file name limit counts bytes
    (".", "is disallowed"),
    ("..", "is disallowed"),
    ("a/b", "invalid characters"),
    ("a\\b", "invalid characters"),
    ("a\x00b", "invalid characters"),
    ("a\nb", "invalid characters"),
    ("a\x7fb", "invalid characters"),
]


@pytest.mark.parametrize(("task_id", "complaint"), TASK_ID_CASES)
async def test_task_ids_follow_mesos_rules(cluster, task_id, complaint):
    _master, agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    assert (await scheduler.launch(offer, command_task(offer, task_id), command_task(offer, "good"))).status == 202
    status = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (status["state"], status["reason"]) == ("TASK_ERROR", "REASON_TASK_INVALID")
    assert complaint in status["message"]
    assert (await agent.next("RUN_TASK"))["run_task"]["task"]["task_id"]["value"] == "good"


async def test_a_task_id_of_255_bytes_is_fine(cluster):
    _master, agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    task_id = "x" * 255
    assert (await scheduler.launch(offer, command_task(offer, task_id))).status == 202
    assert (await agent.next("RUN_TASK"))["run_task"]["task"]["task_id"]["value"] == task_id


async def test_a_task_that_uses_no_resources_is_refused(cluster):
    """cpus: 0 and mem: 0 are no resources at all (Mesos: "Task uses no resources")."""
    _master, _agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    assert (await scheduler.launch(offer, command_task(offer, "nothing", cpus=0, mem=0))).status == 202
    status = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (status["state"], status["reason"]) == ("TASK_ERROR", "REASON_TASK_INVALID")
    assert "uses no resources" in status["message"]


async def test_agent_routes_refuse_hostile_bodies_and_keep_the_agent(cluster, http):
    master, agent, scheduler = cluster
    headers = {"Mesos-Agent-Id": agent.agent_id}
    for body, complaint in [
        (b"\xff", "UTF-8"),
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper"),
        (b'{"type": []}', "type"),
        (b'{"type": "STATUS_UPDATE", "status_update": []}', "status_update: expected an object"),
        (b'{"type": "STATUS_UPDATE", "status_update": {"status": {"task_id": 1}}}', "status.task_id"),
        (b'{"type": "STATUS_UPDATES", "status_updates": [1]}', "status_updates[0]: expected an object"),
    ]:
        code, text = await post(http, master.url("/internal/agent/call"), body, headers)
        assert (code, complaint in text) == (400, True), (body[:40], code, text)
    for body, complaint in [
        (b'{"type": "REGISTER", "agent_info": {"hostname": "h", "resources": 5}}', "agent_info.resources"),
        (b'{"type": "REGISTER", "agent_info": {"hostname": "h", "port": "x"}}', "agent_info.port"),
        (b'{"type": "REREGISTER", "agent_info": {"hostname": "h"}, "tasks": 3}', "tasks: expected an array"),
        (b'{"type": ["REGISTER"]}', "type"),
    ]:
        code, text = await post(http, master.url("/internal/agent/subscribe"), body)
        assert (code, complaint in text) == (400, True), (body[:40], code, text)
    # A status update for a task id of 300 characters is answered, and the agent stays connected.
    long_id = "y" * 300
    await agent.send_status(scheduler.framework_id, long_id, "TASK_RUNNING")
    update = (await scheduler.reader.next("UPDATE", skip=("HEARTBEAT", "OFFERS")))["update"]["status"]
    assert update["task_id"]["value"] == long_id
    state = await get_json(http, master.url("/master/state"))
    assert [slave["active"] for slave in state["slaves"]] == [True]
    assert await agent.call({"type": "PONG"}) == 202


async def test_no_500_for_a_kill_with_a_malformed_kill_policy(cluster):
    _master, _agent, scheduler = cluster
    call = {
        "type": "KILL",
        "kill": {"task_id": {"value": "t"}, "kill_policy": {"grace_period": {"nanoseconds": [1]}}},
    }
    response = await scheduler.call(call)
    assert response.status == 400 and "kill.kill_policy.grace_period.nanoseconds" in response.text, response.text
