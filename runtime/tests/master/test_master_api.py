"""The v1 scheduler API, the agent protocol's master half, and the operator endpoints of a real master.

The master runs as a real process (standalone, no ZooKeeper: election is tested elsewhere). Agents are
the TEST-ONLY `FakeAgent` of master_helpers, so that each test can say exactly which status arrives when.
"""

from __future__ import annotations

import asyncio

import pytest
from master_helpers import FakeAgent, Scheduler, command_task, get_json, launch_on_agent, start_master

pytestmark = pytest.mark.integration


@pytest.fixture
def master(launcher):
    return start_master(
        launcher,
        "--allocation_interval=100ms",
        "--framework_heartbeat_interval=500ms",
        "--agent_ping_timeout=500ms",
        "--max_agent_ping_timeouts=3",
    )


async def test_subscribe_streams_recordio_with_stream_id_and_heartbeats(master, http):
    scheduler = Scheduler(http, master.url())
    event = await scheduler.subscribe({"name": "heartbeat-test"})
    assert scheduler.reader.response.headers["Content-Type"].startswith("application/json")
    assert len(scheduler.stream_id) == 36
    subscribed = event["subscribed"]
    assert subscribed["heartbeat_interval_seconds"] == 0.5
    info = subscribed["master_info"]
    assert info["version"] == "1.11.0" and info["pid"] == f"master@127.0.0.1:{master.port}"
    assert info["address"] == {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": master.port}
    assert info["ip"] == 0x0100007F  # 127.0.0.1 in network byte order, read as a little-endian uint32
    await scheduler.next("HEARTBEAT", within=3)
    await scheduler.close()


async def test_offers_carry_v1_fields_and_tasks_run_through_the_agent(cluster):
    _master, agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    assert offer["agent_id"] == {"value": agent.agent_id}
    assert offer["framework_id"] == {"value": scheduler.framework_id}
    assert offer["hostname"] == "127.0.0.1"
    resources = {item["name"]: item for item in offer["resources"]}
    assert resources["cpus"]["scalar"] == {"value": 4.0}
    assert resources["ports"]["ranges"] == {"range": [{"begin": 31000, "end": 32000}]}
    assert offer["allocation_info"] == {"role": "*"}

    response = await scheduler.launch(offer, command_task(offer, "task-1"))
    assert response.status == 202
    run = (await agent.next("RUN_TASK"))["run_task"]
    assert run["task"]["task_id"] == {"value": "task-1"}
    assert run["framework"]["id"] == {"value": scheduler.framework_id}

    status_uuid = await agent.send_status(scheduler.framework_id, "task-1", "TASK_RUNNING")
    update = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (update["state"], update["uuid"], update["agent_id"]) == (
        "TASK_RUNNING",
        status_uuid,
        {"value": agent.agent_id},
    )
    acknowledge = {"agent_id": update["agent_id"], "task_id": update["task_id"], "uuid": update["uuid"]}
    assert (await scheduler.call({"type": "ACKNOWLEDGE", "acknowledge": acknowledge})).status == 202
    forwarded = (await agent.next("ACKNOWLEDGE"))["acknowledge"]
    assert forwarded == {
        "framework_id": {"value": scheduler.framework_id},
        "task_id": {"value": "task-1"},
        "uuid": status_uuid,
    }

    # The unused part of the offer comes back after the default 5 s filter; the task's part stays used.
    state = await get_json(scheduler.session, f"{scheduler.base_url}/master/state")
    (framework,) = state["frameworks"]
    assert [task["id"] for task in framework["tasks"]] == ["task-1"]
    assert framework["tasks"][0]["state"] == "TASK_RUNNING"
    assert framework["used_resources"]["cpus"] == 0.1

    await agent.send_status(scheduler.framework_id, "task-1", "TASK_FINISHED")
    finished = (await scheduler.next("UPDATE"))["update"]["status"]
    assert finished["state"] == "TASK_FINISHED"
    await scheduler.call(
        {
            "type": "ACKNOWLEDGE",
            "acknowledge": {"agent_id": finished["agent_id"], "task_id": finished["task_id"], "uuid": finished["uuid"]},
        }
    )
    await agent.next("ACKNOWLEDGE")
    state = await get_json(scheduler.session, f"{scheduler.base_url}/master/state")
    assert [task["id"] for task in state["frameworks"][0]["completed_tasks"]] == ["task-1"]
    metrics = await get_json(scheduler.session, f"{scheduler.base_url}/metrics/snapshot")
    assert metrics["master/tasks_finished"] == 1.0 and metrics["master/tasks_running"] == 0.0


BAD_CALLS = [
    # (body, Content-Type, status, what the answer must say)
    (b"{not json", "application/json", 400, "Failed to parse body into JSON"),
    (b"[1, 2]", "application/json", 400, "Expecting a JSON object"),
    (b'{"type": "DANCE"}', "application/json", 400, "Unknown call type 'DANCE'"),
    (b"\x08\x01", "application/x-protobuf", 415, "Protobuf requests are not supported"),
    (b"{}", "text/plain", 415, "Expecting 'Content-Type' of application/json"),
    (
        b'{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}',
        "application/json",
        400,
        "subscribe.framework_info.user",
    ),
    (
        b'{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "x", "failover_timeout": -1}}}',
        "application/json",
        400,
        "failover_timeout must be a non-negative number",
    ),
    (b'{"type": "REVIVE"}', "application/json", 400, "Expecting 'framework_id' to be present"),
    (
        b'{"type": "REVIVE", "framework_id": {"value": "nope"}}',
        "application/json",
        400,
        "Framework nope cannot be found",
    ),
]


async def test_bad_calls_get_a_clear_4xx(master, http):
    for body, content_type, status, complaint in BAD_CALLS:
        headers = {"Content-Type": content_type}
        async with http.post(master.url("/api/v1/scheduler"), data=body, headers=headers) as response:
            assert (response.status, body) == (status, body)
            assert complaint in await response.text(), body
    async with http.get(master.url("/api/v1/scheduler")) as response:
        assert response.status == 405


async def test_bad_calls_of_a_subscribed_framework_disturb_nothing(cluster):
    _master, agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    for call, complaint in [
        ({"type": "ACCEPT"}, "Expecting 'accept' to be present"),
        ({"type": "ACCEPT", "accept": {"offer_ids": "x"}}, "accept.offer_ids: expected an array"),
        (
            {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [{"type": "RESERVE"}]}},
            "'RESERVE' is not supported",
        ),
        (
            {"type": "DECLINE", "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": "soon"}}},
            "decline.filters.refuse_seconds: expected a number",
        ),
        ({"type": "KILL", "kill": {}}, "kill.task_id: required field missing"),
        (
            {
                "type": "ACKNOWLEDGE",
                "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "!!"},
            },
            "is not base64",
        ),
        ({"type": "REVIVE", "revive": {"roles": ["other"]}}, "not subscribed to role(s) other"),
        (
            {"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": {"user": "u", "name": "n"}}},
            "not supported",
        ),
    ]:
        response = await scheduler.call(call)
        assert response.status == 400, call
        assert complaint in response.text, call
    # The offer survived every refused call.
    assert (await scheduler.launch(offer, command_task(offer, "after-bad-calls"))).status == 202
    assert (await agent.next("RUN_TASK"))["run_task"]["task"]["task_id"]["value"] == "after-bad-calls"


async def test_wrong_or_missing_stream_id_is_refused_and_disturbs_nothing(cluster):
    _master, agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    wrong = await scheduler.call({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]]}}, stream_id="0" * 36)
    assert wrong.status == 400
    missing = await scheduler.call({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]]}}, stream_id=None)
    assert missing.status == 400
    # The offer is still valid: the refused calls changed nothing.
    assert (await scheduler.launch(offer, command_task(offer, "still-fine"))).status == 202
    assert (await agent.next("RUN_TASK"))["run_task"]["task"]["task_id"]["value"] == "still-fine"


async def test_accept_of_a_gone_offer_drops_its_tasks_and_nothing_else(cluster):
    _master, agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    assert (await scheduler.launch(offer, command_task(offer, "first"))).status == 202
    await agent.next("RUN_TASK")
    # The same offer again: it no longer exists.
    assert (await scheduler.launch(offer, command_task(offer, "second"))).status == 202
    status = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (status["task_id"]["value"], status["state"], status["reason"]) == (
        "second",
        "TASK_LOST",
        "REASON_INVALID_OFFERS",
    )
    assert "no longer valid" in status["message"] and "uuid" not in status
    # A partition-aware framework hears TASK_DROPPED instead.
    aware = Scheduler(scheduler.session, scheduler.base_url)
    await aware.subscribe({"name": "aware", "capabilities": [{"type": "PARTITION_AWARE"}]})
    assert (await aware.launch(offer, command_task(offer, "third"))).status == 202
    # (It may be offered the rest of the agent first: offers are not what this test is about.)
    status = (await aware.reader.next("UPDATE", skip=("HEARTBEAT", "OFFERS")))["update"]["status"]
    assert (status["state"], status["reason"]) == ("TASK_DROPPED", "REASON_INVALID_OFFERS")
    await aware.close()
    state = await get_json(scheduler.session, f"{scheduler.base_url}/master/state")
    tasks = {task["id"]: task["state"] for framework in state["frameworks"] for task in framework["tasks"]}
    assert tasks == {"first": "TASK_STAGING"}


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda task: task.pop("command"), "at least one (but not both)"),
        (lambda task: task["resources"][0]["scalar"].update(value=64), "more resources"),
        (lambda task: task.update(agent_id={"value": "elsewhere"}), "offer is for"),
        (lambda task: task.update(task_id={"value": "a/b"}), "contains invalid characters"),
        (lambda task: task.update(resources=[]), "uses no resources"),
    ],
)
async def test_invalid_tasks_get_task_error_and_valid_neighbours_launch(cluster, mutate, complaint):
    _master, agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    bad = command_task(offer, "bad")
    mutate(bad)
    good = command_task(offer, "good")
    assert (await scheduler.launch(offer, bad, good)).status == 202
    status = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (status["state"], status["reason"], status["source"]) == (
        "TASK_ERROR",
        "REASON_TASK_INVALID",
        "SOURCE_MASTER",
    )
    assert complaint in status["message"]
    assert (await agent.next("RUN_TASK"))["run_task"]["task"]["task_id"]["value"] == "good"


async def test_decline_filters_then_revive_reoffers(cluster):
    _master, _agent, scheduler = cluster
    (offer,) = await scheduler.offers()
    decline = {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 3600}}
    assert (await scheduler.call({"type": "DECLINE", "decline": decline})).status == 202
    await scheduler.reader.nothing(1.0, "OFFERS")
    assert (await scheduler.call({"type": "REVIVE"})).status == 202
    (again,) = await scheduler.offers(within=3)
    assert again["id"] != offer["id"]
    assert (await scheduler.call({"type": "SUPPRESS"})).status == 202
    await scheduler.call({"type": "DECLINE", "decline": {"offer_ids": [again["id"]], "filters": {"refuse_seconds": 0}}})
    await scheduler.reader.nothing(1.0, "OFFERS")


async def test_kill_reaches_the_agent_and_unknown_tasks_are_reported_lost(cluster):
    _master, agent, scheduler = cluster
    await launch_on_agent(scheduler, agent, "victim")
    kill = {"task_id": {"value": "victim"}, "kill_policy": {"grace_period": {"nanoseconds": 1000}}}
    assert (await scheduler.call({"type": "KILL", "kill": kill})).status == 202
    killed = (await agent.next("KILL_TASK"))["kill_task"]
    assert killed["task_id"] == {"value": "victim"} and killed["kill_policy"] == kill["kill_policy"]
    assert (await scheduler.call({"type": "KILL", "kill": {"task_id": {"value": "ghost"}}})).status == 202
    status = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (status["task_id"]["value"], status["state"]) == ("ghost", "TASK_LOST")


async def test_reconcile_explicit_and_implicit(cluster):
    _master, agent, scheduler = cluster
    await launch_on_agent(scheduler, agent, "known")
    await agent.send_status(scheduler.framework_id, "known", "TASK_RUNNING")
    await scheduler.next("UPDATE")
    await scheduler.call({"type": "RECONCILE", "reconcile": {"tasks": []}})
    implicit = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (implicit["task_id"]["value"], implicit["state"], implicit["reason"]) == (
        "known",
        "TASK_RUNNING",
        "REASON_RECONCILIATION",
    )
    assert "uuid" not in implicit
    explicit = {
        "tasks": [
            {"task_id": {"value": "known"}},
            {"task_id": {"value": "unknown"}, "agent_id": {"value": agent.agent_id}},
        ]
    }
    await scheduler.call({"type": "RECONCILE", "reconcile": explicit})
    first = (await scheduler.next("UPDATE"))["update"]["status"]
    second = (await scheduler.next("UPDATE"))["update"]["status"]
    assert (first["task_id"]["value"], first["state"]) == ("known", "TASK_RUNNING")
    assert (second["task_id"]["value"], second["state"]) == ("unknown", "TASK_LOST")


async def test_teardown_shuts_the_framework_down_on_its_agents(cluster):
    master, agent, scheduler = cluster
    await launch_on_agent(scheduler, agent, "doomed")
    assert (await scheduler.call({"type": "TEARDOWN"})).status == 202
    shutdown = (await agent.next("SHUTDOWN_FRAMEWORK"))["shutdown_framework"]
    assert shutdown == {"framework_id": {"value": scheduler.framework_id}}
    await asyncio.wait_for(scheduler.reader.ended.wait(), 5)
    state = await get_json(scheduler.session, master.url("/master/state"))
    assert state["frameworks"] == []
    (completed,) = state["completed_frameworks"]
    assert completed["id"] == scheduler.framework_id
    assert completed["completed_tasks"][0]["state"] == "TASK_KILLED"
    # Its id cannot subscribe again.
    again = Scheduler(scheduler.session, scheduler.base_url)
    with pytest.raises(AssertionError, match="ERROR"):
        await again.subscribe(framework_id=scheduler.framework_id)
    await again.close()


async def test_failover_within_timeout_keeps_tasks(master, http):
    agent = FakeAgent(http, master.url())
    await agent.subscribe()
    first = Scheduler(http, master.url())
    await first.subscribe({"failover_timeout": 60})
    await launch_on_agent(first, agent, "survivor")
    await first.close()
    await asyncio.sleep(0.3)
    second = Scheduler(http, master.url())
    await second.subscribe({"failover_timeout": 60}, framework_id=first.framework_id)
    assert second.framework_id == first.framework_id
    state = await get_json(http, master.url("/master/state"))
    assert [task["id"] for task in state["frameworks"][0]["tasks"]] == ["survivor"]
    await second.close()
    await agent.disconnect()


async def test_framework_without_failover_timeout_is_removed_on_disconnect(master, http):
    agent = FakeAgent(http, master.url())
    await agent.subscribe()
    scheduler = Scheduler(http, master.url())
    await scheduler.subscribe()
    await launch_on_agent(scheduler, agent, "orphan")
    await scheduler.close()
    await agent.next("SHUTDOWN_FRAMEWORK")
    await agent.disconnect()


async def test_agent_that_stops_answering_pings_is_removed_and_its_tasks_lost(cluster):
    _master, agent, scheduler = cluster
    offer = await launch_on_agent(scheduler, agent, "stranded", refuse_seconds=0)
    (leftover,) = await scheduler.offers()
    await agent.disconnect()  # the stream closes: offers are rescinded at once
    rescind = (await scheduler.next("RESCIND"))["rescind"]
    assert rescind["offer_id"] == leftover["id"]
    status = (await scheduler.next("UPDATE", within=5))["update"]["status"]
    assert (status["task_id"]["value"], status["state"], status["reason"]) == (
        "stranded",
        "TASK_LOST",
        "REASON_AGENT_REMOVED",
    )
    # An unreachable agent may come back with the same id; a task reported LOST to a framework that is
    # not partition-aware is killed.
    response = await agent.subscribe(
        tasks=[
            {
                "task_id": {"value": "stranded"},
                "framework_id": {"value": scheduler.framework_id},
                "agent_id": {"value": agent.agent_id},
                "name": "stranded",
                "state": "TASK_RUNNING",
                "resources": offer["resources"][:1],
            }
        ]
    )
    assert response.status == 200
    assert (await agent.next("KILL_TASK"))["kill_task"]["task_id"] == {"value": "stranded"}


async def test_agent_reregistration_rules(master, http):
    agent = FakeAgent(http, master.url(), port=5999)
    await agent.subscribe()
    agent_id = agent.agent_id
    await agent.disconnect()
    await agent.subscribe()  # same id, same resources: welcome back
    assert agent.agent_id == agent_id
    await agent.disconnect()
    agent.resources = agent.resources[:1]
    response = await agent.subscribe(expect_status=403)
    assert "different resources" in await response.text()
    agent.resources = FakeAgent(http, master.url()).resources
    await agent.subscribe()
    assert await agent.call({"type": "UNREGISTER"}) == 202
    response = await agent.subscribe(expect_status=403)
    assert "was removed" in await response.text()
    assert await agent.call({"type": "PONG"}) == 403


async def test_state_endpoints_use_mesos_keys(cluster):
    master, agent, scheduler = cluster
    http = scheduler.session
    state = await get_json(http, master.url("/master/state"))
    for key in (
        "version",
        "id",
        "pid",
        "hostname",
        "leader",
        "leader_info",
        "activated_slaves",
        "slaves",
        "frameworks",
        "completed_frameworks",
        "start_time",
        "elected_time",
        "flags",
    ):
        assert key in state, key
    assert state == {**state, "version": "1.11.0", "activated_slaves": 1, "leader": state["pid"]}
    (slave,) = state["slaves"]
    assert slave["id"] == agent.agent_id and slave["pid"] == "slave(1)@127.0.0.1:5051"
    assert slave["resources"] == {"cpus": 4.0, "mem": 4096.0, "disk": 10000.0, "gpus": 0.0, "ports": "[31000-32000]"}
    assert set(slave) >= {"used_resources", "offered_resources", "attributes", "active", "registered_time"}
    (framework,) = state["frameworks"]
    assert set(framework) >= {"id", "name", "active", "tasks", "completed_tasks", "offers", "used_resources", "role"}
    assert await get_json(http, master.url("/state")) is not None
    assert [s["id"] for s in (await get_json(http, master.url("/master/slaves")))["slaves"]] == [agent.agent_id]
    frameworks = await get_json(http, master.url("/master/frameworks"))
    assert [f["id"] for f in frameworks["frameworks"]] == [scheduler.framework_id]
    assert (await get_json(http, master.url("/master/tasks")))["tasks"] == []
    version = await get_json(http, master.url("/version"))
    assert tuple(int(part) for part in version["version"].split(".")) == (1, 11, 0)
    metrics = await get_json(http, master.url("/metrics/snapshot"))
    for key in (
        "master/elected",
        "master/slaves_active",
        "master/tasks_running",
        "master/cpus_total",
        "master/cpus_used",
        "master/mem_total",
        "master/frameworks_active",
        "master/outstanding_offers",
    ):
        assert key in metrics, key
    assert (metrics["master/elected"], metrics["master/cpus_total"]) == (1.0, 4.0)
    async with http.get(master.url("/redirect"), allow_redirects=False) as response:
        assert (response.status, response.headers["Location"]) == (307, f"//127.0.0.1:{master.port}")


async def test_offer_timeout_rescinds_held_offers(launcher, http):
    master = start_master(launcher, "--allocation_interval=100ms", "--offer_timeout=500ms")
    agent = FakeAgent(http, master.url())
    await agent.subscribe()
    scheduler = Scheduler(http, master.url())
    await scheduler.subscribe()
    (offer,) = await scheduler.offers()
    rescind = (await scheduler.next("RESCIND", within=5))["rescind"]
    assert rescind["offer_id"] == offer["id"]
    # The resources come back in a new offer (a rescind sets no filter).
    (again,) = await scheduler.offers(within=5)
    assert again["id"] != offer["id"]
    metrics = await get_json(http, master.url("/metrics/snapshot"))
    assert metrics["allocator/mesos/allocation_runs"] >= 2 and "allocator/mesos/allocation_run_ms" in metrics
    await scheduler.close()
    await agent.disconnect()
